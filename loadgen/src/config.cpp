#include "aurora/loadgen/config.hpp"

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <sstream>

#include <boost/json/parse.hpp>
#include <boost/program_options.hpp>

#include "aurora/loadgen/arrivals.hpp"

namespace po = boost::program_options;

namespace aurora::loadgen {
namespace {

constexpr const char* kMetricDefinitions = R"(
Metrics (vLLM's definitions, `vllm bench serve`):
  TTFT   time to first token: request sent -> first chunk carrying generated text.
  TPOT   time per output token, excluding the first: (E2EL - TTFT) / (output tokens - 1), per
         request; requests with <= 1 output token are left out (they count as 0 for goodput).
  ITL    inter-token latency: the gaps between successive content chunks (a chunk may carry
         several tokens), pooled over all requests.
  E2EL   end-to-end latency: request sent -> last byte of the response.
  Request / output / total-token throughput: completed requests, output tokens, and input +
         output tokens, each divided by the benchmark duration (first send -> last response).
  Goodput: requests meeting every --goodput SLO (value <= limit, in ms) per second.
  Statistics: mean, median, std (population), and the --metric-percentiles, computed like
         numpy.percentile (linear interpolation).
  Output tokens come from the usage chunk (stream_options.include_usage); when a server sends
         none, they fall back to the number of content chunks (or a tokenizer-free estimate with
         --output-token-fallback estimate). The summary says which source was used.
  Failures are counted by reason (http_503, stream_error, timeout, connect_failed, ...).
  Cancelled: requests the load generator cancelled itself (--request-cancellation-rate), counted
         apart from completed and failed and left out of every statistic above; the tokens they
         received and the TTFT of those that got a first token are reported separately.

Result JSON (--save-result): vLLM's fields (completed, failed, total_input_tokens,
  total_output_tokens, request_throughput, request_goodput, output_throughput,
  total_token_throughput, {mean,median,std,pNN}_{ttft,tpot,itl,e2el}_ms, duration, ...), plus
  failures_by_reason, cancelled (with cancel_planned, cancelled_output_tokens and
  {mean,median,pNN}_cancelled_ttft_ms), the per-second time series, and (Aurora targets) the plan
  version and expert-load balance scraped from /metrics.
)";

std::optional<double> parse_rate(const std::string& text) {
  if (text == "inf" || text == "INF" || text == "Inf") return kInfinity;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isnan(v)) return std::nullopt;
  return v;
}

// A finite number in [lo, hi], or an error naming the flag and the text as given.
Result<double> parse_bounded(const po::variables_map& vm, const char* flag, double lo, double hi,
                             const std::string& what) {
  const std::string text = vm[flag].as<std::string>();
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v < lo || v > hi) {
    return Error::invalid(std::string("--") + flag, "must be " + what + ", got \"" + text + "\"");
  }
  return v;
}

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

constexpr unsigned kLineLength = 120;
constexpr unsigned kDescriptionLength = 70;

