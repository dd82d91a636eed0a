#include "cli/lease_keeper.h"

#include <algorithm>

#include "common/log.h"
#include "db/connection.h"

namespace rekey {
namespace {
bool same_unit(const db::WorkUnit& a, const db::WorkUnit& b) {
  return a.table_name == b.table_name && a.chunk == b.chunk && a.epoch == b.epoch;
}
}  // namespace

LeaseKeeper::LeaseKeeper(const std::string& conninfo, const std::string& schema, std::int64_t run_id,
                         const db::Claimant& claimant)
    : units_(conninfo, schema, run_id, claimant),
      every_(std::max(std::chrono::milliseconds(100), claimant.lease / 3)),
      thread_([this] { run(); }) {}

LeaseKeeper::~LeaseKeeper() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void LeaseKeeper::hold(const db::WorkUnit& unit) {
  const std::lock_guard<std::mutex> lock(mutex_);
  held_.push_back(unit);
}

void LeaseKeeper::drop(const db::WorkUnit& unit) {
  const std::lock_guard<std::mutex> lock(mutex_);
  held_.erase(std::remove_if(held_.begin(), held_.end(), [&](const db::WorkUnit& u) { return same_unit(u, unit); }),
              held_.end());
}

void LeaseKeeper::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, every_, [this] { return stopping_; })) {
    lock.unlock();
    renew_once();
    lock.lock();
  }
}

// A renewal that fails is logged and tried again next time: the writes of a
// unit whose lease ran out meanwhile are fenced (db::fence_unit).
void LeaseKeeper::renew_once() {
  std::vector<db::WorkUnit> held;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    held = held_;
  }
  if (held.empty()) return;
  try {
    for (const db::WorkUnit& lost : units_.renew(held)) {
      log::warn("the lease of {} unit {} of {} passed to another worker; its next write will stop there",
                db::kind_name(lost.kind), lost.chunk, lost.table_name);
      drop(lost);
    }
  } catch (const std::exception& e) {
    log::warn("could not renew this worker's leases: {}", db::error_summary(e));
  }
}

}  // namespace rekey
