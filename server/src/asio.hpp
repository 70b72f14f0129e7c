// Private: the Asio/Beast vocabulary of the server (aliases, the as_tuple token of Boost 1.81).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace aurora::server {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
template <class T = void>
using awaitable = net::awaitable<T>;

// Expected outcomes (EOF, timeouts, cancellation) come back as values: `auto [ec, n] = co_await
// op(use_tuple)`. Boost 1.81 has as_tuple in asio:: (experimental:: keeps a deprecated alias).
inline constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

using Strand = net::strand<net::io_context::executor_type>;

}  // namespace aurora::server
