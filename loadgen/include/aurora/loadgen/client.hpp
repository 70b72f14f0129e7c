// StreamClient: sends one streaming request (SSE over HTTP/1.1 keep-alive, or Aurora's
// multiplexed WebSocket) and fills in its RequestRecord with client-side timestamps.
//
// Contract: all calls run on one io_context thread. send() never throws and always finishes the
// record (success, or a failure with a reason), within the request timeout. Connections are
// pooled and reused (HTTP keep-alive; a few WebSocket sockets shared by id). cancel_all() ends
// every request in flight with the given failure reason (used when a timed run is cut off).
// send() with cancel_after_s cancels the request that long after it was fully written (AIPerf's
// --request-cancellation-delay), the way a real client gives up: SSE closes the connection (which
// is then not reused); WebSocket sends `response.cancel` for the id and stops waiting for it. A
// response that ends first is a normal success.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/openai_wire.hpp"
#include "aurora/loadgen/workload.hpp"

namespace aurora::loadgen {

using SteadyClock = std::chrono::steady_clock;

struct ClientOptions {
  Target target;
  Backend backend = Backend::kOpenAI;
  ApiKind api = ApiKind::kCompletions;
  SamplingOptions sampling;
  double request_timeout_s = 300;
  int64_t ws_connections = 1;
  TokenSource output_token_fallback = TokenSource::kChunks;
  bool keep_text = false;      // store generated text in the record
  SteadyClock::time_point t0;  // record times are seconds since t0
};

class StreamClient {
 public:
  virtual ~StreamClient() = default;
  virtual boost::asio::awaitable<void> send(const RequestSpec& spec, RequestRecord& record,
                                            std::optional<double> cancel_after_s) = 0;
  virtual void cancel_all(const std::string& reason) = 0;
  virtual void close() = 0;  // closes idle connections; call once no request is in flight
  virtual int64_t connections_opened() const = 0;
  // Moves the time origin of later records (the warm-up and the run have their own).
  void set_t0(SteadyClock::time_point t0) { *t0_ = t0; }

 protected:
  double seconds_since_t0() const { return std::chrono::duration<double>(SteadyClock::now() - *t0_).count(); }
  std::shared_ptr<SteadyClock::time_point> t0_ = std::make_shared<SteadyClock::time_point>();
};

std::unique_ptr<StreamClient> make_stream_client(boost::asio::any_io_executor ex, const ClientOptions& options);

struct HttpResult {
  int status = 0;
  std::string content_type;
  std::string body;
};

// A plain GET (for /v1/models, /metrics, /health) on its own connection; errors as values.
boost::asio::awaitable<Result<HttpResult>> http_get(boost::asio::any_io_executor ex, const Target& target,
                                                    const std::string& path, double timeout_s);
// A POST of a JSON body (for /tokenize), the same way.
boost::asio::awaitable<Result<HttpResult>> http_post_json(boost::asio::any_io_executor ex, const Target& target,
                                                          const std::string& path, const std::string& body,
                                                          double timeout_s);

}  // namespace aurora::loadgen
