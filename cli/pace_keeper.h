// --pace auto at work: samples the database's health every `interval` on a
// thread of its own, feeds a PaceController and hands its pace to the
// Throttle the lanes wait on. The probe's baseline is measured while this
// process's lanes are quiet: at the start when another session is there,
// else once one shows (the lanes paused for it), and again every `rebaseline`
// while one is there, or sooner (`rebaseline_at_floor`) when the probes stay
// slow with rekey at the least rate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "migrate/pace.h"
#include "migrate/throttle.h"

namespace rekey {

struct PaceTiming {
  std::chrono::milliseconds interval{100};       // between samples
  int quiet_samples = 10;                        // samples a baseline takes...
  std::chrono::milliseconds quiet_interval{25};  // ...this far apart...
  std::chrono::milliseconds quiet_settle{300};   // ...after the lanes' last batches (a re-measure)
  std::chrono::seconds rebaseline{30};
  // Strained still with rekey at the least rate (the strain is not rekey's):
  // the baseline is measured again this long after the last one, once until
  // the rate rises again.
  std::chrono::milliseconds rebaseline_at_floor{5000};
};

// Thread-safe: report() and shown() from any thread.
class PaceKeeper {
 public:
  // One health sample, publishing the pace given (db::HealthProbe::sample);
  // may throw (the keeper keeps the pace it had and warns).
  using Sampler = std::function<HealthSample(const Pace&, double baseline_ms)>;

  // Takes a first sample (and the baseline, when another session is there)
  // now: call before the lanes start. Then starts its thread.
  PaceKeeper(Sampler sample, Throttle& throttle, PaceSettings settings, PaceTiming timing = {});
  ~PaceKeeper();  // stops sampling and joins its thread
  PaceKeeper(const PaceKeeper&) = delete;
  PaceKeeper& operator=(const PaceKeeper&) = delete;

  PaceReport report() const;
  // The pace for the progress line: rows/s (infinity: none) and a short text.
  std::pair<double, std::string> shown() const;

 private:
  void run();
  void measure_baseline();
  void measure_quietly();  // the lanes paused meanwhile
  bool baseline_due() const;
  void step();
  // Hands `now` to the throttle and the report (a change, logged).
  void publish(const Pace& now);
  // Sampler, warning (once per message) instead of throwing.
  std::optional<HealthSample> try_sample();
  bool wait(std::chrono::milliseconds d);  // false once stopping
  double seconds() const;

  Sampler sample_;
  Throttle& throttle_;
  PaceTiming timing_;
  PaceController controller_;  // the keeper's thread only (the constructor before it starts)
  std::string last_warning_;   // the keeper's thread only, as is what follows up to started_
  int failures_ = 0;           // samples failed in a row
  bool warned_hidden_ = false;
  bool baseline_known_ = false;
  std::chrono::steady_clock::time_point baseline_at_;  // when a baseline was last measured (or tried)
  bool remeasured_at_floor_ = false;  // since the controller was last strained_at_floor(): once is enough
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;  // guards report_ and stopping_
  std::condition_variable wake_;
  PaceReport report_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is built
};

}  // namespace rekey