po::options_description make_options() {
  po::options_description target("Target", kLineLength, kDescriptionLength);
  target.add_options()("base-url", po::value<std::string>(),
                       "server base URL, e.g. http://127.0.0.1:8000 (overrides --host/--port)")(
      "host", po::value<std::string>()->default_value("127.0.0.1"), "server host")(
      "port", po::value<int>()->default_value(8000), "server port")(
      "endpoint", po::value<std::string>(),
      "API path (default by backend: /v1/completions, /v1/chat/completions, /v1/ws)")(
      "backend", po::value<std::string>()->default_value("openai"), "openai (completions) | openai-chat | aurora-ws")(
      "model", po::value<std::string>(), "model name (default: the first of GET /v1/models)")(
      "api-key", po::value<std::string>(), "bearer token (default: $OPENAI_API_KEY)");

  po::options_description load("Load", kLineLength, kDescriptionLength);
  load.add_options()("num-prompts", po::value<int64_t>(),
                     "requests to send (default 1000 unless --duration or --rate-schedule bound the run)")(
      "request-rate", po::value<std::string>()->default_value("inf"),
      "requests per second, or inf (everything at t=0)")(
      "burstiness", po::value<double>()->default_value(1.0),
      "gamma shape of the gaps: 1 = Poisson, <1 burstier, >1 smoother")(
      "max-concurrency", po::value<int64_t>(), "cap on requests in flight (arrivals wait on the client side)")(
      "users", po::value<int64_t>(), "closed loop: N users, each sends its next request when the last one ends")(
      "think-time-ms", po::value<double>()->default_value(0), "closed loop: pause between one user's requests")(
      "rate-schedule", po::value<std::string>(),
      "time-varying rate: steps R@D and ramps R1->R2@D, comma separated (e.g. \"2@30s,2->8@60s,8@30s\"); the run ends "
      "with it")("duration", po::value<double>(), "stop sending after this many seconds")(
      "ramp-up-strategy", po::value<std::string>(),
      "vLLM's per-request ramp: linear | exponential (needs --num-prompts)")("ramp-up-start-rps", po::value<double>(),
                                                                             "ramp start rate")(
      "ramp-up-end-rps", po::value<double>(), "ramp end rate")("num-warmups", po::value<int64_t>()->default_value(0),
                                                               "warm-up requests sent first and not measured")(
      "seed", po::value<uint64_t>()->default_value(0), "seed of the arrivals, prompts and cancellations")(
      "request-cancellation-rate", po::value<std::string>()->default_value("0"),
      "percent of requests (0..100, chosen with the seed) that the client cancels, as AIPerf does")(
      "request-cancellation-delay", po::value<std::string>()->default_value("0"),
      "seconds after a chosen request is fully sent before it is cancelled (SSE: the connection is closed; "
      "aurora-ws: response.cancel)");

  po::options_description workload("Workload", kLineLength, kDescriptionLength);
  workload.add_options()("dataset-name", po::value<std::string>()->default_value("random"),
                         "random | synthetic-chat | jsonl | sharegpt")(
      "dataset-path", po::value<std::string>(), "prompt file for jsonl / sharegpt (JSONL, or a JSON array)")(
      "random-input-len", po::value<int64_t>()->default_value(1024), "input length in tokens (random, synthetic-chat)")(
      "random-output-len", po::value<int64_t>()->default_value(128), "output length in tokens (max_tokens)")(
      "random-range-ratio", po::value<double>()->default_value(0.0),
      "lengths drawn uniformly from [len*(1-r), len*(1+r)]")("sharegpt-output-len", po::value<int64_t>(),
                                                             "output length for file prompts (overrides the file)")(
      "calibrate-lengths", po::value<std::string>()->default_value("auto"),
      "auto: size synthetic prompts with the server's POST /tokenize when it has one (as recent vLLM does) | off")(
      "traffic-mix", po::value<std::string>(),
      "prompt kinds over time: \"prose=0.8,code=0.2@60s; prose=0.2,code=0.8\" (kinds: prose, code, digits)")(
      "ignore-eos", po::bool_switch(), "send ignore_eos (on by default for random and synthetic-chat)")(
      "disable-ignore-eos", po::bool_switch(), "do not send ignore_eos for synthetic datasets")(
      "temperature", po::value<double>(), "sampling temperature")("top-p", po::value<double>(), "top_p")(
      "top-k", po::value<int64_t>(), "top_k")("extra-body", po::value<std::string>(),
                                              "JSON object merged into every request body");

  po::options_description metrics("Metrics", kLineLength, kDescriptionLength);
  metrics.add_options()("goodput", po::value<std::vector<std::string>>()->multitoken(),
                        "SLOs in ms: ttft:200 tpot:50 e2el:1000")(
      "percentile-metrics", po::value<std::string>()->default_value("ttft,tpot,itl,e2el"),
      "metrics to report percentiles for")("metric-percentiles", po::value<std::string>()->default_value("50,90,95,99"),
                                           "percentiles to report")("output-token-fallback",
                                                                    po::value<std::string>()->default_value("chunks"),
                                                                    "when no usage chunk: chunks | estimate");

  po::options_description output("Output", kLineLength, kDescriptionLength);
  output.add_options()("save-result", po::value<std::string>()->implicit_value(""),
                       "write the result JSON (to FILE, or to --result-dir/--result-filename)")(
      "result-dir", po::value<std::string>(), "directory of the result file")(
      "result-filename", po::value<std::string>(), "name of the result file")(
      "save-detailed", po::bool_switch(), "add per-request arrays to the result JSON")(
      "plot", po::value<std::string>(), "draw the time series as an SVG file")("label", po::value<std::string>(),
                                                                               "label stored in the result")(
      "metadata", po::value<std::vector<std::string>>()->multitoken(), "KEY=VALUE pairs stored in the result")(
      "progress", po::value<std::string>()->default_value("auto"), "live progress line: auto (on a TTY) | on | off")(
      "scrape-metrics", po::value<std::string>()->default_value("auto"),
      "scrape /metrics for Aurora's plan gauges: auto | on | off")(
      "scrape-interval", po::value<double>()->default_value(1.0), "seconds between /metrics scrapes")(
      "quiet", po::bool_switch(), "no summary table");

  po::options_description limits("Limits", kLineLength, kDescriptionLength);
  limits.add_options()("request-timeout", po::value<double>()->default_value(300), "hard timeout per request, seconds")(
      "drain-timeout", po::value<double>()->default_value(30),
      "after sending stops, wait this long for requests in flight")(
      "ws-connections", po::value<int64_t>()->default_value(1), "aurora-ws: sockets to multiplex requests over");

  po::options_description general("General", kLineLength, kDescriptionLength);
  general.add_options()("help,h", "show this help")("version", "show the version");

  po::options_description all(
      "aurora-loadgen: load generator for OpenAI-compatible servers and Aurora\n\n"
      "usage: aurora-loadgen [options]",
      kLineLength, kDescriptionLength);
  all.add(target).add(load).add(workload).add(metrics).add(output).add(limits).add(general);
  return all;
}

