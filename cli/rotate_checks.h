// What `rekey rotate` refuses before it writes anything: each check throws
// UsageError saying what is wrong.
#pragma once

#include <string>
#include <vector>

#include "db/pg_table_writer.h"
#include "migrate/table_port.h"

namespace rekey {

// Throws UsageError when the server or session cannot write (a standby, a read-only session).
void refuse_read_only_server(const std::string& conninfo);

// Throws UsageError naming each privilege on the targets that rekey's role lacks.
void refuse_missing_privileges(const std::string& conninfo, const std::vector<TableShape>& shapes);

// --disable-triggers: refused (UsageError) unless this role may set
// session_replication_role; warns what the writes will skip.
db::Triggers trigger_mode(bool disable_triggers, const std::string& conninfo);

// --report's file must be writable before anything is: a run that rotated
// everything and then cannot say so would exit 1. Throws UsageError.
void refuse_unwritable_report(const std::string& path);

}  // namespace rekey
