#include "cli/rotate_checks.h"

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/log.h"
#include "db/preflight.h"

namespace rekey {

// Throws UsageError when the server or session cannot write (a standby, a read-only session).
void refuse_read_only_server(const std::string& conninfo) {
  if (auto why = db::why_read_only(conninfo)) throw UsageError(*why);
}

// Throws UsageError naming each privilege on the targets that rekey's role lacks.
void refuse_missing_privileges(const std::string& conninfo, const std::vector<TableShape>& shapes) {
  const std::vector<std::string> missing = db::missing_privileges(conninfo, shapes);
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
  throw UsageError("rekey's role lacks privileges rotate needs (see sql/grants.sql): " + list);
}

// --disable-triggers: refused (UsageError) unless this role may set
// session_replication_role; warns what the writes will skip.
db::Triggers trigger_mode(bool disable_triggers, const std::string& conninfo) {
  if (!disable_triggers) return db::Triggers::kFire;
  if (!db::can_skip_triggers(conninfo)) {
    throw UsageError(
        "--disable-triggers needs a superuser (or SET privilege on session_replication_role): this role may not "
        "set session_replication_role; run without it, and the application's UPDATE triggers fire for every row");
  }
  log::warn(
      "--disable-triggers: rekey's writes fire no trigger and no rule: neither the application's triggers (audit, "
      "updated_at, replication, cache invalidation) nor the foreign-key checks of those writes");
  return db::Triggers::kSkip;
}

// --report's file must be writable before anything is: a run that rotated
// everything and then cannot say so would exit 1. Throws UsageError.
void refuse_unwritable_report(const std::string& path) {
  if (path.empty()) return;
  try {
    AtomicFile probe(path);  // a temporary beside it, removed again
  } catch (const std::exception& e) {
    throw UsageError(std::string("--report: ") + e.what());
  }
}

}  // namespace rekey
