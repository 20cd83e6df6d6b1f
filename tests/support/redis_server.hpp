#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

/// A real redis-server of a test's own, on 127.0.0.1 at a free port, without persistence;
/// and the one-command client the tests use to poke at it.
namespace ratelimit_test {

/// One Redis reply copied out of hiredis; `failure` means no reply came (refused, timed out).
struct redis_reply {
  enum class kind { nil, integer, string, status, error, array, failure };

  kind type = kind::nil;
  std::int64_t integer = 0;
  std::string text;  ///< string, status, error; for failure, hiredis' reason
  std::vector<redis_reply> elements;

  static redis_reply of_status(std::string text) { return {kind::status, 0, std::move(text), {}}; }
  static redis_reply of_string(std::string text) { return {kind::string, 0, std::move(text), {}}; }
  static redis_reply of_integer(std::int64_t value) { return {kind::integer, value, {}, {}}; }
  static redis_reply of_array(std::vector<redis_reply> elements) {
    return {kind::array, 0, {}, std::move(elements)};
  }

  friend bool operator==(const redis_reply&, const redis_reply&) = default;

  friend std::ostream& operator<<(std::ostream& out, const redis_reply& r) {
    switch (r.type) {
      case kind::nil:
        return out << "(nil)";
      case kind::integer:
        return out << "(integer) " << r.integer;
      case kind::string:
        return out << '"' << r.text << '"';
      case kind::status:
        return out << "(status) " << r.text;
      case kind::error:
        return out << "(error) " << r.text;
      case kind::failure:
        return out << "(no reply: " << r.text << ')';
      case kind::array:
        out << '[';
        for (std::size_t i = 0; i < r.elements.size(); ++i) out << (i ? ", " : "") << r.elements[i];
        return out << ']';
    }
    return out;
  }
};

inline std::string to_argument(std::string_view s) { return std::string{s}; }
inline std::string to_argument(std::integral auto n) { return std::to_string(n); }

/// One hiredis connection to 127.0.0.1:port; connect and command timeouts are `timeout`.
/// Not thread-safe.
class redis_client {
 public:
  redis_client(int port, std::chrono::milliseconds timeout) {
    const timeval tv = to_timeval(timeout);
    context_.reset(redisConnectWithTimeout("127.0.0.1", port, tv));
    if (context_ && context_->err == 0) redisSetTimeout(context_.get(), tv);
  }

