#include "aurora/server/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <boost/asio/signal_set.hpp>

#include "asio.hpp"
#include "fd_limit.hpp"
#include "http_framing.hpp"
#include "http_session.hpp"
#include "log.hpp"
#include "server_state.hpp"

namespace aurora::server {

using std::chrono::milliseconds;

ServerState::ServerState(config::ServerConfig c)
    : config(std::move(c)),
      hosts(host_policy_for(config)),
      max_connections(config.max_connections),
      start_time_s(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                       .count()) {}

int64_t ServerState::open_files_needed() const {
  return int64_t{config.max_connections} + config.reserved_connections + kSpareFds;
}

struct Server::Runtime {
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  Strand accept_strand{net::make_strand(ioc)};
  tcp::acceptor acceptor{accept_strand};
  net::signal_set signals{ioc};
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool started = false;

  std::mutex mutex;
  std::condition_variable wake;
  bool drain_requested = false;
  bool stopped = false;
  int signals_seen = 0;
};

namespace {

void set_int_option(int fd, int level, int name, int value) {
  // Best effort: an option the kernel lacks must not fail the connection.
  (void)::setsockopt(fd, level, name, &value, sizeof(value));
}

void configure_socket(tcp::socket& socket, const config::ServerConfig& config) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // tokens go out as they come
  const int fd = socket.native_handle();
  if (config.tcp_keepalive_idle_s > 0) {
    set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, config.tcp_keepalive_idle_s);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, config.tcp_keepalive_interval_s);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, config.tcp_keepalive_count);
  }
  // A peer that vanished without FIN or RST is otherwise noticed only after ~15 minutes of retries.
  if (config.tcp_user_timeout_ms > 0) {
    set_int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(config.tcp_user_timeout_ms));
  }
}

void reject_connection(tcp::socket& socket, int retry_after_s) {
  // Past max_connections and the reserve: one best-effort, non-blocking answer, then close.
  const std::string body =
      R"({"error":{"message":"too many open connections","type":"service_unavailable_error","param":null,"code":"too_many_connections"}})";
  const std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: " +
                               std::to_string(retry_after_s) +
                               "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                               body;
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(response), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

awaitable<void> accept_loop(std::shared_ptr<ServerState> state, tcp::acceptor& acceptor, net::io_context& ioc) {
  net::steady_timer backoff(co_await net::this_coro::executor);
  // One line per 5 s at most: a full descriptor table fails every accept until a connection closes.
  LogThrottle accept_errors(std::chrono::seconds(5));
  for (;;) {
    // Each connection gets its own strand: its handlers never run concurrently.
    auto [ec, accepted] = co_await acceptor.async_accept(net::make_strand(ioc), use_tuple);
    if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE/ENFILE and friends: the connection stays in the backlog; back off instead of
      // spinning on a full table, and say so without flooding the log.
      if (auto suppressed = accept_errors.allow(std::chrono::steady_clock::now())) {
        log_warn("accept failed: " + ec.message() + " (backing off 100 ms" +
                 (*suppressed > 0 ? "; " + std::to_string(*suppressed) + " more failures since the last report" : "") +
                 ")");
      }
      backoff.expires_after(milliseconds(100));
      co_await backoff.async_wait(use_tuple);
      continue;
    }
    tcp::socket socket(std::move(accepted));
    // Past the cap, a small reserve still answers probes (/health, /metrics, /v1/models), so that a
    // full server reports itself instead of timing out; past the reserve, 503 and close.
    const int64_t open = state->metrics.connections_open.load();
    if (open >= int64_t{state->max_connections} + state->config.reserved_connections) {
      state->metrics.count_rejection(RejectReason::kTooManyConnections);
      reject_connection(socket, state->config.retry_after_s);
      continue;
    }
    const bool reserve = open >= state->max_connections;
    configure_socket(socket, state->config);
    auto executor = socket.get_executor();
    auto session = std::make_shared<HttpSession>(std::move(socket), state, reserve);
    std::weak_ptr<HttpSession> weak = session;
    state->sessions.spawn(
        executor, HttpSession::run(std::move(session)),
        [weak](StopMode mode) {
          if (auto s = weak.lock()) s->stop(mode);
        },
        "http session");
  }
}

bool is_loopback(const net::ip::address& address) { return address.is_loopback(); }

}  // namespace

Server::Server(config::ServerConfig config)
    : state_(std::make_shared<ServerState>(std::move(config))), runtime_(std::make_unique<Runtime>()) {}

Server::~Server() { stop(); }

void Server::set_engine(std::shared_ptr<runtime::Engine> engine) { state_->set_engine(std::move(engine)); }

void Server::add_route(const std::string& method, const std::string& path, RouteHandler handler) {
  state_->routes.push_back(CustomRoute{method, path, std::move(handler)});
}

uint16_t Server::port() const { return runtime_->port; }

