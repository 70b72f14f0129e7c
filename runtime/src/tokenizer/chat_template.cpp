// Chat template families (see chat_template.hpp): detection from Jinja text and rendering.
#include "aurora/runtime/chat_template.hpp"

#include <cctype>

namespace aurora::runtime {

namespace {

std::string role_field(size_t index) { return "messages[" + std::to_string(index) + "].role"; }

// Python's str.strip() on ASCII whitespace (the llama template strips turn contents).
std::string strip(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

Error bad_role(size_t index, const std::string& role, const char* allowed) {
  return Error::invalid(role_field(index), std::string("must be one of ") + allowed + ", got '" + role + "'");
}

// OpenAI's `developer` role is the system role under another name (OpenAI renamed it for its
// reasoning models); none of the families has a developer turn, so it renders as `system`, as
// vLLM does. Errors still quote the role the client sent.
const std::string& turn_role(const ChatMessage& m) {
  static const std::string kSystem = "system";
  return m.role == "developer" ? kSystem : m.role;
}

bool is_system(const ChatMessage& m) { return turn_role(m) == "system"; }

Result<std::string> render_chatml(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool gen) {
  std::string out = t.bos_text;
  if (!t.default_system.empty() && !messages.empty() && !is_system(messages[0])) {
    out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string& role = turn_role(m);
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return bad_role(i, m.role, "system, developer, user, assistant, tool");
    }
    out += "<|im_start|>" + role + "\n" + m.content + "<|im_end|>\n";
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// Llama-2 and Mistral share the alternation rule: an optional system message first, then
// user/assistant/user/... Both templates raise an exception otherwise; so do we. One extension:
// a leading run of system/developer messages (OpenAI clients send a system prompt and a developer
// message) is joined by a blank line into the one system prompt the template has room for.
Result<std::string> render_inst(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  const bool llama2 = t.format == ChatFormat::kLlama2;
  size_t first = 0;
  std::string system;
  while (first < messages.size() && is_system(messages[first])) {
    if (!t.system_role) {
      return Error::invalid(
          role_field(first),
          "this chat template has no system role (only user and assistant), got '" + messages[first].role + "'");
    }
    if (first > 0) system += "\n\n";
    system += messages[first].content;
    ++first;
  }
  const bool has_system = first > 0;
  std::string out = llama2 ? "" : t.bos_text;
  for (size_t i = first; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const bool expect_user = (i - first) % 2 == 0;
    if (m.role != "user" && m.role != "assistant") {
      return Error::invalid(
          role_field(i),
          "must be user or assistant (system and developer messages may only come first), got '" + m.role + "'");
    }
    if ((m.role == "user") != expect_user) {
      return Error::invalid(role_field(i),
                            "roles must alternate user/assistant/user/... after optional system "
                            "messages, got '" +
                                m.role + "'");
    }
    if (m.role == "user") {
      std::string content = m.content;
      if (i == first && has_system) {
        std::string prefix = llama2 ? "<<SYS>>\n" : "";
        prefix += system;
        prefix += llama2 ? "\n<</SYS>>\n\n" : "\n\n";
        content.insert(0, prefix);
      }
      if (llama2) out += t.bos_text;
      if (t.spaced_inst) out += ' ';
      out += "[INST] ";
      out += llama2 ? strip(content) : content;
      out += " [/INST]";
    } else if (llama2) {
      out += ' ';
      out += strip(m.content);
      out += ' ';
      out += t.eos_text;
    } else {
      if (t.spaced_inst) out += ' ';
      out += m.content;
      out += t.eos_text;
    }
  }
  return out;
}

// OLMoE / Tulu: a role tag line per turn; an assistant turn ends with EOS (and a newline unless
// it is the last message); the generation prompt follows the last message.
Result<std::string> render_tulu(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool gen) {
  std::string out = t.bos_text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string& role = turn_role(m);
    if (role != "system" && role != "user" && role != "assistant") {
      return bad_role(i, m.role, "system, developer, user, assistant");
    }
    out += "<|";
    out += role;
    out += "|>\n";
    out += m.content;
    if (role == "assistant") {
      out += t.eos_text;
      if (i + 1 < messages.size()) out += '\n';
    } else {
      out += '\n';
    }
  }
  if (gen && !messages.empty()) out += "<|assistant|>\n";
  return out;
}

Result<std::string> render_plain(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool gen) {
  std::string out = t.bos_text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string& role = turn_role(m);
    if (role == "system") {
      out += m.content + "\n\n";
    } else if (role == "user") {
      out += "User: " + m.content + "\n";
    } else if (role == "assistant") {
      out += "Assistant: " + m.content + "\n";
    } else if (role == "tool") {
      out += "Tool: " + m.content + "\n";
    } else {
      return bad_role(i, m.role, "system, developer, user, assistant, tool");
    }
  }
  if (gen) out += "Assistant:";
  return out;
}

}  // namespace

const char* chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatMl: return "chatml";
    case ChatFormat::kLlama2: return "llama";
    case ChatFormat::kMistral: return "mistral";
    case ChatFormat::kTulu: return "tulu";
    case ChatFormat::kPlain: return "plain";
  }
  return "plain";
}

