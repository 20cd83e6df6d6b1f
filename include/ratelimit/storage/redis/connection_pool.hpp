#pragma once

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ratelimit::detail::redis {

using clock = std::chrono::steady_clock;

/// One connection. Commands are written here, in the Redis protocol, and hiredis parses
/// the replies. The waiting is done here too, with poll against the caller's deadline: a
/// socket timeout would bound each read anew (a pipeline of replies could take many times
/// the timeout) and the kernel rounds it up to its timer tick. Writes use send(2) with
/// MSG_NOSIGNAL: write(2) to a connection the server closed raises SIGPIPE, which ends a
/// program that does not handle it.
struct connection {
  struct context_free {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  std::unique_ptr<redisContext, context_free> context;
  /// Commands not sent yet; its capacity is kept from call to call.
  std::string unsent;

  /// Queues one command: an array of bulk strings, binary-safe.
  void append(std::span<const std::string_view> argv) {
    const auto number = [this](char kind, std::size_t n) {
      std::array<char, 24> digits;
      const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), n).ptr;
      unsent.push_back(kind);
      unsent.append(digits.data(), end);
      unsent.append("\r\n");
    };
    number('*', argv.size());
    for (const std::string_view arg : argv) {
      number('$', arg.size());
      unsent.append(arg);
      unsent.append("\r\n");
    }
  }

  /// Sends the queued commands; false on an error or once the deadline has passed.
  bool flush(clock::time_point deadline) {
    std::size_t sent = 0;
    while (sent < unsent.size()) {
      const ssize_t n = ::send(context->fd, unsent.data() + sent, unsent.size() - sent,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return false;
      } else if (!wait(POLLOUT, deadline)) {
        return false;
      }
    }
    unsent.clear();
    return true;
  }

  /// The next reply (free it with freeReplyObject), or nullptr on an error or once the
  /// deadline has passed.
  redisReply* receive(clock::time_point deadline) {
    redisContext* c = context.get();
    for (;;) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(c, &reply) != REDIS_OK) return nullptr;
      if (reply != nullptr) return static_cast<redisReply*>(reply);
      if (!wait(POLLIN, deadline) || redisBufferRead(c) != REDIS_OK) return nullptr;
    }
  }

 private:
  bool wait(short events, clock::time_point deadline) const {
    for (;;) {
      const auto left = deadline - clock::now();
      if (left <= clock::duration::zero()) return false;
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      const timespec limit{static_cast<time_t>(ns / 1'000'000'000),
                           static_cast<long>(ns % 1'000'000'000)};
      pollfd fd{context->fd, events, 0};
      const int ready = ::ppoll(&fd, 1, &limit, nullptr);
      if (ready > 0) return (fd.revents & (events | POLLHUP | POLLERR)) != 0;
      if (ready == 0 || errno != EINTR) return false;
    }
  }
};

/// At most `size` connections shared by any number of threads: a caller takes one for a
/// decision (or a batch) and gives it back; callers waiting for one are served first come,
/// first served. A connection whose command failed or timed out is closed, never reused:
/// its late reply would be read as the next command's answer; the idle ones are closed
/// with it, since what broke one (a server that restarted) has most likely broken them all.
class connection_pool {
 public:
  connection_pool(std::string host, int port, std::size_t size)
      : host_(std::move(host)), port_(port), size_(size) {
    idle_.reserve(size);  // so that giving a connection back never allocates
  }

  class lease {
   public:
    lease() = default;
    lease(connection_pool* pool, connection c) : pool_(pool), connection_(std::move(c)) {}
    lease(lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}
    lease& operator=(lease&&) = delete;
    ~lease() {
      if (pool_ != nullptr) pool_->give_back(std::move(connection_), broken_);
    }

    explicit operator bool() const noexcept { return pool_ != nullptr; }
    connection& operator*() noexcept { return connection_; }
    connection* operator->() noexcept { return &connection_; }
    /// The connection's state is unknown (a timeout, an I/O error): close it.
    void break_off() noexcept { broken_ = true; }

   private:
    connection_pool* pool_ = nullptr;
    connection connection_;
    bool broken_ = false;
  };

  /// A connection, or an empty lease if none could be had before `deadline`.
  lease acquire(clock::time_point deadline) {
    std::unique_lock lock{mutex_};
    if (waiting_.empty()) {
      if (!idle_.empty()) return take_idle();
      if (open_ < size_) return connect_unlocked(lock, deadline);
    }
    waiter me;
    waiting_.push_back(&me);
    while (!me.served) {
      if (me.cv.wait_until(lock, deadline) == std::cv_status::timeout && !me.served) {
        waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
        return {};
      }
    }
    if (me.handed.context != nullptr) return {this, std::move(me.handed)};
    return connect_unlocked(lock, deadline);  // served with a free slot
  }

  std::size_t open() const {
    std::lock_guard lock{mutex_};
    return open_;
  }

 private:
  struct waiter {
    std::condition_variable cv;
    bool served = false;
    connection handed;  ///< empty when served with the right to open a connection
  };

  lease take_idle() {
    connection c = std::move(idle_.back());
    idle_.pop_back();
    return {this, std::move(c)};
  }

  lease connect_unlocked(std::unique_lock<std::mutex>& lock, clock::time_point deadline) {
    ++open_;
    lock.unlock();
    connection c = connect(deadline);
    if (c.context != nullptr) return {this, std::move(c)};
    lock.lock();
    release_slot();
    return {};
  }

  connection connect(clock::time_point deadline) const {
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - clock::now());
    if (left.count() <= 0) return {};
    const timeval limit{static_cast<time_t>(left.count() / 1'000'000),
                        static_cast<suseconds_t>(left.count() % 1'000'000)};
    connection c;
    c.context.reset(redisConnectWithTimeout(host_.c_str(), port_, limit));
    if (c.context == nullptr || c.context->err != 0) return {};
    return c;
  }

  /// A connection closed: its slot goes to the first waiter, who will open a new one.
  void release_slot() {
    --open_;
    if (!waiting_.empty()) {
      waiter* next = waiting_.front();
      waiting_.pop_front();
      next->served = true;
      next->cv.notify_one();
    }
  }

  void give_back(connection c, bool broken) {
    std::lock_guard lock{mutex_};
    if (broken || c.context == nullptr || c.context->err != 0) {
      const std::size_t closed = idle_.size() + 1;
      idle_.clear();
      c = {};
      for (std::size_t i = 0; i < closed; ++i) release_slot();
    } else if (!waiting_.empty()) {
      waiter* next = waiting_.front();
      waiting_.pop_front();
      next->handed = std::move(c);
      next->served = true;
      next->cv.notify_one();
    } else {
      idle_.push_back(std::move(c));
    }
  }

  const std::string host_;
  const int port_;
  const std::size_t size_;
  mutable std::mutex mutex_;
  std::vector<connection> idle_;
  std::deque<waiter*> waiting_;
  std::size_t open_ = 0;  ///< idle, leased, or connecting
};

}  // namespace ratelimit::detail::redis