  /// Binary-safe: arguments travel with their lengths.
  redis_reply command(const std::vector<std::string>& arguments) {
    if (!context_) return {redis_reply::kind::failure, 0, "cannot allocate a context", {}};
    if (context_->err != 0) return {redis_reply::kind::failure, 0, context_->errstr, {}};
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& a : arguments) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* raw = static_cast<redisReply*>(redisCommandArgv(
        context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (raw == nullptr) return {redis_reply::kind::failure, 0, context_->errstr, {}};
    redis_reply result = copy(*raw);
    freeReplyObject(raw);
    return result;
  }

  template <class... Args>
  redis_reply command(const Args&... args) {
    return command(std::vector<std::string>{to_argument(args)...});
  }

 private:
  static timeval to_timeval(std::chrono::milliseconds t) {
    return {static_cast<time_t>(t.count() / 1000),
            static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  }

  static redis_reply copy(const redisReply& r) {
    using kind = redis_reply::kind;
    switch (r.type) {
      case REDIS_REPLY_INTEGER:
        return redis_reply::of_integer(r.integer);
      case REDIS_REPLY_STRING:
        return redis_reply::of_string({r.str, r.len});
      case REDIS_REPLY_STATUS:
        return redis_reply::of_status({r.str, r.len});
      case REDIS_REPLY_ERROR:
        return {kind::error, 0, {r.str, r.len}, {}};
      case REDIS_REPLY_ARRAY: {
        std::vector<redis_reply> elements;
        for (std::size_t i = 0; i < r.elements; ++i) elements.push_back(copy(*r.element[i]));
        return redis_reply::of_array(std::move(elements));
      }
      default:
        return {};
    }
  }

  struct free_context {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, free_context> context_;
};

/// A redis-server child process that one test owns: `--save '' --appendonly no`, in an
/// empty directory of its own, so a restart starts with an empty dataset.
///
/// The server dies with the thread that started it (PR_SET_PDEATHSIG), so a crashed or
/// killed test leaves no server behind: start it from the test's main thread.
/// Not thread-safe, except `command`, `command_with_timeout` and `key_ttls`, which only
/// read the port.
class redis_server {
 public:
  static constexpr std::chrono::milliseconds default_timeout{5000};
  static constexpr std::chrono::seconds ready_deadline{20};
  static constexpr std::chrono::seconds stop_deadline{2};

  /// `extra_arguments` go after the defaults, e.g. {"--maxmemory", "1mb"}. `environment`
  /// changes the server's environment, which is otherwise this process's: "NAME=value" sets
  /// NAME, a bare "NAME" removes it (e.g. an LD_PRELOAD to run the server under libfaketime).
  explicit redis_server(std::vector<std::string> extra_arguments = {},
                        std::vector<std::string> environment = {})
      : extra_arguments_(std::move(extra_arguments)), environment_(std::move(environment)) {}

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  ~redis_server() { stop(); }

  /// Starts on a free port and returns once the server accepts connections; throws
  /// std::runtime_error naming what the server printed if it does not get there.
  void start() {
    if (state_ != state::none && state_ != state::exited) {
      throw std::logic_error("redis_server::start: already running on port " +
                             std::to_string(port_));
    }
    // The port was free when we looked; another process may take it before redis binds.
    for (int attempt = 1;; ++attempt) {
      const int port = free_port();
      if (launch(port) == launched::ready) return;
      if (attempt == 5) throw std::runtime_error("redis_server: 5 free ports were all taken");
    }
  }

  /// Starts again on the same port (after `signal(SIGKILL)`, say), stopping it first if it runs.
  void restart() {
    if (port_ == 0) throw std::logic_error("redis_server::restart: never started");
    stop();
    if (launch(port_) == launched::port_in_use) {
      throw std::runtime_error("redis_server::restart: port " + std::to_string(port_) +
                               " was taken by another process");
    }
  }

  /// SIGTERM (resuming a SIGSTOPped server so it can act on it), SIGKILL after
  /// `stop_deadline`; returns once the process is gone.
  void stop() noexcept {
    if (state_ == state::running || state_ == state::paused) {
      ::kill(pid_, SIGTERM);
      ::kill(pid_, SIGCONT);
      if (!exits_within(stop_deadline)) ::kill(pid_, SIGKILL);
      reap(0);
    }
    close_pidfd();
  }

  /// Sends `signal_number`. SIGKILL, SIGSTOP and SIGCONT return once they took effect:
  /// the process is gone (and its port closed), stopped, or running again.
  void signal(int signal_number) {
    if (state_ != state::running && state_ != state::paused) {
      throw std::logic_error("redis_server::signal: no server process");
    }
    if (signal_number == SIGSTOP && state_ == state::paused) return;
    if (::kill(pid_, signal_number) != 0) throw std::system_error(errno, std::system_category());
    if (signal_number == SIGKILL) {
      reap(0);
      close_pidfd();
    } else if (signal_number == SIGSTOP) {
      reap(WUNTRACED);
    } else if (signal_number == SIGCONT && state_ == state::paused) {
      reap(WCONTINUED);
    }
  }

  int port() const { return port_; }
  /// The process id of the last server started, also after it exited.
  pid_t pid() const { return pid_; }
  /// Started, not exited, and not stopped by SIGSTOP.
  bool running() const { return state_ == state::running; }

  /// Runs one command on a fresh connection; tests use it for SCRIPT FLUSH, CONFIG SET...
  template <class... Args>
  redis_reply command(const Args&... args) const {
    return command_with_timeout(default_timeout, args...);
  }

  template <class... Args>
  redis_reply command_with_timeout(std::chrono::milliseconds timeout, const Args&... args) const {
    return redis_client{port_, timeout}.command(args...);
  }

  /// Every key matching `pattern` (SCAN MATCH) with its PTTL in milliseconds: -1 for a key
  /// without a TTL, -2 for one that expired between the scan and the PTTL. Throws if Redis
  /// does not answer, so a hygiene check cannot pass by seeing nothing.
  std::map<std::string, std::int64_t> key_ttls(std::string_view pattern) const {
    redis_client client{port_, default_timeout};
    std::map<std::string, std::int64_t> ttls;
    std::string cursor = "0";
    do {
      const redis_reply page = client.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000);
      if (page.type != redis_reply::kind::array || page.elements.size() != 2) {
        throw std::runtime_error("redis_server::key_ttls: SCAN answered " + describe(page));
      }
      cursor = page.elements[0].text;
      for (const redis_reply& key : page.elements[1].elements) ttls.emplace(key.text, -1);
    } while (cursor != "0");
    for (auto& [key, ttl] : ttls) {
      const redis_reply reply = client.command("PTTL", key);
      if (reply.type != redis_reply::kind::integer) {
        throw std::runtime_error("redis_server::key_ttls: PTTL answered " + describe(reply));
      }
      ttl = reply.integer;
    }
    return ttls;
  }

 private:
  enum class state { none, running, paused, exited };
  enum class launched { ready, port_in_use };

  static constexpr std::array<std::string_view, 8> fixed_arguments = {
      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"};

  static std::string describe(const redis_reply& r) {
    std::ostringstream out;
    out << r;
    return out.str();
  }

  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    const int error = errno;
    ::close(fd);
    if (!ok) throw std::system_error(error, std::system_category(), "bind 127.0.0.1:0");
    return ntohs(address.sin_port);
  }

  static std::string executable() {
    const char* path = std::getenv("PATH");
    if (path == nullptr) throw std::runtime_error("redis_server: PATH is not set");
    std::string_view rest = path;
    while (!rest.empty()) {
      const std::size_t colon = std::min(rest.find(':'), rest.size());
      const std::string candidate = std::string{rest.substr(0, colon)} + "/redis-server";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      rest.remove_prefix(std::min(colon + 1, rest.size()));
    }
    throw std::runtime_error("redis_server: redis-server is not on PATH");
  }

  // An empty directory for the server to start in, so that no dump.rdb lying around is
  // loaded; removed once the server is up, so that a crashed test leaves nothing behind.
  struct scratch_directory {
    std::string path = std::filesystem::temp_directory_path() / "ratelimit-redis-XXXXXX";

    scratch_directory() {
      if (::mkdtemp(path.data()) == nullptr) {
        throw std::system_error(errno, std::system_category(), "mkdtemp " + path);
      }
    }
    ~scratch_directory() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };

  launched launch(int port) {
    const scratch_directory directory;
    std::vector<std::string> arguments = {executable(), "--port", std::to_string(port), "--dir",
                                          directory.path};
    arguments.insert(arguments.end(), fixed_arguments.begin(), fixed_arguments.end());
    arguments.insert(arguments.end(), extra_arguments_.begin(), extra_arguments_.end());
    const int output = spawn(arguments);
    port_ = port;
    const std::string seen = read_until_ready(output);
    ::close(output);
    if (seen.empty()) return launched::ready;
    stop();
    if (seen.find("Address already in use") != std::string::npos) return launched::port_in_use;
    throw std::runtime_error("redis_server: `" + join(arguments) + "` " + seen);
  }

  // This process's environment changed by `environment_`: see the constructor.
  std::vector<std::string> child_environment() const {
    const auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
    std::vector<std::string> out;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry = *e;
      const bool changed =
          std::any_of(environment_.begin(), environment_.end(),
                      [&](const std::string& c) { return name_of(c) == name_of(entry); });
      if (!changed) out.emplace_back(entry);
    }
    for (const std::string& c : environment_) {
      if (c.find('=') != std::string::npos) out.push_back(c);
    }
    return out;
  }

  // Forks and execs the server with its stdout and stderr on a pipe; returns the read end.
  int spawn(std::vector<std::string>& arguments) {
    std::vector<char*> argv;
    for (std::string& a : arguments) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Built before the fork: only async-signal-safe calls may follow it.
    std::vector<std::string> environment = child_environment();
    std::vector<char*> envp;
    for (std::string& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    int output[2];
    if (::pipe2(output, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    if (child < 0) {
      const int error = errno;
      ::close(output[0]);
      ::close(output[1]);
      throw std::system_error(error, std::system_category(), "fork");
    }
    if (child == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(output[1], STDOUT_FILENO);
      ::dup2(output[1], STDERR_FILENO);
      ::close_range(3, UINT_MAX, 0);  // hiredis sockets are not close-on-exec
      // Ignored signals stay ignored across exec: once the pipe is closed, a log line
      // must fail with EPIPE rather than kill the server.
      ::signal(SIGPIPE, SIG_IGN);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      constexpr char message[] = "exec redis-server failed\n";
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message, sizeof message - 1);
      ::_exit(127);
    }
    ::close(output[1]);
    pid_ = child;
    state_ = state::running;
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    return output[0];
  }

  // Reads the server's log until it says it is ready: "" then; otherwise what went wrong,
  // with everything it printed.
  std::string read_until_ready(int fd) {
    const auto deadline = std::chrono::steady_clock::now() + ready_deadline;
    std::string log;
    char buffer[4096];
    while (log.find("Ready to accept connections") == std::string::npos) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return "was not ready after " + std::to_string(ready_deadline.count()) +
               " s; it printed:\n" + log;
      }
      pollfd p{fd, POLLIN, 0};
      const int polled = ::poll(&p, 1, static_cast<int>(left.count()));
      if (polled < 0 && errno != EINTR) return "poll failed: " + std::string{std::strerror(errno)};
      if (polled <= 0) continue;
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return "exited before it was ready; it printed:\n" + log;
      log.append(buffer, static_cast<std::size_t>(n));
    }
    return {};
  }

  bool exits_within(std::chrono::milliseconds timeout) const {
    if (pidfd_ < 0) return false;  // a kernel without pidfd_open: no way to wait with a deadline
    pollfd p{pidfd_, POLLIN, 0};
    int polled;
    do {
      polled = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (polled < 0 && errno == EINTR);
    return polled > 0;
  }

  void close_pidfd() noexcept {
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
  }

  // Waits for the change `options` asks for (0: exit) and records the state it leads to.
  void reap(int options) noexcept {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, options);
    } while (r < 0 && errno == EINTR);
    if (r != pid_ || WIFEXITED(status) || WIFSIGNALED(status)) {
      state_ = state::exited;
    } else {
      state_ = WIFSTOPPED(status) ? state::paused : state::running;
    }
  }

  static std::string join(const std::vector<std::string>& words) {
    std::string line;
    for (const std::string& w : words) line += (line.empty() ? "" : " ") + (w.empty() ? "''" : w);
    return line;
  }

  std::vector<std::string> extra_arguments_;
  std::vector<std::string> environment_;
  int port_ = 0;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  state state_ = state::none;
};

}  // namespace ratelimit_test
