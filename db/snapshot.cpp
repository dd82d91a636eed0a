#include "db/snapshot.h"

#include <pqxx/pqxx>

#include "db/connection.h"

namespace rekey::db {

ExportedSnapshot::ExportedSnapshot(const std::string& conninfo)
    : conn_(connect(conninfo)),
      tx_(std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_)),
      id_(tx_->exec1("SELECT pg_catalog.pg_export_snapshot()")[0].as<std::string>()) {}

ExportedSnapshot::~ExportedSnapshot() = default;

}  // namespace rekey::db
