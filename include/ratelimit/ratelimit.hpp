#pragma once

/// ratelimit: decide in nanoseconds whether a request may pass. Everything in-memory;
/// no dependency beyond the standard library. The Redis storage is <ratelimit/redis.hpp>.

#include "ratelimit/algorithm.hpp"
#include "ratelimit/algorithms/fixed_window.hpp"
#include "ratelimit/algorithms/leaky_bucket.hpp"
#include "ratelimit/algorithms/sliding_log.hpp"
#include "ratelimit/algorithms/sliding_window_counter.hpp"
#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/clock.hpp"
#include "ratelimit/coarse_clock.hpp"
#include "ratelimit/concurrency.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/http.hpp"
#include "ratelimit/limiter.hpp"
#include "ratelimit/metrics.hpp"
#include "ratelimit/multi_limiter.hpp"
#include "ratelimit/observer.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/quota_spec.hpp"
#include "ratelimit/reservation.hpp"
#include "ratelimit/storage.hpp"
#include "ratelimit/storage/in_memory.hpp"
#include "ratelimit/tiered_limiter.hpp"
