// The HTTP/WebSocket server (placeholder until issue 4 lands).
#pragma once
namespace aurora::server {
const char* server_name();
}  // namespace aurora::server
