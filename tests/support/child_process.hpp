#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

/// A function run in a forked child process, its std::int64_t result collected through a
/// pipe: for tests where several processes share one Redis.
///
/// Fork before starting any thread: the child gets a copy of only the forking thread, so a
/// lock another thread held stays locked forever (and ThreadSanitizer refuses threads in
/// such a child). The child never returns into the test: it `_exit`s, so no destructor or
/// atexit handler runs twice. A GoogleTest expectation that fails in the child fails
/// `result()` in the parent. Not thread-safe.
namespace ratelimit_test {

class child_process {
 public:
  explicit child_process(const std::function<std::int64_t()>& body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
    std::fflush(nullptr);  // or the child would print the parent's buffered output again
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::system_category(), "fork");
    if (pid_ == 0) {
      ::close(fds[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(exit_orphaned);
      ::_exit(run(body, fds[1]));
    }
    ::close(fds[1]);
    result_fd_ = fds[0];
  }

  child_process(child_process&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), result_fd_(std::exchange(other.result_fd_, -1)) {}
  child_process& operator=(child_process&&) = delete;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Kills a child whose result was never collected.
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
    if (result_fd_ >= 0) ::close(result_fd_);
  }

  pid_t pid() const { return pid_; }

  /// Waits for the child's result; throws std::runtime_error if it threw, failed an
  /// expectation, crashed, or took longer than `deadline` (then it is killed).
  std::int64_t result(std::chrono::milliseconds deadline = std::chrono::seconds{60}) {
    if (pid_ <= 0) throw std::logic_error("child_process::result: already collected");
    std::int64_t value = 0;
    const std::size_t got = read_result(value, deadline);
    if (got < sizeof value) ::kill(pid_, SIGKILL);
    const int status = reap();
    pid_ = -1;
    if (got == sizeof value && WIFEXITED(status) && WEXITSTATUS(status) == 0) return value;
    throw std::runtime_error("child_process: " + explain(status, got == 0 && !timed_out_));
  }

 private:
  static constexpr int exit_threw = 2;
  static constexpr int exit_expectation_failed = 3;
  static constexpr int exit_orphaned = 4;

  static int run(const std::function<std::int64_t()>& body, int fd) {
    int code = 0;
    std::int64_t value = 0;
    try {
      value = body();
      if (::testing::Test::HasFailure()) code = exit_expectation_failed;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child_process: the child threw: %s\n", e.what());
      code = exit_threw;
    } catch (...) {
      code = exit_threw;
    }
    std::fflush(nullptr);
    if (code == 0 && ::write(fd, &value, sizeof value) != sizeof value) code = exit_threw;
    return code;
  }

  std::size_t read_result(std::int64_t& value, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto* bytes = reinterpret_cast<char*>(&value);
    std::size_t got = 0;
    while (got < sizeof value) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{result_fd_, POLLIN, 0};
      const int polled = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (polled < 0 && errno == EINTR) continue;
      if (polled == 0) timed_out_ = true;
      if (polled <= 0) break;
      const ssize_t n = ::read(result_fd_, bytes + got, sizeof value - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  int reap() const {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }

  std::string explain(int status, bool exited_early) const {
    if (timed_out_) return "no result before the deadline; killed";
    if (WIFSIGNALED(status)) return "the child died of signal " + std::to_string(WTERMSIG(status));
    switch (WEXITSTATUS(status)) {
      case exit_threw:
        return "the child threw (see its stderr)";
      case exit_expectation_failed:
        return "an expectation failed in the child (see its output)";
      case exit_orphaned:
        return "the parent was gone before the child started";
      default:
        return (exited_early ? "the child exited without a result, status " : "status ") +
               std::to_string(WEXITSTATUS(status));
    }
  }

  pid_t pid_ = -1;
  int result_fd_ = -1;
  bool timed_out_ = false;
};

/// Holds child processes back until the parent opens it, so that they start together.
/// Create it before forking the children; each child calls `wait()`, the parent `open()`.
class start_gate {
 public:
  start_gate() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
  }
  start_gate(const start_gate&) = delete;
  start_gate& operator=(const start_gate&) = delete;
  ~start_gate() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  /// In a child: blocks until the parent opens the gate (or dies).
  void wait() {
    // The gate opens at end of file, which needs every copy of the write end closed.
    close_end(1);
    char byte;
    while (::read(fds_[0], &byte, 1) < 0 && errno == EINTR) {
    }
  }

  /// In the parent: lets every waiting child go.
  void open() { close_end(1); }

 private:
  void close_end(int end) {
    if (fds_[end] >= 0) ::close(fds_[end]);
    fds_[end] = -1;
  }

  int fds_[2] = {-1, -1};
};

}  // namespace ratelimit_test
