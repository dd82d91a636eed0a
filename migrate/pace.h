// Adaptive pace (--pace auto): the row rate of a rotation, set from the
// database's health by an additive-increase, multiplicative-decrease
// controller. Pure: it sees health samples and the time, never the database
// (db::HealthProbe takes the samples, PaceKeeper drives it and hands the rate
// to the Throttle). Not thread-safe: one owner thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace rekey {

enum class PaceMode { kAuto, kMax };

// One reading of the database's health (db::HealthProbe::sample).
struct HealthSample {
  // A primary-key read of a row of a target table plus a tiny write to the
  // state schema, end to end, on a connection of its own.
  double probe_ms = 0;
  // A fixed slice of CPU work run by the server (a sum over a series), timed:
  // it slows down as the server's cores fill up, which short queries barely
  // show (the scheduler favours them).
  double cpu_probe_ms = 0;
  // Other sessions (not rekey's) that ran something in the last second; and
  // whether the role can see them at all (without pg_read_all_stats it sees
  // only its own: then an application is assumed to be there).
  int app_sessions = 0;
  bool sessions_visible = true;
  int busy_sessions = 0;                // of app_sessions, those running a statement on a core or the disks now
  int waiting_sessions = 0;             // other sessions waiting on a lock or on WAL now
  double wal_bytes = 0;                 // pg_current_wal_lsn() as a byte position
  std::int64_t forced_checkpoints = 0;  // pg_stat_bgwriter.checkpoints_req, cumulative
  double replica_lag_s = 0;             // the largest replay lag among the standbys (0: none)
  double replica_lag_bytes = 0;         // the same lag in WAL bytes not yet replayed
  std::optional<std::string> wraparound_vacuum;  // the target table an anti-wraparound autovacuum works on
};

struct PaceSettings {
  double ceiling = 0;                      // rows/s at most (--max-rate); 0: none
  std::chrono::milliseconds settle{1000};  // the least time between two changes: the signals must show the last
  double latency_factor = 1.5;             // unhealthy when the probe's p95 > factor x baseline + slack
  double latency_slack_ms = 0.5;           // absolute slack: sub-millisecond baselines are noisy
  double median_factor = 1.5;              // unhealthy too when the probe's median > factor x the baseline's + slack/2
  double cpu_factor = 1.3;                 // unhealthy when the CPU probe's median > factor x its baseline's
  double saturated = 0.5;                  // unhealthy when the other sessions are this busy (share of samples)
  int waiting_margin = 2;                  // unhealthy when more sessions wait than the baseline's + this
  double lag_unhealthy_s = 2;              // unhealthy when a standby's replay lags more
  double start_rate = 1000;                // rows/s when an application is seen first
  double min_rate = 50;                    // backing off never stops the run
  std::size_t window = 20;                 // probes the p95 is taken over
};

// What the pace is now. rate: rows per second, infinity for no limit.
struct Pace {
  double rate = std::numeric_limits<double>::infinity();
  std::optional<std::string> paused;  // why rekey must not write at all now
  std::string reason;                 // why the rate is what it is (the last change)
};

// One change of the pace, for the report.
struct PaceChange {
  double at_s = 0;  // seconds since the start of the invocation
  double rate = 0;  // rows/s; infinity: no limit; 0: paused
  std::string reason;
};

// The pace of a run over time, for the report and the metrics.
struct PaceReport {
  PaceMode mode = PaceMode::kMax;
  Pace now;
  double baseline_ms = 0;
  double p95_ms = 0;
  double wal_bytes_per_s = 0;
  double replica_lag_bytes = 0;     // as last sampled
  std::vector<PaceChange> changes;  // the first kMaxChanges, then the last
  static constexpr std::size_t kMaxChanges = 2000;
};
const char* to_string(PaceMode mode);
// "12345 rows/s", or "no limit" for infinity.
std::string rate_text(double rows_per_s);

class PaceController {
 public:
  explicit PaceController(PaceSettings settings);

