// Options shared by the commands that talk to the database.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace rekey {

// Where the connection string comes from: --db, else the environment
// variable --db-env names, else libpq's own PG* variables, service file and
// ~/.pgpass (as psql). --db puts a password where other local users read it
// (ps, /proc); the environment does not.
struct DbOption {
  std::string conninfo;              // --db (or `db` in a config file): libpq conninfo or URI
  std::string env = "DATABASE_URL";  // --db-env
};

// Registers --db and --db-env (an environment variable's name; a value that is
// not one, a pasted URI say, is refused without being echoed) on `app`.
void add_db_option(CLI::App& app, DbOption& db);

// Registers --state-schema on `app`, stored in `schema`: a name without
// control characters (CLI and config file alike).
void add_state_schema_option(CLI::App& app, std::string& schema, const std::string& help);

// Registers --batch-bytes on `app` (a size such as 32MB, 1GB), stored in
// `bytes`: what the batches a table has in flight hold together.
void add_batch_bytes_option(CLI::App& app, std::size_t& bytes);

// The connection string to use (see DbOption); "" leaves everything to libpq.
// Warns, never showing it, when --db holds a password. Throws UsageError when
// --db-env names a variable other than DATABASE_URL that is not set. Every
// password the string holds is given to log::hide(): libpq's errors may quote
// the connection string, and no log line shows it.
std::string resolve_conninfo(const DbOption& db);

// True if `conninfo` (keyword/value or URI form) holds a password.
bool has_password(const std::string& conninfo);

// `text` with the password of every connection string in it (password=...,
// ?password=..., postgresql://user:...@) replaced by ***. Pure.
std::string hide_passwords(const std::string& text);

// The command line with the --db value's password hidden, for the state
// schema's "how to resume" column and logs.
std::string redacted_command(const std::vector<std::string>& args);

// The process's own command line, redacted; run_cli records it at start.
void remember_command_line(int argc, char** argv);
const std::string& command_line();

// The effective user's name and this host's name, for the runs table and the audit log.
std::string current_user();
std::string host_name();

// user@host pid, for the runs table.
std::string runner_identity();

}  // namespace rekey
