#include "aurora/loadgen/runner.hpp"

#include <sys/resource.h>

#include <csignal>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <deque>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/object.hpp>

#include "asio_util.hpp"
#include "aurora/config/json.hpp"
#include "aurora/loadgen/arrivals.hpp"
#include "aurora/loadgen/client.hpp"
#include "aurora/loadgen/text_kinds.hpp"
#include "aurora/loadgen/workload.hpp"

namespace aurora::loadgen {
namespace {

namespace asio = boost::asio;
using detail::AsyncSemaphore;
using detail::Signal;
using detail::TaskCounter;
using detail::use_tuple;

double cpu_seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}

SteadyClock::duration to_duration(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

std::string now_text() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Logs what escapes a spawned task; tasks catch their own expected failures.
auto log_exceptions(const char* what) {
  return [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "aurora-loadgen: %s: %s\n", what, ex.what());
    }
  };
}

class BenchmarkRun {
 public:
  BenchmarkRun(const LoadgenConfig& config, const RunOptions& options)
      : config_(config),
        options_(options),
        ex_(ioc_.get_executor()),
        tasks_(ex_),
        stop_aux_(ex_),
        aux_tasks_(ex_),
        interrupt_(ex_),
        signals_(ex_),
        cancel_rng_(Rng::derived(config.seed, kCancellationStream)) {}

