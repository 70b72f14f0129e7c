// Chat templates: renders a conversation into the prompt text a chat model was trained on.
// Pure functions on value types; thread-safe.
//
// Aurora does not run Jinja. It knows the families real models use and detects the family from
// the Jinja text in tokenizer_config.json (detect_chat_template documents the rule):
//   chatml   <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n      (Qwen, Yi, ...)
//   llama    <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] ...  (Llama-2)
//   mistral  <s>[INST] sys\n\nuser [/INST]answer</s>[INST] user [/INST]             (Mistral v0.1)
//            <s> [INST] sys\n\nuser [/INST] answer</s> [INST] user [/INST]          (Mixtral's current
//                                                                              template: spaced)
//   tulu     <|system|>\nsys\n<|user|>\nuser\n<|assistant|>\nanswer</s>\n ...          (OLMoE, Tulu)
//   plain    sys\n\nUser: ...\nAssistant: ...\nAssistant:                         (fallback)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct ChatMessage {
  std::string role;  // "system", "developer" (rendered as system), "user", "assistant" (chatml and
                     // plain also accept "tool")
  std::string content;
};

enum class ChatFormat { kChatMl, kLlama2, kMistral, kTulu, kPlain };

struct ChatTemplate {
  ChatFormat format = ChatFormat::kPlain;
  std::string bos_text;        // written at the start (llama/mistral: once per [INST] turn as the
                               // template does); empty when the model has no BOS
  std::string eos_text;        // closes assistant turns in llama/mistral/tulu
  std::string default_system;  // chatml: system prompt used when the conversation has none
  bool spaced_inst = false;    // mistral: " [INST] " and " answer" as Mixtral's newer template
  bool system_role = true;     // mistral: false when the template has no system message at all
};

// "chatml" | "llama" | "mistral" | "tulu" | "plain" (the names `--chat-template` accepts).
const char* chat_format_name(ChatFormat format);
// Parses a template name; an unknown name is an error naming `field` and listing the choices.
Result<ChatFormat> parse_chat_format(std::string_view name, const std::string& field = "chat_template");

// Detects the family from a Jinja chat template:
//   contains "<|im_start|>"            -> chatml (a literal default system prompt written as
//                                         '<|im_start|>system\n...<|im_end|>' is kept)
//   contains "[INST]" and "<<SYS>>"    -> llama
//   contains "[INST]"                  -> mistral (spaced when it writes ' [INST] '; a template that
//                                         never mentions "system" rejects system messages)
//   contains "<|user|>"                -> tulu
//   anything else (or empty)           -> plain
ChatTemplate detect_chat_template(std::string_view jinja);

// Renders the conversation. `developer` messages render as `system` in every family (OpenAI's
// name for the system role of its newer models; vLLM does the same). llama/mistral have room for
// one system prompt: leading system/developer messages are joined by a blank line into it. Roles
// that the family does not accept, or llama/mistral turns that do not alternate user/assistant
// after the leading system messages, are errors naming messages[i].role.
Result<std::string> render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt = true);

}  // namespace aurora::runtime
