#include "migrate/db_options.h"

#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <regex>

#include "db/identifier.h"

namespace rekey {

void add_batch_bytes_option(CLI::App& app, std::size_t& bytes) {
  app.add_option("--batch-bytes", bytes,
                 "Bytes of values the batches in flight hold together at most (plus one row each), e.g. 32MB")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 40))
      ->default_str("32MB");
}

void add_state_schema_option(CLI::App& app, std::string& schema, const std::string& help) {
  app.add_option("--state-schema", schema, help)
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {
              db::check_no_control_characters(name, "--state-schema");
            } catch (const std::invalid_argument& e) {
              return e.what();
            }
            return name.empty() ? "--state-schema must not be empty" : "";
          },
          "NAME"));
}

std::string resolve_conninfo(const std::string& db_option) {
  if (!db_option.empty()) return db_option;
  const char* url = std::getenv("DATABASE_URL");
  return url != nullptr ? url : "";
}

namespace {
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") ==
                        std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string hide_password(const std::string& conninfo) {
  static const std::regex kw(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
  static const std::regex uri(R"(^(postgres(?:ql)?://[^:/@]*):[^@/]*@)", std::regex::icase);
  std::string out = std::regex_replace(conninfo, kw, "$1***");
  return std::regex_replace(out, uri, "$1:***@");
}
}  // namespace

std::string redacted_command(const std::vector<std::string>& args) {
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (i > 0 && args[i - 1] == "--db") a = hide_password(a);
    if (a.rfind("--db=", 0) == 0) a = "--db=" + hide_password(a.substr(5));
    if (!out.empty()) out += ' ';
    out += shell_quote(a);
  }
  return out;
}

namespace {
std::string g_command_line = "rekey";
}

void remember_command_line(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (!args.empty()) args[0] = "rekey";
  g_command_line = redacted_command(args);
}

const std::string& command_line() { return g_command_line; }

void add_db_option(CLI::App& app, std::string& db) {
  app.add_option("--db", db,
                 "libpq connection string or postgresql:// URI (default: DATABASE_URL, then PG* variables)");
}

std::string current_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? pw->pw_name : "uid" + std::to_string(::geteuid());
}

std::string host_name() {
  char host[256] = "unknown";
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string runner_identity() { return current_user() + "@" + host_name() + " pid " + std::to_string(::getpid()); }

}  // namespace rekey