  Result<RunResult> run() {
    result_.config = config_;
    auto workload = Workload::create(config_.workload);
    if (!workload) return workload.error();
    workload_ = std::move(*workload);
    result_.workload_description = workload_->describe();
    if (const TrafficMix* mix = workload_->mix()) {
      double start = 0;
      for (size_t i = 0; i + 1 < mix->phases().size(); ++i) {
        start += mix->phases()[i].duration_s;
        result_.phase_starts_s.push_back(start);
      }
    }
    auto arrivals = make_arrivals();
    if (!arrivals) return arrivals.error();
    arrivals_.emplace(std::move(*arrivals));

    std::optional<Result<void>> outcome;
    asio::co_spawn(ex_, main_task(), [&](std::exception_ptr e, Result<void> r) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          outcome = Error::make(ErrorCode::kInternal, ex.what());
        }
      } else {
        outcome = std::move(r);
      }
    });
    ioc_.run();
    if (!outcome) return Error::make(ErrorCode::kInternal, "the run ended without a result");
    if (!outcome->ok()) return outcome->error();
    for (auto& r : records_) result_.records.push_back(std::move(r));
    return std::move(result_);
  }

 private:
  Result<ArrivalProcess> make_arrivals() {
    ArrivalConfig a;
    a.seed = config_.seed;
    a.burstiness = config_.burstiness;
    a.max_requests = config_.num_prompts;
    if (!config_.rate_schedule.empty()) {
      auto schedule = RateSchedule::parse(config_.rate_schedule);
      if (!schedule) return schedule.error();
      a.schedule = *schedule;
    } else {
      a.schedule = RateSchedule::constant(config_.request_rate);
    }
    a.ramp_up_strategy = config_.ramp_up_strategy;
    a.ramp_up_start_rps = config_.ramp_up_start_rps;
    a.ramp_up_end_rps = config_.ramp_up_end_rps;
    return ArrivalProcess::create(a);
  }

  double now_s() const { return std::chrono::duration<double>(SteadyClock::now() - t0_).count(); }

  asio::awaitable<Result<void>> main_task() {
    ClientOptions co;
    co.target = config_.target;
    co.backend = config_.backend;
    co.api = config_.api;
    co.sampling = config_.sampling;
    co.request_timeout_s = config_.request_timeout_s;
    co.ws_connections = config_.ws_connections;
    co.output_token_fallback = config_.output_token_fallback;
    co.keep_text = config_.save_detailed;
    if (co.sampling.model.empty()) {
      auto model = co_await discover_model();
      if (!model) co_return model.error();
      co.sampling.model = *model;
    }
    result_.model = co.sampling.model;
    const std::string& dataset = config_.workload.dataset_name;
    if (config_.calibrate_lengths == "auto" && (dataset == "random" || dataset == "synthetic-chat")) {
      result_.length_calibration = co_await calibrate_lengths(co.sampling.model);
      if (result_.length_calibration) {
        WorkloadConfig wc = config_.workload;
        wc.tokens_per_estimate = *result_.length_calibration;
        auto workload = Workload::create(wc);
        if (!workload) co_return workload.error();
        workload_ = std::move(*workload);
      }
    }
    co.t0 = SteadyClock::now();
    client_ = make_stream_client(ex_, co);

    if (config_.num_warmups > 0) co_await warm_up();

    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    result_.started_at = now_text();
    t0_ = SteadyClock::now();
    client_->set_t0(t0_);
    if (options_.handle_signals) watch_signals();
    if (scraping_enabled()) spawn_aux(scrape_loop(), "metrics scraper");
    if (progress_enabled()) spawn_aux(progress_loop(), "progress");

    if (config_.max_concurrency) semaphore_.emplace(ex_, *config_.max_concurrency);
    if (config_.users) {
      for (int64_t u = 0; u < *config_.users; ++u) spawn_task(user_loop());
    } else {
      co_await dispatch();
    }
    // Sending is over (or, for users, bounded by the same rules): wait for what is in flight.
    const std::optional<double> duration = run_duration_s();
    if (!config_.users) stop_sending_ = true;
    if (duration) {
      // Users stop by themselves at the duration; open-loop dispatch has stopped already.
      co_await interrupt_.wait_until(t0_ + to_duration(*duration));
      stop_sending_ = true;
      if (!interrupt_.is_set()) {
        const bool idle = co_await tasks_.wait_idle_until(SteadyClock::now() + to_duration(config_.drain_timeout_s));
        if (!idle) client_->cancel_all("cut_off");
      }
    }
    co_await tasks_.wait_idle();
    signals_.cancel();
    result_.duration_s = last_end_s_ > 0 ? last_end_s_ : now_s();
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    result_.cpu_user_s = cpu_seconds(after.ru_utime) - cpu_seconds(before.ru_utime);
    result_.cpu_system_s = cpu_seconds(after.ru_stime) - cpu_seconds(before.ru_stime);
    result_.connections_opened = client_->connections_opened();

    stop_aux_.notify();
    co_await aux_tasks_.wait_idle();
    if (progress_enabled()) {
      std::fprintf(options_.progress_out, "\r\033[2K");
      std::fflush(options_.progress_out);
    }
    client_->close();
    co_return Result<void>{};
  }

  std::optional<double> run_duration_s() const {
    if (config_.duration_s) return config_.duration_s;
    if (!config_.rate_schedule.empty()) {
      auto schedule = RateSchedule::parse(config_.rate_schedule);
      if (schedule) return schedule->total_duration_s();
    }
    return std::nullopt;
  }

  asio::awaitable<Result<std::string>> discover_model() {
    auto response = co_await http_get(ex_, config_.target, "/v1/models", 10.0);
    if (!response) {
      co_return Error::make(ErrorCode::kUnavailable,
                            "GET /v1/models failed (" + response.error().message + "); pass --model");
    }
    if (response->status != 200) {
      co_return Error::make(ErrorCode::kUnavailable,
                            "GET /v1/models returned HTTP " + std::to_string(response->status) + "; pass --model");
    }
    auto doc = config::JsonDocument::parse(response->body, "/v1/models");
    if (!doc) co_return doc.error();
    auto id = capture_errors([&] { return doc->root()["data"][0]["id"].as_string(); });
    if (!id) co_return Error::make(ErrorCode::kUnavailable, "GET /v1/models: " + id.error().message + "; pass --model");
    co_return *id;
  }

  // Asks the server's tokenizer (POST /tokenize, vLLM's shape: {"count": N}) how many tokens a
  // sample of each prompt kind is, so that --random-input-len means the server's tokens.
  asio::awaitable<std::optional<std::array<double, kNumPromptKinds>>> calibrate_lengths(const std::string& model) {
    std::array<double, kNumPromptKinds> ratios{};
    for (int k = 0; k < kNumPromptKinds; ++k) {
      Rng rng = Rng::derived(config_.seed, 100 + static_cast<uint64_t>(k));
      const std::string text = make_text(static_cast<PromptKind>(k), 512, rng);
      boost::json::object body;
      if (!model.empty()) body["model"] = model;
      body["prompt"] = text;
      body["add_special_tokens"] = false;
      auto response = co_await http_post_json(ex_, config_.target, "/tokenize", config::to_json_text(body), 10.0);
      if (!response || response->status != 200) co_return std::nullopt;
      auto doc = config::JsonDocument::parse(response->body, "/tokenize");
      if (!doc) co_return std::nullopt;
      auto count = capture_errors([&]() -> int64_t {
        const config::JsonValue root = doc->root();
        if (auto c = root.find("count")) return c->as_int();
        return static_cast<int64_t>(root["tokens"].size());
      });
      if (!count || *count <= 0) co_return std::nullopt;
      ratios[static_cast<size_t>(k)] =
          std::clamp(static_cast<double>(*count) / static_cast<double>(estimate_tokens(text)), 0.05, 50.0);
    }
    co_return ratios;
  }

  asio::awaitable<void> warm_up() {
    WorkloadConfig wc = config_.workload;
    wc.seed = config_.seed ^ 0x5eed5eedULL;  // its own prompts: the measured stream stays the same
    auto workload = Workload::create(wc);
    if (!workload) co_return;
    std::deque<RequestRecord> records;
    AsyncSemaphore limit(ex_, config_.max_concurrency.value_or(config_.users.value_or(config_.num_warmups)));
    TaskCounter warm(ex_);
    for (int64_t i = 0; i < config_.num_warmups; ++i) {
      records.emplace_back();
      RequestSpec spec = (*workload)->next(0.0);
      warm.add();
      asio::co_spawn(
          ex_,
          [](BenchmarkRun* self, RequestSpec s, RequestRecord& rec, AsyncSemaphore& lim) -> asio::awaitable<void> {
            co_await lim.acquire();
            co_await self->client_->send(s, rec, std::nullopt);
            lim.release();
          }(this, std::move(spec), records.back(), limit),
          [&warm](std::exception_ptr e) {
            log_exceptions("warm-up")(e);
            warm.done();
          });
    }
    co_await warm.wait_idle();
    for (const auto& r : records) result_.warmups_completed += r.success ? 1 : 0;
  }

  template <class Awaitable>
  void spawn_task(Awaitable task) {
    tasks_.add();
    asio::co_spawn(ex_, std::move(task), [this](std::exception_ptr e) {
      log_exceptions("request")(e);
      tasks_.done();
    });
  }

  template <class Awaitable>
  void spawn_aux(Awaitable task, const char* what) {
    aux_tasks_.add();
    asio::co_spawn(ex_, std::move(task), [this, what](std::exception_ptr e) {
      log_exceptions(what)(e);
      aux_tasks_.done();
    });
  }

  // The first SIGINT/SIGTERM stops the run politely; a second one exits at once.
  void watch_signals() {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      result_.interrupted = true;
      stop_sending_ = true;
      interrupt_.notify();
      if (semaphore_) semaphore_->cancel_waiters();
      client_->cancel_all("interrupted");
      signals_.async_wait([](const boost::system::error_code& ec2, int) {
        if (!ec2) std::_Exit(130);
      });
    });
  }

  // Open loop: one arrival after another at its scheduled time. Under --max-concurrency the
  // dispatcher itself waits for a slot (FIFO), so arrivals queue on the client side without
  // piling up coroutines, and a timed run stops waiting at its end.
  asio::awaitable<void> dispatch() {
    const std::optional<double> duration = run_duration_s();
    const auto end = duration ? t0_ + to_duration(*duration) : SteadyClock::time_point::max();
    for (;;) {
      const std::optional<double> t = arrivals_->next();
      if (!t) break;
      if (duration && *t >= *duration) break;
      const auto when = t0_ + to_duration(*t);
      if (when > SteadyClock::now() && co_await interrupt_.wait_until(when)) break;
      if (interrupt_.is_set()) break;
      if (semaphore_ && !co_await semaphore_->acquire_until(end)) {
        ++result_.num_not_sent;  // arrived, but the run ended before a slot freed up
        break;
      }
      if (interrupt_.is_set()) {
        ++result_.num_not_sent;
        break;
      }
      RequestSpec spec = workload_->next(*t);
      records_.emplace_back();
      RequestRecord& rec = records_.back();
      rec.index = static_cast<int64_t>(records_.size()) - 1;
      rec.arrival_s = *t;
      plan_cancellation(rec);
      spawn_task(request_task(std::move(spec), rec));
    }
  }

  asio::awaitable<void> request_task(RequestSpec spec, RequestRecord& rec) {
    ++in_flight_;
    co_await client_->send(spec, rec, cancel_after(rec));
    --in_flight_;
    if (semaphore_) semaphore_->release();
    on_finished(rec);
  }

  // Closed loop: each user sends its next request when the previous one ends.
  asio::awaitable<void> user_loop() {
    const std::optional<double> duration = run_duration_s();
    for (;;) {
      if (stop_sending_) break;
      if (config_.num_prompts && static_cast<int64_t>(records_.size()) >= *config_.num_prompts) break;
      const double t = now_s();
      if (duration && t >= *duration) break;
      RequestSpec spec = workload_->next(t);
      records_.emplace_back();
      RequestRecord& rec = records_.back();
      rec.index = static_cast<int64_t>(records_.size()) - 1;
      rec.arrival_s = t;
      plan_cancellation(rec);
      ++in_flight_;
      co_await client_->send(spec, rec, cancel_after(rec));
      --in_flight_;
      on_finished(rec);
      if (config_.think_time_ms > 0) {
        co_await interrupt_.wait_until(SteadyClock::now() + to_duration(config_.think_time_ms / 1000.0));
      }
    }
  }

  // Requests are created one at a time in arrival order, so the draws, one per request from their
  // own stream, pick the same requests for a seed whatever the timing, and leave the arrival and
  // prompt streams untouched.
  void plan_cancellation(RequestRecord& rec) {
    if (config_.request_cancellation_rate <= 0) return;
    rec.cancel_planned = cancel_rng_.uniform01() * 100.0 < config_.request_cancellation_rate;
  }

  std::optional<double> cancel_after(const RequestRecord& rec) const {
    if (!rec.cancel_planned) return std::nullopt;
    return config_.request_cancellation_delay_s;
  }

  void on_finished(const RequestRecord& rec) {
    last_end_s_ = std::max(last_end_s_, rec.end_s);
    ++done_;
    if (rec.cancelled) {
      ++cancelled_;
    } else if (!rec.success) {
      ++failed_;
    }
    recent_.push_back({rec.end_s, rec.success ? rec.ttft_s() : -1.0, rec.cancelled ? 0 : rec.output_tokens});
    while (!recent_.empty() && recent_.front().t < rec.end_s - kRecentWindowS) recent_.pop_front();
  }

  bool scraping_enabled() const {
    if (config_.scrape_metrics == "off") return false;
    return true;
  }

  bool progress_enabled() const {
    if (config_.progress == "on") return true;
    if (config_.progress == "off") return false;
    return options_.progress_is_tty;
  }

  asio::awaitable<void> scrape_loop() {
    int misses = 0;
    bool found = false;
    while (!stop_aux_.is_set()) {
      const double t = now_s();
      auto response = co_await http_get(ex_, config_.target, "/metrics", 5.0);
      if (response && response->status == 200) {
        PlanSnapshot snap = extract_aurora_gauges(parse_prometheus_text(response->body), t);
        if (snap.plan_version || !snap.balance_by_layer.empty()) {
          found = true;
          result_.plan_snapshots.push_back(std::move(snap));
        } else {
          ++misses;
        }
      } else {
        ++misses;
      }
      // "auto": a server without Aurora's gauges (vLLM, SGLang) is left alone after 3 tries.
      if (config_.scrape_metrics == "auto" && !found && misses >= 3) co_return;
      co_await stop_aux_.wait_until(SteadyClock::now() + to_duration(config_.scrape_interval_s));
    }
  }

  asio::awaitable<void> progress_loop() {
    while (!stop_aux_.is_set()) {
      print_progress();
      co_await stop_aux_.wait_until(SteadyClock::now() + std::chrono::milliseconds(500));
    }
  }

  void print_progress() {
    const double t = now_s();
    double window = std::min(kRecentWindowS, std::max(t, 1e-9));
    std::vector<double> ttfts;
    double tokens = 0;
    int64_t n = 0;
    for (const auto& r : recent_) {
      if (r.t < t - window) continue;
      ++n;
      tokens += static_cast<double>(r.output_tokens);
      if (r.ttft >= 0) ttfts.push_back(r.ttft);
    }
    std::sort(ttfts.begin(), ttfts.end());
    char ttft_text[32] = "-";
    if (!ttfts.empty()) std::snprintf(ttft_text, sizeof ttft_text, "%.1f ms", percentile_linear(ttfts, 50) * 1000.0);
    std::string total;
    if (config_.num_prompts) {
      total += '/';
      total += std::to_string(*config_.num_prompts);
    }
    std::string cancelled;
    if (config_.request_cancellation_rate > 0) cancelled = "  cancelled " + std::to_string(cancelled_);
    std::fprintf(
        options_.progress_out,
        "\r\033[2K[%6.1fs] done %lld%s  failed %lld%s  in flight %lld  rate %.2f req/s  %.0f tok/s  p50 TTFT %s", t,
        static_cast<long long>(done_), total.c_str(), static_cast<long long>(failed_), cancelled.c_str(),
        static_cast<long long>(in_flight_), static_cast<double>(n) / window, tokens / window, ttft_text);
    std::fflush(options_.progress_out);
  }

  static constexpr double kRecentWindowS = 10.0;
  static constexpr uint64_t kCancellationStream = 5;  // Rng::derived stream (1: arrivals, 2-4: workloads)
  struct Recent {
    double t;
    double ttft;
    int64_t output_tokens;
  };

  LoadgenConfig config_;
  RunOptions options_;
  asio::io_context ioc_;
  asio::any_io_executor ex_;
  RunResult result_;
  std::unique_ptr<Workload> workload_;
  std::optional<ArrivalProcess> arrivals_;
  std::unique_ptr<StreamClient> client_;
  std::optional<AsyncSemaphore> semaphore_;
  TaskCounter tasks_;
  Signal stop_aux_;
  TaskCounter aux_tasks_;
  Signal interrupt_;
  asio::signal_set signals_;
  std::deque<RequestRecord> records_;  // stable addresses while requests run
  SteadyClock::time_point t0_;
  bool stop_sending_ = false;
  double last_end_s_ = 0;
  int64_t done_ = 0;
  int64_t failed_ = 0;
  int64_t cancelled_ = 0;
  int64_t in_flight_ = 0;
  Rng cancel_rng_;
  std::deque<Recent> recent_;
};

}  // namespace

Result<RunResult> run_benchmark(const LoadgenConfig& config, const RunOptions& options) {
  BenchmarkRun run(config, options);
  return run.run();
}

}  // namespace aurora::loadgen
