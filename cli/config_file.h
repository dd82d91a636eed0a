// `--config FILE` for subcommands (e.g. `rekey rotate --config rotate.toml`).
//
// CLI11 2.1.2 never reads a subcommand's set_config() file, and its own
// reader strips one more layer of quotes from values (so '"Vault Data".t.c'
// would lose its first quote). This reads the TOML subset a CLI11 config
// holds, by TOML's rules: `key = value` lines, where a value is a basic
// string ("..." with backslash escapes), a literal string ('...', verbatim),
// a bare word or number, or an array of those (over several lines if need
// be); '#' starts a comment outside strings. Sections are refused.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace rekey {

struct ConfigEntry {
  std::string key;
  std::vector<std::string> values;  // one for a scalar, each element of an array
  int line = 0;
};

// Parses `text`; throws UsageError naming `origin` and the line on a syntax
// error. Pure.
std::vector<ConfigEntry> parse_config_text(std::string_view text, const std::string& origin);

// `value` as a TOML string that parse_config_text reads back unchanged: a
// literal string when it can be one, a basic string with escapes otherwise.
std::string config_string(std::string_view value);

// Makes every subcommand of `root` that has a config option (set_config) read
// its file once its own arguments are parsed, before its callback. Options
// given on the command line win; an unknown key is a UsageError (a typo must
// not be ignored). Call after registering the subcommands.
void enable_subcommand_configs(CLI::App& root);

}  // namespace rekey
