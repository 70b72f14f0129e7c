// Chat templates: family detection from Jinja text and rendering that matches what transformers'
// Jinja produced for the same conversations (tests/fixtures/tokenizers/chat_templates.json).
#include <catch2/catch.hpp>

#include "aurora/runtime/chat_template.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::config::JsonDocument;
using aurora::runtime::ChatFormat;
using aurora::runtime::ChatMessage;
using aurora::runtime::detect_chat_template;
using aurora::runtime::load_tokenizer;
using aurora::runtime::parse_chat_format;
using aurora::runtime::render_chat;
using aurora::test::fixture;

TEST_CASE("detected chat templates render exactly as transformers' Jinja does", "[tokenizer][chat]") {
  auto doc = JsonDocument::parse_file(fixture("chat_templates.json"));
  REQUIRE(doc.ok());
  size_t compared = 0;
  size_t errors = 0;
  for (const auto& [name, entry] : doc->root().members()) {
    const std::string jinja = entry["jinja"].as_string();
    auto tmpl = detect_chat_template(jinja);
    if ((tmpl.format != ChatFormat::kChatMl && tmpl.format != ChatFormat::kTulu) ||
        jinja.find("bos_token") != std::string::npos) {
      tmpl.bos_text = entry["bos_token"].as_string();
    }
    tmpl.eos_text = entry["eos_token"].as_string();
    for (const auto& row : entry["renderings"].items()) {
      std::vector<ChatMessage> messages;
      bool unusual_role = false;
      for (const auto& m : row["messages"].items()) {
        messages.push_back({m["role"].as_string(), m["content"].as_string()});
        unusual_role = unusual_role || (messages.back().role != "system" && messages.back().role != "user" &&
                                        messages.back().role != "assistant");
      }
      const bool gen = row["add_generation_prompt"].as_bool();
      auto ours = render_chat(tmpl, messages, gen);
      INFO("template " << name << ", conversation " << row["messages"].raw() << ", generation prompt " << gen);
      if (row.find("error")) {
        CHECK_FALSE(ours.ok());  // the Jinja template raised: so must we
        if (!ours.ok()) CHECK(ours.error().field.rfind("messages[", 0) == 0);
        ++errors;
      } else if (unusual_role && tmpl.format != ChatFormat::kChatMl) {
        // [INST] and Tulu templates silently drop a "tool" turn; Aurora rejects it clearly.
        CHECK_FALSE(ours.ok());
      } else {
        REQUIRE(ours.ok());
        CHECK(*ours == row["rendered"].as_string());
        ++compared;
      }
    }
  }
  CHECK(compared >= 40);
  CHECK(errors >= 10);
}

TEST_CASE("the family is detected from the Jinja text", "[tokenizer][chat]") {
  auto doc = JsonDocument::parse_file(fixture("chat_templates.json"));
  REQUIRE(doc.ok());
  const auto root = doc->root();
  auto qwen = detect_chat_template(root["qwen2_chatml"]["jinja"].as_string());
  CHECK(qwen.format == ChatFormat::kChatMl);
  CHECK(qwen.default_system == "You are a helpful assistant.");
  CHECK(detect_chat_template(root["chatml_plain"]["jinja"].as_string()).default_system.empty());
  CHECK(detect_chat_template(root["llama2"]["jinja"].as_string()).format == ChatFormat::kLlama2);
  auto v01 = detect_chat_template(root["mistral_v01"]["jinja"].as_string());
  CHECK(v01.format == ChatFormat::kMistral);
  CHECK_FALSE(v01.spaced_inst);
  CHECK_FALSE(v01.system_role);
  auto spaced = detect_chat_template(root["mixtral_spaced"]["jinja"].as_string());
  CHECK(spaced.format == ChatFormat::kMistral);
  CHECK(spaced.spaced_inst);
  CHECK(spaced.system_role);
  CHECK(detect_chat_template(root["olmoe_tulu"]["jinja"].as_string()).format == ChatFormat::kTulu);
  CHECK(detect_chat_template("").format == ChatFormat::kPlain);
  CHECK(detect_chat_template("{{ '<|start_header_id|>' + message['role'] }}").format == ChatFormat::kPlain);
}

