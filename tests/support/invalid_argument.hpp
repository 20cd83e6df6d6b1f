#pragma once

// What a test reads from a std::invalid_argument: configuration the library refuses says
// which field and which value.

#include <concepts>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ratelimit_test {

/// The message of the std::invalid_argument `f` throws; "(threw nothing)" if it returns,
/// and "(threw something else: <what>)" for any other std::exception.
template <std::invocable F>
std::string invalid_argument_from(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return "(threw something else: " + std::string{e.what()} + ")";
  }
  return "(threw nothing)";
}

/// Whether `message` names both `field` and `value`.
inline bool mentions(std::string_view message, std::string_view field, std::string_view value) {
  return message.find(field) != std::string_view::npos &&
         message.find(value) != std::string_view::npos;
}

}  // namespace ratelimit_test
