#include "cli/config_file.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <utility>

#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

// A TOML parse error as rekey reports it: the file, the line, what is wrong.
[[noreturn]] void fail(const std::string& origin, const toml::source_region& where, const std::string& why) {
  throw UsageError(fmt::format("config file {}, line {}: {}", origin, where.begin.line, why));
}

// A scalar's text as the option takes it on the command line.
std::optional<std::string> scalar_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return fmt::format("{}", f->get());
  if (const auto* b = node.as_boolean()) return std::string(b->get() ? "true" : "false");
  return std::nullopt;
}

// The values of `key`: a scalar, or an array of scalars.
std::vector<std::string> values_of(const std::string& key, const toml::node& node, const std::string& origin) {
  if (auto text = scalar_text(node)) return {*text};
  const auto* array = node.as_array();
  if (array == nullptr)
    fail(origin, node.source(), key + " takes a value or an array of values, not a table or a date");
  std::vector<std::string> out;
  for (const auto& element : *array) {
    auto text = scalar_text(element);
    if (!text) fail(origin, element.source(), key + ": an array of values only (no nested arrays or tables)");
    out.push_back(std::move(*text));
  }
  return out;
}

// [[table]] entries (or `table = [{ … }]`): a table's columns, each becoming
// a `column` entry "NAME.COLUMN" (both in SQL identifier form).
void add_table_entries(const toml::node& node, const std::string& origin, std::vector<ConfigEntry>& out) {
  const auto* tables = node.as_array();
  if (tables == nullptr) fail(origin, node.source(), "table: use [[table]] sections, or table = [{ ... }]");
  for (const auto& element : *tables) {
    const auto* t = element.as_table();
    if (t == nullptr) fail(origin, element.source(), "table: each entry is a table with name and columns");
    ConfigEntry e{"column", {}, static_cast<int>(element.source().begin.line)};
    const auto name = (*t)["name"].value<std::string>();
    if (!name) fail(origin, element.source(), "table: an entry without name = '[SCHEMA.]TABLE'");
    for (const auto& [k, v] : *t) {
      if (k.str() == "columns") {
        for (const auto& column : values_of("columns", v, origin)) e.values.push_back(*name + "." + column);
      } else if (k.str() != "name") {
        fail(origin, v.source(), "table: unknown setting " + std::string(k.str()) + " (name, columns)");
      }
    }
    if (e.values.empty()) fail(origin, element.source(), "table " + *name + ": no columns = [...]");
    out.push_back(std::move(e));
  }
}

// What an older rekey (and CLI11's own format) read and TOML does not: a
// bare word as a value (`pace = max`). `text` with each such value quoted,
// and the lines changed; the rest untouched.
std::pair<std::string, std::vector<int>> with_bare_words_quoted(std::string_view text) {
  static const std::regex assignment(R"(^(\s*[A-Za-z0-9_-]+\s*=\s*)([A-Za-z_][A-Za-z0-9_./:@+-]*)(\s*(#.*)?)$)");
  std::string out;
  std::vector<int> changed;
  int line_number = 0;
  for (std::size_t from = 0; from <= text.size();) {
    std::size_t end = text.find('\n', from);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(from, end - from));
    ++line_number;
    std::smatch m;
    if (std::regex_match(line, m, assignment) && m[2] != "true" && m[2] != "false" && m[2] != "inf" && m[2] != "nan") {
      line = m[1].str() + "'" + m[2].str() + "'" + m[3].str();
      changed.push_back(line_number);
    }
    out += line;
    if (end < text.size()) out += '\n';
    from = end + 1;
  }
  return {out, changed};
}