TEST_CASE("template names and roles are validated with clear errors", "[tokenizer][chat]") {
  CHECK(*parse_chat_format("chatml") == ChatFormat::kChatMl);
  CHECK(*parse_chat_format("llama") == ChatFormat::kLlama2);
  CHECK(*parse_chat_format("mistral") == ChatFormat::kMistral);
  CHECK(*parse_chat_format("tulu") == ChatFormat::kTulu);
  CHECK(*parse_chat_format("plain") == ChatFormat::kPlain);
  auto bad = parse_chat_format("jinja2");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().field == "chat_template");
  CHECK_THAT(bad.error().message, Catch::Contains("jinja2") && Catch::Contains("chatml"));

  aurora::runtime::ChatTemplate chatml{ChatFormat::kChatMl, "", "", "", false, true};
  auto r = render_chat(chatml, {{"user", "hi"}, {"robot", "beep"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "messages[1].role");
  CHECK_THAT(r.error().message, Catch::Contains("robot"));

  aurora::runtime::ChatTemplate plain{ChatFormat::kPlain, "", "", "", false, true};
  CHECK(*render_chat(plain, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}}) ==
        "Be brief.\n\nUser: Hi\nAssistant: Hello\nUser: Bye\nAssistant:");
  CHECK_FALSE(render_chat(plain, {{"narrator", "x"}}).ok());

  aurora::runtime::ChatTemplate llama{ChatFormat::kLlama2, "<s>", "</s>", "", false, true};
  auto twice = render_chat(llama, {{"user", "a"}, {"user", "b"}});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().field == "messages[1].role");
  auto late_system = render_chat(llama, {{"user", "a"}, {"system", "b"}});
  REQUIRE_FALSE(late_system.ok());
  CHECK(late_system.error().field == "messages[1].role");
}

TEST_CASE("developer messages render as system messages in every family", "[tokenizer][chat]") {
  using aurora::runtime::ChatTemplate;
  const std::vector<ChatMessage> sdu{{"system", "s"}, {"developer", "d"}, {"user", "a"}};
  const std::vector<ChatMessage> du{{"developer", "d"}, {"user", "a"}};

  const ChatTemplate chatml{ChatFormat::kChatMl, "", "", "", false, true};
  CHECK(*render_chat(chatml, sdu) ==
        "<|im_start|>system\ns<|im_end|>\n<|im_start|>system\nd<|im_end|>\n<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>assistant\n");
  // A developer message replaces the template's default system prompt, as a system message does.
  const ChatTemplate qwen{ChatFormat::kChatMl, "", "", "You are a helpful assistant.", false, true};
  CHECK(*render_chat(qwen, du) == *render_chat(qwen, {{"system", "d"}, {"user", "a"}}));

  // [INST] templates have room for one system prompt: the leading system messages share it.
  const ChatTemplate llama{ChatFormat::kLlama2, "<s>", "</s>", "", false, true};
  CHECK(*render_chat(llama, sdu) == "<s>[INST] <<SYS>>\ns\n\nd\n<</SYS>>\n\na [/INST]");
  CHECK(*render_chat(llama, du) == *render_chat(llama, {{"system", "d"}, {"user", "a"}}));
  const ChatTemplate mixtral{ChatFormat::kMistral, "<s>", "</s>", "", true, true};
  CHECK(*render_chat(mixtral, sdu) == "<s> [INST] s\n\nd\n\na [/INST]");
  CHECK(*render_chat(mixtral, {{"developer", "d"}, {"user", "a"}, {"assistant", "b"}, {"user", "c"}}) ==
        "<s> [INST] d\n\na [/INST] b</s> [INST] c [/INST]");

  const ChatTemplate tulu{ChatFormat::kTulu, "", "</s>", "", false, true};
  CHECK(*render_chat(tulu, sdu) == "<|system|>\ns\n<|system|>\nd\n<|user|>\na\n<|assistant|>\n");
  const ChatTemplate plain{ChatFormat::kPlain, "", "", "", false, true};
  CHECK(*render_chat(plain, sdu) == "s\n\nd\n\nUser: a\nAssistant:");

  // Where a system message is an error, so is a developer message, and the error quotes the role sent.
  const ChatTemplate mistral_v01{ChatFormat::kMistral, "<s>", "</s>", "", false, false};
  auto no_system = render_chat(mistral_v01, du);
  REQUIRE_FALSE(no_system.ok());
  CHECK(no_system.error().field == "messages[0].role");
  CHECK_THAT(no_system.error().message, Catch::Contains("no system role") && Catch::Contains("'developer'"));
  auto late = render_chat(llama, {{"user", "a"}, {"developer", "d"}});
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().field == "messages[1].role");
  CHECK_THAT(late.error().message, Catch::Contains("'developer'"));
}

