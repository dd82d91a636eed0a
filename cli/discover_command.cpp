#include "cli/discover_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli_choices.h"
#include "cli/config_file.h"
#include "cli/db_options.h"
#include "cli/key_source.h"
#include "cli/verify_command.h"
#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"
#include "db/state_schema_name.h"

namespace rekey {
namespace {

enum class OutputFormat { kTable, kJson };

struct DiscoverOptions {
  DbOption db;
  std::vector<std::string> schemas;
  std::size_t sample = 200;
  OutputFormat format = OutputFormat::kTable;
  std::string emit_config;
  std::string state_schema = db::kDefaultStateSchema;
  std::vector<std::string> exclude;
  KeyOptions keys;
};

std::string spec_of(const DiscoveredColumn& c) { return display_name(c.schema, c.table, c.column); }

// "fp:n" per key, the new key's marked, then values no key decrypts.
std::string keys_text(const DiscoveredColumn& c, const std::string& new_fp) {
  std::string out;
  std::int64_t attributed = 0;
  for (const auto& [fp, n] : c.keys) {
    out += (out.empty() ? "" : ", ") + fp + (fp == new_fp ? " (new)" : "") + ":" + std::to_string(n);
    attributed += n;
  }
  if (c.tokens > attributed)
    out += (out.empty() ? "" : ", ") + std::string("no key:") + std::to_string(c.tokens - attributed);
  return out;
}

nlohmann::json to_json(const Discovery& found, bool with_keys) {
  nlohmann::json columns = nlohmann::json::array();
  for (const auto& c : found.columns) {
    nlohmann::json j{
        {"schema", c.schema},
        {"table", c.table},
        {"column", c.column},
        {"spec", spec_of(c)},
        {"type", c.type},
        {"format", crypto::to_string(c.format)},
        {"estimated_rows", c.estimated_rows >= 0 ? nlohmann::json(c.estimated_rows) : nlohmann::json(nullptr)},
        {"values_with_tokens", c.values_with_tokens},
        {"sampled", c.sampled},
        {"tokens", c.tokens},
        {"rotatable", c.rotatable}};
    if (!c.note.empty()) j["note"] = c.note;
    if (with_keys) {
      nlohmann::json keys = nlohmann::json::object();
      for (const auto& [fp, n] : c.keys) keys[fp] = n;
      j["keys"] = keys;
    }
    columns.push_back(std::move(j));
  }
  return {{"columns", columns}, {"unchecked", found.unchecked}, {"excluded", found.excluded}};
}

// `new_fp` empty: no keys were given.
void print_unchecked(const Discovery& found) {
  for (const auto& u : found.unchecked) {
    std::printf("not checked: %s: %s\n", log::printable(u.object).c_str(), u.reason.c_str());
  }
  for (const auto& e : found.excluded) std::printf("excluded: %s\n", log::printable(e).c_str());
}

void print_table(const Discovery& found, const std::string& new_fp) {
  const bool with_keys = !new_fp.empty();
  if (found.columns.empty()) {
    std::printf("no column holds Fernet tokens\n");
    print_unchecked(found);
    std::fflush(stdout);
    return;
  }
  std::vector<std::vector<std::string>> rows{{"COLUMN", "TYPE", "FORMAT", "EST. ROWS", "WITH TOKENS", "SAMPLED"}};
  if (with_keys) rows[0].push_back("KEYS (fingerprint:sampled)");
  rows[0].push_back("NOTE");
  for (const auto& c : found.columns) {
    rows.push_back({log::printable(spec_of(c)), log::printable(c.type), crypto::to_string(c.format),
                    c.estimated_rows >= 0 ? std::to_string(c.estimated_rows) : "?",
                    std::to_string(c.values_with_tokens), std::to_string(c.sampled)});
    if (with_keys) rows.back().push_back(keys_text(c, new_fp));
    rows.back().push_back(c.rotatable ? "" : "not rotatable: " + log::printable(c.note));
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) line += r[i] + std::string(width[i] - r[i].size() + 2, ' ');
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
  print_unchecked(found);
  std::fflush(stdout);
}

int run_discover(const DiscoverOptions& o, bool keys_given) {
  force_read_only_sessions();
  const std::string conninfo = resolve_conninfo(o.db);
  std::unique_ptr<crypto::Keyring> keyring;
  if (keys_given) keyring = load_keyring(o.keys, OldKeyPolicy::kOptional);
  DiscoveryOptions options;
  options.schemas = o.schemas;
  options.state_schema = o.state_schema;
  options.exclude = o.exclude;
  options.sample = o.sample;
  const Discovery found = discover_columns(conninfo, options, keyring.get());
  if (o.format == OutputFormat::kJson) {
    std::printf(
        "%s\n",
        to_json(found, keyring != nullptr).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  } else {
    print_table(found, keyring != nullptr ? keyring->new_key().fingerprint() : std::string());
  }
  if (!o.emit_config.empty()) {
    try {
      write_file_atomically(o.emit_config, rotate_config_text(found.columns, o.db.conninfo, o.state_schema));
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string("--emit-config: ") + e.what());
    }
    log::info("wrote {}: run `rekey rotate --config {}` (keys from the environment, as usual)", o.emit_config,
              o.emit_config);
  }
  return to_int(ExitCode::kOk);
}

}  // namespace

std::string rotate_config_text(const std::vector<DiscoveredColumn>& columns, const std::string& db,
                               const std::string& state_schema) {
  std::string out = "# rekey rotate configuration written by `rekey discover`.\n# Use: rekey rotate --config FILE\n";
  if (!db.empty()) {
    out += has_password(db) ? "# db omitted: the connection string holds a password; set DATABASE_URL\n"
                            : "db = " + config_string(db) + "\n";
  }
  if (state_schema != db::kDefaultStateSchema) out += "state-schema = " + config_string(state_schema) + "\n";
  std::string list;
  std::string skipped;
  for (const auto& c : columns) {
    if (c.rotatable) {
      list += "  " + config_string(spec_of(c)) + ",\n";
    } else {
      // A name cannot end the comment.
      skipped += "#   " + log::printable(spec_of(c)) + " (" + log::printable(c.note) + ")\n";
    }
  }
  if (!list.empty()) out += "column = [\n" + list + "]\n";
  if (!skipped.empty()) out += "# Found, but rotate cannot handle them:\n" + skipped;
  return out;
}

void add_discover_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<DiscoverOptions>();
  CLI::App* cmd = root.add_subcommand(
      "discover",
      "Find, read-only, the columns holding Fernet tokens: every value of every text-like, json, array and bytea "
      "column is searched for a token.\n"
      "Example: rekey discover --emit-config rotate.toml");
  add_db_option(*cmd, o->db);
  cmd->add_option("--schema", o->schemas, "Only this schema (repeatable; exact name); default: all but system schemas");
  cmd->add_option("--sample", o->sample, "Values holding a token read per column found, for its format and keys")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--format", o->format, "table or json (on stdout)")
      ->transform(
          choices(std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable}, {"json", OutputFormat::kJson}}));
  cmd->add_option("--emit-config", o->emit_config, "Write a `rekey rotate --config` file listing the columns found");
  add_state_schema_option(*cmd, o->state_schema, "rekey's state schema, never searched");
  cmd->add_option("--exclude", o->exclude, "SCHEMA.TABLE[.COLUMN] to leave out (repeatable; SQL identifier rules)");
  add_key_options(*cmd, o->keys);
  cmd->footer(
      "Keys are optional here: when the new key is set (or named), each column shows which key its sampled "
      "values decrypt with.\n");
  cmd->callback([o, cmd, &exit_code] {
    const char* env = std::getenv(o->keys.new_key_env.c_str());
    const bool keys_given = !o->keys.new_key_file.empty() || !o->keys.new_key_command.empty() ||
                            cmd->count("--new-key-env") > 0 || (env != nullptr && *env != '\0');
    o->keys.hidden_env.push_back(o->db.env);
    exit_code = run_discover(*o, keys_given);
  });
}

}  // namespace rekey
