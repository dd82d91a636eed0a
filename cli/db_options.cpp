#include "cli/db_options.h"

#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdlib>
#include <regex>

#include "cli/key_source.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"

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
              check_no_control_characters(name, "--state-schema");
            } catch (const std::invalid_argument& e) {
              return e.what();
            }
            return name.empty() ? "--state-schema must not be empty" : "";
          },
          "NAME"));
}

namespace {

// A password in a connection string: the text before it (group 1) and itself
// (group 2), as written. Keyword/value form, a URI's query, a URI's user info.
const std::regex& keyword_password() {
  static const std::regex re(R"(((?:^|\s)password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
  return re;
}
const std::regex& query_password() {
  static const std::regex re(R"(([?&]password=)([^&\s]*))", std::regex::icase);
  return re;
}
const std::regex& userinfo_password() {
  static const std::regex re(R"((postgres(?:ql)?://[^:/@\s]*:)([^@/]*)(?=@))", std::regex::icase);
  return re;
}

// `s` with %XX escapes decoded, as libpq reads a URI.
std::string percent_decoded(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A keyword/value form value without its quotes and backslash escapes.
std::string unquoted_value(const std::string& s) {
  if (s.size() < 2 || s.front() != '\'' || s.back() != '\'') return s;
  std::string out;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

// Every password in `conninfo`, as written and as libpq reads it.
std::vector<std::string> passwords_in(const std::string& conninfo) {
  std::vector<std::string> found;
  for (const std::regex* re : {&keyword_password(), &query_password(), &userinfo_password()}) {
    for (std::sregex_iterator it(conninfo.begin(), conninfo.end(), *re), end; it != end; ++it) {
      const std::string written = (*it)[2].str();
      for (const std::string& form : {written, unquoted_value(written), percent_decoded(written)}) {
        if (!form.empty()) found.push_back(form);
      }
    }
  }
  return found;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") ==
                        std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

bool has_password(const std::string& conninfo) { return !passwords_in(conninfo).empty(); }

std::string hide_passwords(const std::string& text) {
  std::string out = text;
  for (const std::regex* re : {&keyword_password(), &query_password(), &userinfo_password()}) {
    out = std::regex_replace(out, *re, "$1***");
  }
  return out;
}

std::string resolve_conninfo(const DbOption& db) {
  std::string conninfo = db.conninfo;
  if (!conninfo.empty()) {
    if (has_password(conninfo)) {
      log::warn(
          "the connection string of --db holds a password, which other local users can read (ps, /proc): put "
          "the connection string in DATABASE_URL (or the variable --db-env names), or the password in ~/.pgpass");
    }
  } else if (const char* value = std::getenv(db.env.c_str()); value != nullptr && *value != '\0') {
    conninfo = value;
  } else if (db.env != DbOption{}.env) {
    throw UsageError("--db-env " + db.env + ": the environment variable " + db.env + " is not set or empty");
  }
  for (const std::string& password : passwords_in(conninfo)) log::hide(password);
  return conninfo;
}

std::string redacted_command(const std::vector<std::string>& args) {
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (i > 0 && args[i - 1] == "--db") a = hide_passwords(a);
    if (a.rfind("--db=", 0) == 0) a = "--db=" + hide_passwords(a.substr(5));
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

void add_db_option(CLI::App& app, DbOption& db) {
  app.add_option("--db", db.conninfo,
                 "libpq connection string or postgresql:// URI; other local users can read it in ps, so prefer "
                 "the environment (default: DATABASE_URL, then PG* variables, ~/.pgpass)");
  app.add_option("--db-env", db.env, "The environment variable holding the connection string")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            // Most likely a connection string pasted where its variable's name belongs: never shown.
            return is_env_name(name)
                       ? ""
                       : "takes the NAME of an environment variable (letters, digits, _), not a connection string; "
                         "the value given is not shown";
          },
          "NAME"));
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
