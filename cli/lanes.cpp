#include "cli/lanes.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "migrate/port_error.h"

namespace rekey {
namespace {

constexpr std::chrono::milliseconds kNap{50};  // a waiting lane looks at run_done this often

// One lane's loop, on its own thread; owns its connection to the units.
class Lane {
 public:
  Lane(std::size_t number, const LaneSettings& settings, db::WorkUnits& units, UnitWork& work, LeaseKeeper& keeper,
       StopControl& stop, std::atomic<bool>& run_done)
      : number_(number),
        settings_(settings),
        units_(units),
        work_(work),
        keeper_(keeper),
        stop_(stop),
        run_done_(run_done) {}

  // Until the run's units are all done (run_done_), nothing is left to claim
  // (kLeave), or a stop.
  void run() {
    auto next_report = std::chrono::steady_clock::now();
    while (!stop_.should_stop() && !run_done_) {
      std::optional<db::WorkUnit> unit;
      retry("claiming a work unit", [&] { unit = units_.claim(); });
      if (unit) {
        work_on(*unit);
        continue;
      }
      db::UnitTally tally;
      retry("reading the run's work units", [&] { tally = units_.tally(); });
      if (tally.superseded) {
        log::error(
            "the run was superseded (by rotate --restart, or a rollback of it): this worker stops; its work stands");
        stop_.request(StopReason::kLockLost);
        return;
      }
      if (tally.total() > 0 && tally.done == tally.total()) run_done_ = true;
      if (run_done_ || settings_.when_nothing_left == WhenNothingLeft::kLeave) return;
      if (number_ == 0 && std::chrono::steady_clock::now() >= next_report) {
        std::vector<db::WorkerLease> held;
        retry("reading the run's work units", [&] { held = units_.leases(); });
        work_.waiting(held);
        next_report = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      }
      for (auto t = std::chrono::milliseconds(0); t < settings_.poll && !run_done_ && !stop_.should_stop(); t += kNap) {
        std::this_thread::sleep_for(kNap);
      }
    }
  }

 private:
  void work_on(const db::WorkUnit& unit) {
    keeper_.hold(unit);
    try {
      const std::optional<nlohmann::json> outcome = work_.work(unit, number_);
      keeper_.drop(unit);
      bool completed = false;
      if (!outcome) {
        retry("giving a work unit back", [&] { units_.release(unit); });
      } else {
        retry("marking a work unit done", [&] { completed = units_.complete(unit, *outcome); });
      }
      if (completed && unit.kind == db::UnitKind::kRun) run_done_ = true;
      if (outcome && !completed) {
        log::warn("{} unit {} of {} passed to another worker before it was marked done; it will be done again",
                  db::kind_name(unit.kind), unit.chunk, unit.table_name);
      }
    } catch (const std::exception& e) {
      keeper_.drop(unit);
      if (is_lease_lost(e)) {
        log::warn("lane {}: {}; moving on", number_, e.what());
        return;
      }
      give_back(unit);
      throw;
    }
  }

  void retry(const std::string& what, const std::function<void()>& attempt) {
    with_retries(settings_.retry, "lane " + std::to_string(number_) + ": " + what, attempt);
  }

  void give_back(const db::WorkUnit& unit) noexcept {
    try {
      units_.release(unit);
    } catch (const std::exception&) {
      // Its lease runs out instead.
    }
  }

  std::size_t number_;
  const LaneSettings& settings_;
  db::WorkUnits& units_;
  UnitWork& work_;
  LeaseKeeper& keeper_;
  StopControl& stop_;
  std::atomic<bool>& run_done_;  // shared by the lanes: the run's own unit is done
};

}  // namespace

bool run_lanes(const LaneSettings& settings, const std::function<std::unique_ptr<db::WorkUnits>()>& open_units,
               UnitWork& work, LeaseKeeper& keeper, StopControl& stop) {
  std::mutex mutex;  // guards first_error
  std::exception_ptr first_error;
  std::atomic<bool> run_done{false};
  std::vector<std::thread> threads;
  const std::size_t lanes = std::max<std::size_t>(1, settings.lanes);
  for (std::size_t i = 0; i < lanes; ++i) {
    threads.emplace_back([&, i] {
      try {
        const std::unique_ptr<db::WorkUnits> units = open_units();
        Lane(i, settings, *units, work, keeper, stop, run_done).run();
      } catch (const RetriesExhausted& e) {
        // Every committed batch carries its checkpoint: stopping here is safe.
        log::error("{}", e.what());
        stop.request(StopReason::kRetriesExhausted);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (!first_error) first_error = std::current_exception();
        stop.request(StopReason::kError);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
  return run_done;
}

}  // namespace rekey
