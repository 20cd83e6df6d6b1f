#pragma once

/// ratelimit with Redis: everything in <ratelimit/ratelimit.hpp>, plus redis_storage, whose
/// state lives in a Redis server that many processes share. Needs hiredis (link
/// ratelimit::redis).

#include "ratelimit/ratelimit.hpp"
#include "ratelimit/storage/redis.hpp"
#include "ratelimit/storage/redis/concurrency.hpp"