TEST_CASE("model directories pick their template from tokenizer_config.json, or a forced one", "[tokenizer][chat]") {
  auto qwen = load_tokenizer(fixture("qwen2"));
  REQUIRE(qwen.ok());
  CHECK((*qwen)->chat_template_name() == "chatml");
  auto rendered = (*qwen)->apply_chat_template({{"user", "Hello!"}});
  REQUIRE(rendered.ok());
  CHECK(*rendered ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\n");
  // The rendered prompt tokenizes with the special tokens as single ids.
  const auto ids = (*qwen)->encode(*rendered, false);
  REQUIRE(!ids.empty());
  CHECK(ids.front() == *(*qwen)->token_to_id("<|im_start|>"));
  CHECK((*qwen)->is_special(ids.front()));

  auto llama = load_tokenizer(fixture("llama2"));
  REQUIRE(llama.ok());
  CHECK((*llama)->chat_template_name() == "llama");
  auto l = (*llama)->apply_chat_template({{"system", "S"}, {"user", "U"}});
  REQUIRE(l.ok());
  CHECK(*l == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]");
  const auto lids = (*llama)->encode(*l, false);
  CHECK(lids.front() == 1);  // <s> once, from the text (encode without add_special)
  CHECK(lids[1] == *(*llama)->token_to_id("[INST]"));

  auto mistral = load_tokenizer(fixture("mistral"));
  REQUIRE(mistral.ok());
  CHECK((*mistral)->chat_template_name() == "mistral");
  CHECK(*(*mistral)->apply_chat_template({{"user", "Hi"}}) == "<s> [INST] Hi [/INST]");

  auto forced = load_tokenizer(fixture("qwen2"), "plain");
  REQUIRE(forced.ok());
  CHECK((*forced)->chat_template_name() == "plain");
  CHECK(*(*forced)->apply_chat_template({{"user", "Hi"}}) == "User: Hi\nAssistant:");
  auto forced_llama = load_tokenizer(fixture("llama2/tokenizer.json"), "llama");
  REQUIRE(forced_llama.ok());
  CHECK(*(*forced_llama)->apply_chat_template({{"user", "Hi"}, {"assistant", "Yo"}}) == "<s>[INST] Hi [/INST] Yo </s>");

  auto unknown = load_tokenizer(fixture("qwen2"), "vicuna");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().field == "chat_template");
  CHECK_THAT(unknown.error().message, Catch::Contains("vicuna"));

  // A bare tokenizer.json has no Jinja: plain, with the BOS text where the tokenizer adds one.
  auto bare = load_tokenizer(fixture("llama2/tokenizer.json"));
  REQUIRE(bare.ok());
  CHECK((*bare)->chat_template_name() == "plain");
  CHECK(*(*bare)->apply_chat_template({{"user", "Hi"}}) == "<s>User: Hi\nAssistant:");
}