// `--save-result` is a flag in vLLM and takes a file name here: accept both by joining a
// following non-option word as its value.
std::vector<std::string> normalise_args(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    // A negative number after these is their (invalid) value, not an option: let the check
    // below name it.
    if ((a == "--request-cancellation-rate" || a == "--request-cancellation-delay") && i + 1 < argc &&
        argv[i + 1][0] == '-') {
      args.push_back(a + "=" + argv[++i]);
      continue;
    }
    if (a == "--save-result") {
      if (i + 1 < argc && argv[i + 1][0] != '-') {
        args.push_back("--save-result=" + std::string(argv[++i]));
      } else {
        args.push_back("--save-result");
      }
      continue;
    }
    args.push_back(std::move(a));
  }
  return args;
}

std::string default_result_name(const LoadgenConfig& c) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::ostringstream out;
  std::string model = c.sampling.model.empty() ? "model" : c.sampling.model;
  for (auto& ch : model) {
    if (ch == '/') ch = '_';
  }
  out << (c.label.empty() ? backend_name(c.backend) : c.label) << '-'
      << (std::isinf(c.request_rate) ? std::string("inf") : format_double(c.request_rate)) << "qps-" << model << '-'
      << std::put_time(&tm, "%Y%m%d-%H%M%S") << ".json";
  return out.str();
}

}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kOpenAI: return "openai";
    case Backend::kOpenAIChat: return "openai-chat";
    case Backend::kAuroraWs: return "aurora-ws";
  }
  return "?";
}

std::string Target::base_url() const { return "http://" + host + ":" + port + path_prefix; }

