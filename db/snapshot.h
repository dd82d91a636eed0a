// A snapshot of the database exported for other sessions to share
// (pg_export_snapshot), so that a census of many relations sees them all at
// one instant: a row moving from one relation to another while they are read
// is seen exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <pqxx/types>
#include <string>
#include <vector>

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace rekey::db {

class ExportedSnapshot {
 public:
  // Opens a connection holding a REPEATABLE READ, READ ONLY transaction for
  // the lifetime of this object. First, for at most `wait_for_older`, waits
  // until every transaction begun before the call has ended (as CREATE INDEX
  // CONCURRENTLY does): one that began before the snapshot and commits after
  // it could hold values the snapshot cannot see. It takes a transaction id
  // to tell which began before; a standby takes none, and waits for none
  // (on_standby()). Throws on database errors.
  ExportedSnapshot(const std::string& conninfo, std::chrono::milliseconds wait_for_older);
  ~ExportedSnapshot();

  // For SET TRANSACTION SNAPSHOT in another session's REPEATABLE READ transaction.
  const std::string& id() const { return id_; }
  // Transactions begun before the snapshot and still not ended after the
  // wait (prepared transactions among them): "pid N", "prepared 'gid'", or
  // "xid N" for one whose session this role cannot see.
  const std::vector<std::string>& older_still_open() const { return older_still_open_; }
  // True on a standby: it assigns no transaction id, and cannot tell which of
  // the primary's transactions began before the snapshot (none was waited for).
  bool on_standby() const { return !bound_; }
  // The end of the WAL just after the snapshot was taken, as a byte
  // position: every commit it sees ends at or before it (a commit inserts its
  // record, then becomes visible). nullopt on a standby, which needs no
  // wait_until_flushed(): the primary streams only WAL it has flushed, and a
  // standby replays only WAL it has flushed itself.
  std::optional<std::uint64_t> wal_end() const { return wal_end_; }

 private:
  std::unique_ptr<pqxx::connection> conn_;  // declared before tx_: outlives it
  std::optional<std::string> bound_;        // the xid waited below; nullopt on a standby
  std::vector<std::string> older_still_open_;
  std::unique_ptr<pqxx::transaction_base> tx_;
  std::string id_;
  std::optional<std::uint64_t> wal_end_;
};

// The WAL's end for a flush to reach, from the insert position the server
// reports (pg_current_wal_insert_lsn() as a byte position): at a page's start
// it reports the position after the page's header (40 bytes on a segment's
// first page, 24 on the others, with 8-byte alignment), which no flush reaches
// until more WAL comes; the page's start is the end then.
std::uint64_t wal_end_from_insert(std::uint64_t insert, std::uint64_t page_size, std::uint64_t segment_size);

// Waits, on a connection of its own, until the server's WAL is flushed up to
// byte position `wal_end` (ExportedSnapshot::wal_end()), for at most `timeout`
// and while `stop_requested` returns false. A transaction committed without
// waiting for its flush (synchronous_commit = off) is visible at once, and a
// crash of the server before the flush undoes it. True once flushed. Throws on
// database errors.
bool wait_until_flushed(const std::string& conninfo, std::uint64_t wal_end, std::chrono::milliseconds timeout,
                        const std::function<bool()>& stop_requested);

}  // namespace rekey::db
