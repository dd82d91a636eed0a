// `rekey status`: the rotation runs recorded in rekey's state schema, read-only.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace rekey {

void add_status_command(CLI::App& root, int& exit_code);

// The table names (display form, "schema.table") of a runs.targets text
// (sorted schema.table.column lines), in first-seen order.
std::vector<std::string> target_tables(const std::string& targets);

// The command that continues a run: its recorded command line without
// --restart (which would start over instead).
std::string resume_command(const std::string& recorded);

}  // namespace rekey
