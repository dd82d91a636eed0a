// Keeps the leases of the work units this process's lanes hold: renews them
// on a connection of its own every third of the lease, so that a lane paused
// by the throttle (rate cap, pause file, replica lag) or a long batch keeps
// its unit, while a process that stops (killed, SIGSTOPped, cut off) loses
// them once they run out.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "db/work_units.h"

namespace rekey {

// Thread-safe: lanes call hold() and drop() from their threads.
class LeaseKeeper {
 public:
  LeaseKeeper(const std::string& conninfo, const std::string& schema, std::int64_t run_id,
              const db::Claimant& claimant);
  ~LeaseKeeper();  // stops renewing and joins its thread
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void hold(const db::WorkUnit& unit);
  void drop(const db::WorkUnit& unit);

 private:
  void run();
  void renew_once();

  db::WorkUnits units_;  // used by the keeper's thread only
  const std::chrono::milliseconds every_;
  std::mutex mutex_;  // guards held_ and stopping_
  std::condition_variable wake_;
  std::vector<db::WorkUnit> held_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is built
};

}  // namespace rekey
