// A CLI11 transformer for a fixed set of named choices, shown in --help as
// "a|b" rather than CLI11's internal mapping.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>

namespace rekey {

template <typename E>
CLI::Validator choices(const std::map<std::string, E>& names) {
  std::string text;
  for (const auto& entry : names) text += (text.empty() ? "" : "|") + entry.first;
  return CLI::CheckedTransformer(names, CLI::ignore_case).description(text);
}

}  // namespace rekey