Result<Target> parse_base_url(const std::string& url) {
  Target t;
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0)
    return Error::invalid("--base-url", "https is not supported (use a plain http:// URL), got " + url);
  if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos)
    return Error::invalid("--base-url", "must start with http://, got " + url);
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) t.path_prefix = rest.substr(slash);
  while (!t.path_prefix.empty() && t.path_prefix.back() == '/') t.path_prefix.pop_back();
  if (hostport.empty()) return Error::invalid("--base-url", "has no host: " + url);
  if (hostport.front() == '[') {  // [v6]:port
    const size_t close = hostport.find(']');
    if (close == std::string::npos) return Error::invalid("--base-url", "bad IPv6 host: " + url);
    t.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':')
      t.port = hostport.substr(close + 2);
    else
      t.port = "80";
  } else {
    const size_t colon = hostport.rfind(':');
    t.host = hostport.substr(0, colon);
    t.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  }
  char* end = nullptr;
  const long port = std::strtol(t.port.c_str(), &end, 10);
  if (t.port.empty() || *end != '\0' || port <= 0 || port > 65535) {
    return Error::invalid("--base-url", "port must be in [1, 65535], got \"" + t.port + "\"");
  }
  return t;
}

std::string help_text() {
  std::ostringstream out;
  out << make_options() << kMetricDefinitions;
  return out.str();
}