Result<void> Server::start() {
  auto& rt = *runtime_;
  const auto& config = state_->config;
  if (rt.started) return Error::make(ErrorCode::kInternal, "the server is already started");
  auto valid = config::validate(config);
  if (!valid) return valid;
  const std::string where = config.host + ":" + std::to_string(config.port);
  boost::system::error_code ec;
  tcp::resolver resolver(rt.ioc);
  auto endpoints = resolver.resolve(config.host, std::to_string(config.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) return Error::invalid("host", "cannot resolve " + where + ": " + ec.message());
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  if (!is_loopback(endpoint.address()) && config.api_key.empty() && !config.allow_insecure_remote) {
    return Error::invalid("host", where +
                                      " is reachable from other machines and no --api-key is set; set one, or "
                                      "pass --allow-insecure-remote true to serve without authentication");
  }
  state_->hosts = make_host_policy(config.allowed_hosts, config.host, endpoint.address().to_string(),
                                   is_loopback(endpoint.address()));
  // Every connection holds a descriptor: fit the cap to the open-file limit before accepting any.
  const FdLimit fds = raise_open_file_limit(state_->open_files_needed());
  auto budget = fit_connections(fds, config.max_connections, config.reserved_connections);
  if (!budget) return budget.error();
  state_->max_connections = budget->max_connections;
  if (fds.soft != fds.soft_was) {
    log_info("raised the open-file limit from " + std::to_string(fds.soft_was) + " to " + std::to_string(fds.soft));
  }
  if (!budget->warning.empty()) log_warn(budget->warning);
  rt.acceptor.open(endpoint.protocol(), ec);
  if (!ec) rt.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) rt.acceptor.bind(endpoint, ec);
  if (!ec) rt.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Error::make(ErrorCode::kUnavailable, "cannot listen on " + where + ": " + ec.message());
  rt.port = rt.acceptor.local_endpoint().port();
  rt.work.emplace(rt.ioc.get_executor());
  net::co_spawn(rt.accept_strand, accept_loop(state_, rt.acceptor, rt.ioc), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_error(std::string("listener failed: ") + e.what());
    }
  });
  int threads = config.io_threads;
  if (threads <= 0) threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()) / 2, 1, 4);
  for (int i = 0; i < threads; ++i) {
    rt.threads.emplace_back([this] {
      // Sessions catch their own exceptions; this loop is the last line, so one bug never ends the process.
      for (;;) {
        try {
          runtime_->ioc.run();
          return;
        } catch (const std::exception& e) {
          log_error(std::string("io thread caught: ") + e.what());
        } catch (...) {
          log_error("io thread caught an unknown exception");
        }
      }
    });
  }
  rt.started = true;
  log_info("listening on " + endpoint.address().to_string() + ":" + std::to_string(rt.port) + " (" +
           std::to_string(threads) + " io threads)");
  std::string names;
  for (const auto& n : state_->hosts.names) names += (names.empty() ? "" : ", ") + n;
  log_info(state_->hosts.any ? std::string("Host check off: any Host is answered (--allowed-hosts to restrict it)")
                             : "answering Host " + names + " only (any port; --allowed-hosts to change)");
  return {};
}

void Server::drain() {
  state_->draining.store(true);
  std::lock_guard lock(runtime_->mutex);
  runtime_->drain_requested = true;
  runtime_->wake.notify_all();
}

int Server::run(bool handle_signals) {
  auto& rt = *runtime_;
  if (!rt.started) return 1;
  if (handle_signals) {
    rt.signals.add(SIGINT);
    rt.signals.add(SIGTERM);
    struct Waiter {
      Server* server;
      void operator()(const boost::system::error_code& ec, int signal) const {
        if (ec) return;
        auto& r = *server->runtime_;
        if (++r.signals_seen > 1) {
          log_warn("second signal " + std::to_string(signal) + ": exiting now");
          std::_Exit(128 + signal);
        }
        log_info("signal " + std::to_string(signal) + ": draining (a second signal exits at once)");
        server->drain();
        r.signals.async_wait(*this);
      }
    };
    rt.signals.async_wait(Waiter{this});
  }
  {
    std::unique_lock lock(rt.mutex);
    rt.wake.wait(lock, [&] { return rt.drain_requested || rt.stopped; });
    if (rt.stopped) return 0;
  }
  perform_drain();
  stop();
  log_info("drained; exiting");
  return 0;
}

void Server::perform_drain() {
  const auto& config = state_->config;
  const auto start = std::chrono::steady_clock::now();
  state_->draining.store(true);
  // 1. Take no new work: new requests (and /health) get 503 + Connection: close, so probes see the
  //    drain instead of a refused connection. 2. Idle keep-alive connections close; WebSockets take
  //    no new requests. The listener closes in stop().
  state_->sessions.request_stop(StopMode::kDrain);
  // 3. The engine lets running requests finish until the deadline, then cancels the rest; their
  //    streams end with an error event and [DONE].
  if (auto engine = state_->engine()) engine->shutdown(milliseconds(config.drain_timeout_ms));
  // 4. Sessions flush their last events and close; then whatever remains is closed firmly.
  const auto spent = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  const auto flush = std::clamp(milliseconds(config.drain_timeout_ms) - spent, milliseconds(200), milliseconds(500));
  if (!state_->sessions.wait_empty(flush)) {
    log_warn(std::to_string(state_->sessions.size()) + " connections still open after the drain: closing them");
    state_->sessions.request_stop(StopMode::kForce);
    state_->sessions.wait_empty(milliseconds(300));
  }
}

void Server::stop() {
  auto& rt = *runtime_;
  {
    std::lock_guard lock(rt.mutex);
    if (rt.stopped) return;
    rt.stopped = true;
    rt.wake.notify_all();
  }
  if (!rt.started) return;
  state_->draining.store(true);
  net::post(rt.accept_strand, [&rt] {
    boost::system::error_code ignored;
    rt.acceptor.close(ignored);
    rt.signals.cancel(ignored);
  });
  state_->sessions.request_stop(StopMode::kForce);
  state_->sessions.wait_empty(milliseconds(500));
  rt.work.reset();
  rt.ioc.stop();
  for (auto& t : rt.threads) {
    if (t.joinable()) t.join();
  }
  rt.threads.clear();
}

}  // namespace aurora::server
