#include "aurora/server/server.hpp"
namespace aurora::server {
const char* server_name() { return "aurora"; }
}  // namespace aurora::server