Result<ParsedCommandLine> parse_command_line(int argc, const char* const* argv) {
  const po::options_description options = make_options();
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(normalise_args(argc, argv)).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return Error::invalid("command line", e.what());
  }
  ParsedCommandLine parsed;
  if (vm.count("help")) {
    parsed.message = help_text();
    return parsed;
  }
  if (vm.count("version")) {
    parsed.message = "aurora-loadgen 0.1.0";
    return parsed;
  }
  LoadgenConfig c;

  // Target.
  const std::string backend = vm["backend"].as<std::string>();
  if (backend == "openai" || backend == "vllm") {
    c.backend = Backend::kOpenAI;
    c.api = ApiKind::kCompletions;
  } else if (backend == "openai-chat" || backend == "vllm-chat") {
    c.backend = Backend::kOpenAIChat;
    c.api = ApiKind::kChat;
  } else if (backend == "aurora-ws") {
    c.backend = Backend::kAuroraWs;
    c.api = ApiKind::kChat;
  } else {
    return Error::invalid("--backend", "must be openai, openai-chat or aurora-ws, got \"" + backend + "\"");
  }
  if (vm.count("base-url")) {
    auto t = parse_base_url(vm["base-url"].as<std::string>());
    if (!t) return t.error();
    c.target = *t;
  } else {
    c.target.host = vm["host"].as<std::string>();
    const int port = vm["port"].as<int>();
    if (port <= 0 || port > 65535)
      return Error::invalid("--port", "must be in [1, 65535], got " + std::to_string(port));
    c.target.port = std::to_string(port);
  }
  if (vm.count("endpoint")) {
    c.target.endpoint = vm["endpoint"].as<std::string>();
    if (c.target.endpoint.empty() || c.target.endpoint.front() != '/') {
      return Error::invalid("--endpoint", "must be a path starting with /, got \"" + c.target.endpoint + "\"");
    }
  } else {
    c.target.endpoint = c.backend == Backend::kOpenAI       ? "/v1/completions"
                        : c.backend == Backend::kOpenAIChat ? "/v1/chat/completions"
                                                            : "/v1/ws";
  }
  if (vm.count("api-key"))
    c.target.api_key = vm["api-key"].as<std::string>();
  else if (const char* env = std::getenv("OPENAI_API_KEY"))
    c.target.api_key = env;
  if (vm.count("model")) c.sampling.model = vm["model"].as<std::string>();

  // Load shape.
  auto rate = parse_rate(vm["request-rate"].as<std::string>());
  if (!rate || *rate <= 0)
    return Error::invalid("--request-rate",
                          "must be a number > 0 or inf, got \"" + vm["request-rate"].as<std::string>() + "\"");
  c.request_rate = *rate;
  c.burstiness = vm["burstiness"].as<double>();
  if (!(c.burstiness > 0)) return Error::invalid("--burstiness", "must be > 0, got " + format_double(c.burstiness));
  if (vm.count("num-prompts")) {
    c.num_prompts = vm["num-prompts"].as<int64_t>();
    if (*c.num_prompts < 1)
      return Error::invalid("--num-prompts", "must be >= 1, got " + std::to_string(*c.num_prompts));
  }
  if (vm.count("max-concurrency")) {
    c.max_concurrency = vm["max-concurrency"].as<int64_t>();
    if (*c.max_concurrency < 1)
      return Error::invalid("--max-concurrency", "must be >= 1, got " + std::to_string(*c.max_concurrency));
  }
  if (vm.count("users")) {
    c.users = vm["users"].as<int64_t>();
    if (*c.users < 1) return Error::invalid("--users", "must be >= 1, got " + std::to_string(*c.users));
  }
  c.think_time_ms = vm["think-time-ms"].as<double>();
  if (!(c.think_time_ms >= 0) || !std::isfinite(c.think_time_ms))
    return Error::invalid("--think-time-ms", "must be >= 0, got " + format_double(c.think_time_ms));
  if (vm.count("rate-schedule")) {
    c.rate_schedule = vm["rate-schedule"].as<std::string>();
    auto schedule = RateSchedule::parse(c.rate_schedule);
    if (!schedule) return schedule.error();
  }
  if (vm.count("duration")) {
    c.duration_s = vm["duration"].as<double>();
    if (!(*c.duration_s > 0) || !std::isfinite(*c.duration_s))
      return Error::invalid("--duration", "must be > 0 seconds, got " + format_double(*c.duration_s));
  }
  if (vm.count("ramp-up-strategy")) {
    c.ramp_up_strategy = vm["ramp-up-strategy"].as<std::string>();
    if (c.ramp_up_strategy != "linear" && c.ramp_up_strategy != "exponential") {
      return Error::invalid("--ramp-up-strategy", "must be linear or exponential, got \"" + c.ramp_up_strategy + "\"");
    }
    if (!vm.count("ramp-up-start-rps") || !vm.count("ramp-up-end-rps")) {
      return Error::invalid("--ramp-up-strategy", "needs --ramp-up-start-rps and --ramp-up-end-rps");
    }
    c.ramp_up_start_rps = vm["ramp-up-start-rps"].as<double>();
    c.ramp_up_end_rps = vm["ramp-up-end-rps"].as<double>();
    if (!c.num_prompts) return Error::invalid("--ramp-up-strategy", "needs --num-prompts");
  }
  c.num_warmups = vm["num-warmups"].as<int64_t>();
  if (c.num_warmups < 0) return Error::invalid("--num-warmups", "must be >= 0, got " + std::to_string(c.num_warmups));
  c.seed = vm["seed"].as<uint64_t>();
  auto cancel_rate = parse_bounded(vm, "request-cancellation-rate", 0, 100, "a percentage in [0, 100]");
  if (!cancel_rate) return cancel_rate.error();
  c.request_cancellation_rate = *cancel_rate;
  auto cancel_delay = parse_bounded(vm, "request-cancellation-delay", 0, kInfinity, "a number of seconds >= 0");
  if (!cancel_delay) return cancel_delay.error();
  c.request_cancellation_delay_s = *cancel_delay;

  // Mode conflicts and the stopping rule.
  const bool rate_given = !vm["request-rate"].defaulted();
  if (c.users) {
    if (rate_given || !c.rate_schedule.empty() || !c.ramp_up_strategy.empty()) {
      return Error::invalid("--users",
                            "a closed loop sets its own pace; drop --request-rate/--rate-schedule/--ramp-up-strategy");
    }
    if (c.max_concurrency) return Error::invalid("--users", "already caps concurrency at N; drop --max-concurrency");
  }
  if (!c.rate_schedule.empty() && (rate_given || !c.ramp_up_strategy.empty())) {
    return Error::invalid("--rate-schedule", "replaces --request-rate and --ramp-up-strategy; give only one");
  }
  if (!c.num_prompts && !c.duration_s && c.rate_schedule.empty()) c.num_prompts = 1000;  // vLLM's default
  if (!c.num_prompts && std::isinf(c.request_rate) && c.rate_schedule.empty() && !c.users && !c.max_concurrency) {
    return Error::invalid("--duration",
                          "with --request-rate inf and no --num-prompts, set --max-concurrency or --users "
                          "(otherwise requests would be sent without bound)");
  }

  // Workload.
  c.workload.dataset_name = vm["dataset-name"].as<std::string>();
  if (vm.count("dataset-path")) c.workload.dataset_path = vm["dataset-path"].as<std::string>();
  c.workload.input.mean = vm["random-input-len"].as<int64_t>();
  c.workload.output.mean = vm["random-output-len"].as<int64_t>();
  if (c.workload.input.mean < 1)
    return Error::invalid("--random-input-len", "must be >= 1, got " + std::to_string(c.workload.input.mean));
  if (c.workload.output.mean < 1)
    return Error::invalid("--random-output-len", "must be >= 1, got " + std::to_string(c.workload.output.mean));
  const double ratio = vm["random-range-ratio"].as<double>();
  if (!(ratio >= 0 && ratio < 1))
    return Error::invalid("--random-range-ratio", "must be in [0, 1), got " + format_double(ratio));
  c.workload.input.range_ratio = ratio;
  c.workload.output.range_ratio = ratio;
  if (vm.count("sharegpt-output-len")) {
    c.workload.file_output_len = vm["sharegpt-output-len"].as<int64_t>();
    if (*c.workload.file_output_len < 1) return Error::invalid("--sharegpt-output-len", "must be >= 1");
  }
  if (vm.count("traffic-mix")) c.workload.traffic_mix = vm["traffic-mix"].as<std::string>();
  c.calibrate_lengths = vm["calibrate-lengths"].as<std::string>();
  if (c.calibrate_lengths != "auto" && c.calibrate_lengths != "off") {
    return Error::invalid("--calibrate-lengths", "must be auto or off, got \"" + c.calibrate_lengths + "\"");
  }
  c.workload.seed = c.seed;
  const bool synthetic = c.workload.dataset_name == "random" || c.workload.dataset_name == "synthetic-chat";
  c.sampling.ignore_eos = vm["ignore-eos"].as<bool>() || (synthetic && !vm["disable-ignore-eos"].as<bool>());
  if (vm.count("temperature")) c.sampling.temperature = vm["temperature"].as<double>();
  if (vm.count("top-p")) c.sampling.top_p = vm["top-p"].as<double>();
  if (vm.count("top-k")) c.sampling.top_k = vm["top-k"].as<int64_t>();
  if (vm.count("extra-body")) {
    boost::system::error_code ec;
    auto v = boost::json::parse(vm["extra-body"].as<std::string>(), ec);
    if (ec || !v.is_object())
      return Error::invalid("--extra-body", "must be a JSON object, got " + vm["extra-body"].as<std::string>());
    c.sampling.extra_body = v.as_object();
  }

  // Metrics.
  if (vm.count("goodput")) {
    auto slo = SloConfig::parse(vm["goodput"].as<std::vector<std::string>>());
    if (!slo) return slo.error();
    c.goodput = *slo;
  }
  c.percentile_metrics = split_list(vm["percentile-metrics"].as<std::string>());
  for (const auto& m : c.percentile_metrics) {
    if (m != "ttft" && m != "tpot" && m != "itl" && m != "e2el") {
      return Error::invalid("--percentile-metrics", "unknown metric \"" + m + "\" (expected ttft, tpot, itl, e2el)");
    }
  }
  c.metric_percentiles.clear();
  for (const auto& p : split_list(vm["metric-percentiles"].as<std::string>())) {
    char* end = nullptr;
    const double v = std::strtod(p.c_str(), &end);
    if (end != p.c_str() + p.size() || !(v > 0 && v < 100)) {
      return Error::invalid("--metric-percentiles", "each percentile must be in (0, 100), got \"" + p + "\"");
    }
    c.metric_percentiles.push_back(v);
  }
  const std::string fallback = vm["output-token-fallback"].as<std::string>();
  if (fallback == "chunks")
    c.output_token_fallback = TokenSource::kChunks;
  else if (fallback == "estimate")
    c.output_token_fallback = TokenSource::kEstimate;
  else
    return Error::invalid("--output-token-fallback", "must be chunks or estimate, got \"" + fallback + "\"");

  // Output.
  if (vm.count("label")) c.label = vm["label"].as<std::string>();
  if (vm.count("save-result")) {
    std::string file = vm["save-result"].as<std::string>();
    if (file.empty())
      file = vm.count("result-filename") ? vm["result-filename"].as<std::string>() : default_result_name(c);
    if (vm.count("result-dir")) file = vm["result-dir"].as<std::string>() + "/" + file;
    c.save_result = file;
  } else if (vm.count("result-filename") || vm.count("result-dir")) {
    return Error::invalid("--result-filename", "needs --save-result");
  }
  c.save_detailed = vm["save-detailed"].as<bool>();
  if (vm.count("plot")) c.plot = vm["plot"].as<std::string>();
  if (vm.count("metadata")) {
    for (const auto& kv : vm["metadata"].as<std::vector<std::string>>()) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        return Error::invalid("--metadata", "expected KEY=VALUE, got \"" + kv + "\"");
      c.metadata.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  c.progress = vm["progress"].as<std::string>();
  if (c.progress != "auto" && c.progress != "on" && c.progress != "off") {
    return Error::invalid("--progress", "must be auto, on or off, got \"" + c.progress + "\"");
  }
  c.scrape_metrics = vm["scrape-metrics"].as<std::string>();
  if (c.scrape_metrics != "auto" && c.scrape_metrics != "on" && c.scrape_metrics != "off") {
    return Error::invalid("--scrape-metrics", "must be auto, on or off, got \"" + c.scrape_metrics + "\"");
  }
  c.scrape_interval_s = vm["scrape-interval"].as<double>();
  if (!(c.scrape_interval_s >= 0.05) || !std::isfinite(c.scrape_interval_s)) {
    return Error::invalid("--scrape-interval", "must be >= 0.05 seconds, got " + format_double(c.scrape_interval_s));
  }
  c.quiet = vm["quiet"].as<bool>();

  // Limits.
  c.request_timeout_s = vm["request-timeout"].as<double>();
  if (!(c.request_timeout_s > 0) || !std::isfinite(c.request_timeout_s)) {
    return Error::invalid("--request-timeout", "must be > 0 seconds, got " + format_double(c.request_timeout_s));
  }
  c.drain_timeout_s = vm["drain-timeout"].as<double>();
  if (!(c.drain_timeout_s >= 0) || !std::isfinite(c.drain_timeout_s)) {
    return Error::invalid("--drain-timeout", "must be >= 0 seconds, got " + format_double(c.drain_timeout_s));
  }
  c.ws_connections = vm["ws-connections"].as<int64_t>();
  if (c.ws_connections < 1 || c.ws_connections > 4096) {
    return Error::invalid("--ws-connections", "must be in [1, 4096], got " + std::to_string(c.ws_connections));
  }
  parsed.config = std::move(c);
  return parsed;
}

}  // namespace aurora::loadgen
