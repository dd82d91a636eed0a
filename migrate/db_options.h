// Options shared by the commands that talk to the database.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace rekey {

// Registers --db (a libpq conninfo or URI) on `app`, stored in `db`.
void add_db_option(CLI::App& app, std::string& db);

// Registers --state-schema on `app`, stored in `schema`: a name without
// control characters (CLI and config file alike).
void add_state_schema_option(CLI::App& app, std::string& schema, const std::string& help);

// Registers --batch-bytes on `app` (a size such as 32MB, 1GB), stored in
// `bytes`: what the batches a table has in flight hold together.
void add_batch_bytes_option(CLI::App& app, std::size_t& bytes);

// --db, else DATABASE_URL, else "" (libpq's PG* variables and defaults).
std::string resolve_conninfo(const std::string& db_option);

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
