// The compiled parts of Asio and Beast, built once for the whole project
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION, set on aurora_server):
// every other translation unit compiles only declarations, which keeps the 2-core build fast.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
