// Writer lanes: threads of one process that claim work units of a run (from
// the state schema, shared with the workers of other processes and hosts)
// and work on them until the run has nothing left to claim.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/lease_keeper.h"
#include "db/work_units.h"
#include "migrate/retry.h"
#include "migrate/stop_control.h"

namespace rekey {

// What a lane does with a unit it claimed. Called from the lanes' threads at
// once (each with its own `lane` number, from 0): implementations keep what
// lanes share thread-safe.
class UnitWork {
 public:
  virtual ~UnitWork() = default;
  // The unit's outcome once it got to its end (the unit is then done), or
  // nullopt when it stopped first (the unit is given back, its checkpoint
  // kept). Throws on errors; PortError kLeaseLost when another worker took it.
  virtual std::optional<nlohmann::json> work(const db::WorkUnit& unit, std::size_t lane) = 0;
  // Called by lane 0 about every 10 s while this process waits for the units
  // other workers hold.
  virtual void waiting(const std::vector<db::WorkerLease>& others) = 0;
};

enum class WhenNothingLeft {
  kWaitForRun,  // wait for the other workers' units (taking over any whose lease runs out) until the run is done
  kLeave,       // --no-wait: leave at once
};

struct LaneSettings {
  std::size_t lanes = 1;
  WhenNothingLeft when_nothing_left = WhenNothingLeft::kWaitForRun;
  std::chrono::milliseconds poll{1000};  // how often a waiting lane looks for units to claim
  RetryPolicy retry;                     // for the lanes' own statements (claims, completions)
};

// Runs the lanes until every unit of the run is done, or nothing is left to
// claim (kLeave), or `stop` asks (each lane gives its unit back). True when
// every unit of the run is done. A lane's error stops the others
// (StopReason::kError) and is rethrown once all have ended; RetriesExhausted
// when the database stayed out of reach for settings.retry.retry_for.
bool run_lanes(const LaneSettings& settings, const std::function<std::unique_ptr<db::WorkUnits>()>& open_units,
               UnitWork& work, LeaseKeeper& keeper, StopControl& stop);

}  // namespace rekey