Result<ChatFormat> parse_chat_format(std::string_view name, const std::string& field) {
  if (name == "chatml") return ChatFormat::kChatMl;
  if (name == "llama" || name == "llama2") return ChatFormat::kLlama2;
  if (name == "mistral") return ChatFormat::kMistral;
  if (name == "tulu") return ChatFormat::kTulu;
  if (name == "plain") return ChatFormat::kPlain;
  return Error::invalid(
      field, "unknown chat template '" + std::string(name) + "' (expected one of chatml, llama, mistral, tulu, plain)");
}

ChatTemplate detect_chat_template(std::string_view jinja) {
  ChatTemplate t;
  if (jinja.find("<|im_start|>") != std::string_view::npos) {
    t.format = ChatFormat::kChatMl;
    // Qwen2-style default system prompt: '<|im_start|>system\nYou are ...<|im_end|>' as one
    // literal (the \n is the two characters of a Jinja string escape). Only a plain literal is
    // taken: anything with quotes or Jinja syntax inside is an expression, not a default.
    constexpr std::string_view kOpen = "<|im_start|>system\\n";
    size_t at = jinja.find(kOpen);
    if (at != std::string_view::npos) {
      size_t begin = at + kOpen.size();
      size_t end = jinja.find("<|im_end|>", begin);
      if (end != std::string_view::npos) {
        std::string_view text = jinja.substr(begin, end - begin);
        if (!text.empty() && text.find_first_of("'\"{}+\\") == std::string_view::npos) {
          t.default_system = std::string(text);
        }
      }
    }
  } else if (jinja.find("[INST]") != std::string_view::npos) {
    t.format = jinja.find("<<SYS>>") != std::string_view::npos ? ChatFormat::kLlama2 : ChatFormat::kMistral;
    t.spaced_inst = t.format == ChatFormat::kMistral && jinja.find("' [INST] '") != std::string_view::npos;
    t.system_role = jinja.find("system") != std::string_view::npos;
  } else if (jinja.find("<|user|>") != std::string_view::npos) {
    t.format = ChatFormat::kTulu;
  }
  return t;
}

Result<std::string> render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) {
  switch (tmpl.format) {
    case ChatFormat::kChatMl: return render_chatml(tmpl, messages, add_generation_prompt);
    case ChatFormat::kLlama2:
    case ChatFormat::kMistral: return render_inst(tmpl, messages);
    case ChatFormat::kTulu: return render_tulu(tmpl, messages, add_generation_prompt);
    case ChatFormat::kPlain: return render_plain(tmpl, messages, add_generation_prompt);
  }
  return render_plain(tmpl, messages, add_generation_prompt);
}

}  // namespace aurora::runtime