  // The baseline: samples taken while rekey itself was quiet. Its p95 probe
  // latency and its most waiting sessions are what later samples compare with.
  // A baseline measured again is at most `max_growth` times the first one
  // (rekey's own load, or another worker's, must not creep into it), and
  // counts no more waiting sessions than the one before.
  void set_baseline(const std::vector<HealthSample>& quiet, double max_growth = 2.0);
  double baseline_ms() const { return baseline_ms_; }
  // The p95 probe latency over the last `window` probes since the last change.
  double recent_p95_ms() const;
  double wal_bytes_per_s() const { return wal_rate_; }

  // A sample taken at `now`, with the rows rekey has read so far (all its
  // lanes). Returns the pace, changed at most once per `settle` (a pause for
  // an anti-wraparound vacuum takes effect at once).
  const Pace& observe(const HealthSample& sample, std::chrono::steady_clock::time_point now, std::int64_t rows_read);
  const Pace& pace() const { return pace_; }
  // The last change was a back-off that found rekey already at min_rate, and
  // the probes still slow against their baseline: a strain that outlasts
  // rekey's own load, so the baseline may be stale (the application's load
  // grew since it was measured). Until the next change that is no back-off.
  bool strained_at_floor() const { return strained_at_floor_; }
  // The health cannot be read (the probe keeps failing): no pause, and a rate
  // no higher than the starting one, until samples come again.
  void blind(const std::string& why, std::chrono::steady_clock::time_point now, std::int64_t rows_read);

 private:
  // Why the database is under strain now, or nullopt: strain() everything,
  // latency_strain() the probes against their baseline, server_strain() the
  // server's own (checkpoints, standbys), standby_strain() what holds even
  // with no other session.
  std::optional<std::string> strain(const HealthSample& sample) const;
  std::optional<std::string> latency_strain() const;  // the probes against their baseline
  std::optional<std::string> server_strain(const HealthSample& sample) const;
  std::optional<std::string> standby_strain(const HealthSample& sample) const;
  double start_rate() const;  // settings' start_rate under the ceiling
  // The next rate once the last change has settled: lower under strain,
  // higher when healthy and rekey uses its budget, none when nobody else is
  // there; nullopt to keep it.
  enum class Step { kIdle, kBackOff, kStart, kRaise };
  struct Next {
    Step step;
    double rate;
    std::string reason;
  };
  std::optional<Next> next_rate(const HealthSample& sample, double used_rate) const;
  void change(double rate, std::string reason, const HealthSample& sample, std::chrono::steady_clock::time_point now,
              std::int64_t rows_read);

  PaceSettings settings_;
  Pace pace_;
  double baseline_ms_ = 0;
  double baseline_median_ms_ = 0;
  double baseline_cpu_ms_ = 0;  // the CPU probe's median
  std::optional<double> first_baseline_ms_;
  int baseline_waiting_ = 0;
  std::deque<double> probes_;      // since the last change, at most `window`
  std::deque<double> cpu_probes_;  // likewise
  int busy_seen_ = 0;              // busy_sessions summed since the last change
  int sessions_seen_ = 0;          // app_sessions summed likewise
  std::optional<HealthSample> previous_;
  std::chrono::steady_clock::time_point previous_at_{};
  std::chrono::steady_clock::time_point changed_at_{};
  std::chrono::steady_clock::time_point counted_from_{};  // rekey's rows read are counted from here...
  std::int64_t rows_at_change_ = 0;                       // ...when it had read this many
  std::int64_t forced_at_change_ = -1;  // checkpoints_req at the last change; -1 before the first sample
  double wal_rate_ = 0;
  double decreased_from_ = 0;  // the rate before the last decrease: sets the additive step
  bool slow_start_ = true;     // doubling until the first sign of strain
  bool strained_at_floor_ = false;
};

// No other session is there (none seen, and the role can see them).
bool is_idle(const HealthSample& sample);

// The p95 and the median (nearest rank) of `values`; 0 when empty.
// p95_of_few(): for 5 to 19 values, the second largest (the nearest rank
// would be the largest, one outlier).
double p95(std::vector<double> values);
double p95_of_few(std::vector<double> values);
double median(std::vector<double> values);

}  // namespace rekey
