// `--config FILE` for subcommands (e.g. `rekey rotate --config rotate.toml`).
//
// CLI11 2.1.2 never reads a subcommand's set_config() file; rekey reads it
// with toml++, so a config file is any TOML: each top-level key is an option
// (a string, number or boolean, or an array of them for a repeatable one),
// and `[[table]]` entries (or `table = [{ name = '…', columns = ['…'] }]`)
// give a table's columns. A bare word as a value (`pace = max`), which an
// older rekey read, still reads, with a warning.
#pragma once

#include <set>
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
// error or a value of the wrong shape. Top-level keys come in key order;
// each [[table]] gives a "column" entry of its "NAME.COLUMN"s. Pure but for
// the warning about bare words.
std::vector<ConfigEntry> parse_config_text(std::string_view text, const std::string& origin);

// `value` as a TOML string that parse_config_text reads back unchanged: a
// literal string when it can be one, a basic string with escapes otherwise.
// Pure.
std::string config_string(std::string_view value);

// Makes `cmd` skip the config file's `keys`, with a warning saying `why`,
// instead of refusing them as unknown: a rollback reads a rotate's file but
// takes its columns from the run it rolls back. Call before parsing.
void ignore_config_keys(const CLI::App& cmd, const std::set<std::string>& keys, const std::string& why);

// Makes every subcommand of `root` that has a config option (set_config) read
// its file once its own arguments are parsed, before its callback. Options
// given on the command line win; an unknown key is a UsageError (a typo must
// not be ignored). Call after registering the subcommands.
void enable_subcommand_configs(CLI::App& root);

}  // namespace rekey
