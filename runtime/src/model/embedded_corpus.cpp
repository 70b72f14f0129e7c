#include "model/embedded_corpus.hpp"

namespace aurora::runtime {

const std::vector<std::string_view>& embedded_corpus() {
  static const std::vector<std::string_view> docs = {
      // Prose.
      "The old lighthouse stood at the end of the harbour, where the road turned to sand and the wind "
      "never quite stopped. Every evening the keeper climbed the stairs, trimmed the wick and watched "
      "the boats come home. Some nights the sea was calm and silver; on others it threw spray over the "
      "rail and the lamp shook in its brass frame.\n",
      "When the library opened its doors in the morning, the first visitors were always the same: a "
      "student with a stack of notes, a retired teacher who read the newspapers from front to back, and "
      "a child who wanted a book about trains. The librarian knew each of them by name and kept a chair "
      "by the window for the teacher.\n",
      "It was late in the autumn when the travellers reached the valley. The river had risen after the "
      "rain, and the bridge was closed, so they waited at the inn and listened to stories about the "
      "mountain. Nobody could say who had built the tower on the ridge, but everyone agreed that it was "
      "older than the town.\n",
      "Good software is written for people first and for machines second. A clear name, a short "
      "function and an honest comment save more time than any clever trick. When something fails, the "
      "message should say what went wrong, where it happened and what the user can do about it.\n",
      "She opened the letter slowly. The paper was thin, the ink had faded, and the handwriting leaned "
      "to the right as if it were in a hurry. It began with the weather, as letters often do, and then "
      "it told her everything she had wanted to know for twenty years.\n",
      // Code.
      "int main(int argc, char** argv) {\n  std::vector<int> values = {3, 1, 4, 1, 5};\n"
      "  std::sort(values.begin(), values.end());\n  for (int v : values) {\n"
      "    std::printf(\"%d\\n\", v);\n  }\n  return 0;\n}\n",
      "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
      "if __name__ == \"__main__\":\n    print([fibonacci(i) for i in range(10)])\n",
      "struct Request {\n  std::string id;\n  int max_tokens = 16;\n  float temperature = 1.0f;\n};\n\n"
      "Result<Request> parse(const Json& json) {\n  Request r;\n  r.id = json[\"id\"].as_string();\n"
      "  if (r.max_tokens <= 0) return Error::invalid(\"max_tokens\", \"must be > 0\");\n  return r;\n}\n",
      "for (size_t i = 0; i < rows; ++i) {\n  float acc = 0.0f;\n  for (size_t j = 0; j < cols; ++j) {\n"
      "    acc += a[i * cols + j] * x[j];\n  }\n  y[i] = acc + bias[i];\n}\n",
      "class Cache:\n    def __init__(self, size):\n        self.size = size\n        self.items = {}\n\n"
      "    def get(self, key, default=None):\n        return self.items.get(key, default)\n\n"
      "    def put(self, key, value):\n        if len(self.items) >= self.size:\n"
      "            self.items.pop(next(iter(self.items)))\n        self.items[key] = value\n",
      // Numbers.
      "2024-03-15 1250 3.14159 27 1812 0.5772 6021 42 9876 12.5 100 365 2048 1.41421 8192 77 3600 "
      "1999-12-31 2718 16 64 256 1024 4096 65536 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71\n",
      "12 + 30 = 42\n7 * 8 = 56\n144 / 12 = 12\n2 ^ 10 = 1024\n99 - 33 = 66\n15 * 15 = 225\n"
      "1000 / 8 = 125\n3 * 3 * 3 = 27\n81 - 19 = 62\n250 + 750 = 1000\n",
      "0.001 0.01 0.1 1 10 100 1000 10000 314 159 265 358 979 323 846 264 338 327 950 288 419 716 "
      "939 937 510 582 097 494 459 230 781 640 628 620 899 862 803 482 534 211 706 798 214 808\n",
      "+1 555 0100 +44 20 7946 0000 08:30 12:45 17:00 23:59 4.99 19.95 120.00 7.50 1,250 3,600 48,000 "
      "2,048,576 10.0.0.1 192.168.1.20 127.0.0.1 3.5 2.25 0.75 98.6 451 1984 2001 1969\n",
  };
  return docs;
}

}  // namespace aurora::runtime
