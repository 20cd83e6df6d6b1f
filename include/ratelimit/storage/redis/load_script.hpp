#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <string_view>

#include "ratelimit/storage/redis/connection_pool.hpp"

namespace ratelimit::detail::redis {

/// Sends `SCRIPT LOAD source` on `c`: after a restart, failover or SCRIPT FLUSH, the script
/// an EVALSHA named is loaded again. True if the server now holds it under `sha`.
inline bool load_script(connection& c, std::string_view source, std::string_view sha,
                        clock::time_point deadline) {
  const std::array<std::string_view, 3> argv{"SCRIPT", "LOAD", source};
  c.append(argv);
  if (!c.flush(deadline)) return false;
  redisReply* reply = c.receive(deadline);
  if (reply == nullptr) return false;
  const bool loaded =
      reply->type == REDIS_REPLY_STRING && std::string_view{reply->str, reply->len} == sha;
  freeReplyObject(reply);
  return loaded;
}

}  // namespace ratelimit::detail::redis
