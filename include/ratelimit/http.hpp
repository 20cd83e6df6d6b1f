#pragma once

/// HTTP, independent of any HTTP library: response headers from decisions
/// (<ratelimit/http/headers.hpp>) and the key to limit a request on
/// (<ratelimit/http/identity.hpp>).
///
///     ratelimit::http::client_identity identity{{.trusted_proxies = {"10.0.0.0/8"}}};
///     const ratelimit::http::policy per_minute{"per-minute", quota::per_minute(100)};
///
///     auto key = identity.identify(req.header("X-API-Key"), req.peer(),
///                                  req.header("X-Forwarded-For"));
///     if (!key) return reply(400);  // no usable identity: never one shared bucket
///     auto d = limiter.try_acquire(key->value());
///     auto h = ratelimit::http::headers_for(d, per_minute, std::chrono::system_clock::now());
///     h.apply([&](std::string_view name, std::string_view value) { res.set(name, value); });
///     res.status = h.status(res.status);

#include "ratelimit/http/headers.hpp"
#include "ratelimit/http/identity.hpp"
#include "ratelimit/http/ip_address.hpp"
