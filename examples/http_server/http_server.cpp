// A real HTTP API protected by ratelimit, as middleware in front of every route:
//
// * who: the X-API-Key header, else the client's address (X-Forwarded-For only from a
//   trusted proxy); a request with neither gets 400, never one bucket shared by all;
// * how much: each API key's plan names its quota (free, pro, ...), anonymous clients get
//   the "anonymous" plan, and each route has a cost (a report costs 10 reads);
// * where: in this process, or in Redis with --redis, so that every server shares one quota;
// * what it says: 429 with Retry-After, X-RateLimit-* and the IETF RateLimit fields, and
//   Prometheus metrics at /metrics.
//
//   http_server --port 8080 --plan free=100/h --plan pro="1000/h burst 100"
//               --key alice=free --key bob=pro [--redis redis://127.0.0.1:6379]
//               [--trusted-proxy 10.0.0.0/8]
//
// With --port 0 it picks a free port. It prints "listening on <port>" once it accepts.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <ratelimit/http.hpp>
#include <ratelimit/metrics.hpp>
#include <ratelimit/ratelimit.hpp>
#include <ratelimit/redis.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct plan {
  ratelimit::quota quota;
  ratelimit::http::policy policy;
};

struct options {
  int port = 8080;
  std::map<std::string, plan, std::less<>> plans;
  std::map<std::string, std::string, std::less<>> plan_of_key;  // API key -> plan name
  std::optional<std::pair<std::string, int>> redis;
  ratelimit::http::identity_options identity;
};

/// What each route costs; routes not listed are not limited (/metrics, /health).
std::optional<std::int64_t> cost_of(std::string_view path) {
  if (path == "/items") return 1;
  if (path == "/reports") return 10;
  return std::nullopt;
}

std::pair<std::string, std::string> split(std::string_view text, char at) {
  const auto position = text.find(at);
  if (position == std::string_view::npos) {
    throw std::invalid_argument("expected NAME" + std::string(1, at) + "VALUE, got \"" +
                                std::string(text) + "\"");
  }
  return {std::string(text.substr(0, position)), std::string(text.substr(position + 1))};
}

options parse(int argc, char** argv) {
  options o;
  const auto add_plan = [&](const std::string& name, std::string_view spec) {
    const ratelimit::quota q = ratelimit::parse_quota(spec);
    o.plans.insert_or_assign(name, plan{q, ratelimit::http::policy{name, q}});
  };
  add_plan("anonymous", "60/min burst 10");
  add_plan("free", "100/h");
  add_plan("pro", "1000/h burst 100");
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
    const std::string_view value = argv[++i];
    if (flag == "--port") {
      o.port = std::stoi(std::string(value));
    } else if (flag == "--plan") {
      const auto [name, spec] = split(value, '=');
      add_plan(name, spec);
    } else if (flag == "--key") {
      auto [key, plan_name] = split(value, '=');
      if (!o.plans.contains(plan_name)) throw std::invalid_argument("no plan " + plan_name);
      o.plan_of_key.insert_or_assign(std::move(key), std::move(plan_name));
    } else if (flag == "--redis") {
      // redis://host:port, or host:port.
      const std::string_view scheme = "redis://";
      const auto [host, port] =
          split(value.starts_with(scheme) ? value.substr(scheme.size()) : value, ':');
      o.redis = {host, std::stoi(port)};
    } else if (flag == "--trusted-proxy") {
      o.identity.trusted_proxies.emplace_back(value);
    } else {
      throw std::invalid_argument("unknown flag " + std::string(flag));
    }
  }
  return o;
}

template <class Clock, class Storage>
int serve(const options& o, Storage storage) {
  using bucket = ratelimit::token_bucket<Clock, Storage, ratelimit::metrics>;
  ratelimit::metrics metrics{"api"};
  const plan& anonymous = o.plans.at("anonymous");

  // Each request's plan: its API key's, else the anonymous one. Keys are "key:<api key>"
  // or "ip:<address>" (see client_identity), so an address can never pass for a key.
  const auto plan_of = [&](std::string_view client) -> const plan& {
    if (client.starts_with("key:")) {
      if (const auto found = o.plan_of_key.find(client.substr(4)); found != o.plan_of_key.end()) {
        return o.plans.at(found->second);
      }
    }
    return anonymous;
  };
  ratelimit::tiered_limiter limiter{
      bucket{anonymous.quota, Clock(), std::move(storage), metrics},
      [&](std::string_view client) -> const ratelimit::quota& { return plan_of(client).quota; }};
  const ratelimit::http::client_identity identity{o.identity};

  httplib::Server server;
  // A worker holds a kept-alive connection between its requests: size the pool for the
  // connections, not for the cores.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
  // holds the body for the client's delayed ACK, 40 ms a response.
  server.set_tcp_nodelay(true);
  server.set_pre_routing_handler([&](const httplib::Request& request, httplib::Response& response) {
    const std::optional<std::int64_t> cost = cost_of(request.path);
    if (!cost) return httplib::Server::HandlerResponse::Unhandled;
    const auto header = [&](const char* name) -> std::optional<std::string_view> {
      if (!request.has_header(name)) return std::nullopt;
      const auto& [first, last] = request.headers.equal_range(name);
      return std::string_view{first->second};
    };
    const auto client =
        identity.identify(header("X-API-Key"), request.remote_addr, header("X-Forwarded-For"));
    if (!client) {
      response.status = 400;
      response.set_content("no client identity\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    const ratelimit::decision d = limiter.try_acquire(client->value(), *cost);
    const auto headers = ratelimit::http::set_headers(
        [&](std::string_view name, std::string_view value) {
          response.set_header(std::string(name), std::string(value));
        },
        d, plan_of(client->value()).policy, std::chrono::system_clock::now());
    if (d.allowed) return httplib::Server::HandlerResponse::Unhandled;  // on to the route
    response.status = headers.status();
    response.set_content("rate limited\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  server.Get("/items", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("[\"an item\"]\n", "application/json");
  });
  server.Get("/reports", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{\"report\": \"expensive\"}\n", "application/json");
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.prometheus(), "text/plain; version=0.0.4");
  });

  const int port = o.port == 0 ? server.bind_to_any_port("127.0.0.1")
                               : (server.bind_to_port("127.0.0.1", o.port) ? o.port : -1);
  if (port < 0) {
    std::fprintf(stderr, "http_server: cannot listen on port %d\n", o.port);
    return 1;
  }
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const options o = parse(argc, argv);
    if (o.redis) {
      // Every server of the fleet shares one quota per client, on Redis's clock.
      return serve<std::chrono::system_clock>(
          o, ratelimit::redis_storage{{.host = o.redis->first,
                                       .port = o.redis->second,
                                       .key_prefix = "http_server:",
                                       .on_failure = ratelimit::failure_policy::local_fallback}});
    }
    return serve<std::chrono::steady_clock>(o, ratelimit::in_memory_storage{});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 2;
  }
}