// `text` parsed by TOML's rules; a file an older rekey read (bare words)
// still reads, with a warning naming the lines to quote.
toml::table parse_toml(std::string_view text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto [quoted, lines] = with_bare_words_quoted(text);
    if (lines.empty()) fail(origin, e.source(), std::string(e.description()));
    try {
      toml::table root = toml::parse(quoted, origin);
      for (int line : lines) {
        log::warn(
            "config file {}, line {}: a bare word, read as a string as before; quote it ('...'): TOML needs "
            "quotes",
            origin, line);
      }
      return root;
    } catch (const toml::parse_error&) {
      fail(origin, e.source(), std::string(e.description()));
    }
  }
}

}  // namespace

std::vector<ConfigEntry> parse_config_text(std::string_view text, const std::string& origin) {
  const toml::table root = parse_toml(text, origin);
  std::vector<ConfigEntry> out;
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "table") {
      add_table_entries(v, origin, out);
    } else {
      out.push_back({key, values_of(key, v, origin), static_cast<int>(v.source().begin.line)});
    }
  }
  // In the file's order (a TOML table's keys come sorted).
  std::stable_sort(out.begin(), out.end(), [](const ConfigEntry& a, const ConfigEntry& b) { return a.line < b.line; });
  return out;
}

namespace {

// Keys a subcommand's config file may hold but it does not take
// (ignore_config_keys), and why. Written while the commands are registered,
// before any parse; read-only after.
struct IgnoredKeys {
  std::set<std::string> keys;
  std::string why;
};
std::map<const CLI::App*, IgnoredKeys>& ignored_keys() {
  static std::map<const CLI::App*, IgnoredKeys> ignored;
  return ignored;
}

// True (after a warning) when `cmd` ignores `key` in its config file.
bool ignored(const CLI::App& cmd, const ConfigEntry& e, const std::string& path) {
  const auto it = ignored_keys().find(&cmd);
  if (it == ignored_keys().end() || it->second.keys.count(e.key) == 0) return false;
  log::warn("config file {}, line {}: {} ignored: {}", path, e.line, e.key, it->second.why);
  return true;
}

void apply_config_file(CLI::App& cmd) {
  CLI::Option* config = cmd.get_config_ptr();
  if (config == nullptr || config->count() == 0) return;
  const std::string path = config->as<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("config file " + path + " cannot be read");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<ConfigEntry> entries = parse_config_text(text, path);
  entries.erase(
      std::remove_if(entries.begin(), entries.end(), [&](const ConfigEntry& e) { return ignored(cmd, e, path); }),
      entries.end());
  std::set<const CLI::Option*> on_command_line;
  for (const ConfigEntry& e : entries) {
    const CLI::Option* op = cmd.get_option_no_throw("--" + e.key);
    if (op == nullptr || op == config || !op->get_configurable()) {
      throw UsageError(
          fmt::format("config file {}, line {}: {} has no option --{}", path, e.line, cmd.get_name(), e.key));
    }
    if (op->count() > 0) on_command_line.insert(op);
  }
  for (const ConfigEntry& e : entries) {
    CLI::Option* op = cmd.get_option_no_throw("--" + e.key);
    if (on_command_line.count(op) > 0) continue;  // the command line wins
    if (op->get_expected_min() == 0) {
      for (const auto& v : e.values) op->add_result(op->get_flag_value(e.key, v));
    } else {
      op->add_result(e.values);
    }
    op->run_callback();
  }
}

}  // namespace

std::string config_string(std::string_view value) {
  bool literal = value.find('\'') == std::string_view::npos;
  for (unsigned char c : value) literal = literal && (c >= 0x20 || c == '\t') && c != 0x7F;
  if (literal) return "'" + std::string(value) + "'";
  std::string out = "\"";
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(c));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

void ignore_config_keys(const CLI::App& cmd, const std::set<std::string>& keys, const std::string& why) {
  ignored_keys()[&cmd] = {keys, why};
}

void enable_subcommand_configs(CLI::App& root) {
  for (CLI::App* sub : root.get_subcommands([](CLI::App* s) { return s->get_config_ptr() != nullptr; })) {
    sub->parse_complete_callback([sub] { apply_config_file(*sub); });
  }
}

}  // namespace rekey
