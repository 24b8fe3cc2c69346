// Test helper: asserts that a call throws lockstep::UserError whose message contains every given
// substring (the file or key it names, and the cause). Any other outcome is a failure that says what happened.
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <string>
#include <vector>

#include "lockstep/check.hpp"

namespace lockstep::test {

template <typename F>
::testing::AssertionResult throws_user_error(F&& f, const std::vector<std::string>& substrings) {
  try {
    f();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    for (const auto& s : substrings)
      if (msg.find(s) == std::string::npos)
        return ::testing::AssertionFailure() << "UserError message \"" << msg << "\" does not contain \"" << s << "\"";
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than UserError: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace lockstep::test
