// Pacing the reader so a rotation shares the database politely: a row-rate
// cap, the pace that --pace auto sets (PaceKeeper), a pause file, a
// replica-lag limit, and a batch size steered toward a target batch time.
// Thread-safe: the writer lanes of a run share one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "migrate/stop_control.h"

namespace rekey {

// The standbys' replay lag as the throttle reads it (db::ReplicaLagProbe).
struct ReplicaLag {
  // The largest replay lag among the standbys connected now, in seconds (0
  // without standbys, or when all have replayed everything sent to them;
  // infinity for one that has not reported its replay position yet).
  double max_seconds = 0;
  // Why the lag cannot be known now: a standby listed at the start is not
  // connected, or pg_stat_replication cannot be read. Empty when it is known.
  std::optional<std::string> unknown;
};

struct ThrottleSettings {
  double max_rate = 0;     // rows per second; 0: no cap
  std::string pause_file;  // paused while this file exists
  std::optional<std::chrono::milliseconds> max_replica_lag;
  // How long the lag may stay unknown (a standby gone, the lag unreadable)
  // before the run stops (kReplicaLagUnknown); it is paused meanwhile.
  std::chrono::milliseconds replica_lag_unknown_for{std::chrono::minutes(5)};
  // Steering: batch size moves toward batch_time between min_batch and max_batch.
  bool adaptive_batch = true;
  std::chrono::milliseconds batch_time{250};
  std::size_t min_batch = 100;
  std::size_t max_batch = 5000;  // larger batches measured slower and hold locks longer
};

class Throttle {
 public:
  // `replica_lag` reads the standbys' replay lag (called about once a second
  // when max_replica_lag is set); may be empty otherwise.
  Throttle(ThrottleSettings settings, std::size_t initial_batch, std::function<ReplicaLag()> replica_lag);

  // Blocks until the next batch may be read, and returns how many of the
  // `rows` wanted it may read now (slot_rows() at the rate then), counted as
  // read so that lanes waiting meanwhile see them. Honours the rate cap and the pace, the pause file, the pace's pauses
  // and the lag limit (while the lag is unknown it waits too, and after
  // replica_lag_unknown_for asks `stop` to stop). Returns 0 once `stop` asks.
  // Logs why it pauses. Lanes take their turns one at a time (turn_mutex_).
  std::size_t wait_for_turn(StopControl& stop, std::size_t rows);
  // Rows a batch was paced for but did not read (a short batch).
  void unread(std::size_t rows) { rows_read_ -= static_cast<std::int64_t>(rows); }

  // Feeds back how long writing a batch of `rows` took (writer stage).
  void record_write(std::size_t rows, std::chrono::duration<double> took);

  // The pace of --pace auto: rows per second (infinity: none) under the rate
  // cap, and why rekey must not read at all now (nullopt: it may).
  void set_pace(double rate, std::optional<std::string> paused);
  // Rows counted as read so far, by every lane.
  std::int64_t rows_read() const { return rows_read_.load(); }

  // The steered batch size, no larger than slot_rows() allows now.
  std::size_t batch_size() const;
  double seconds_paused() const;  // in all, the sum of seconds_paused_by()
  // Seconds paused by cause: "pause file", "replica lag", "pace".
  std::map<std::string, double> seconds_paused_by() const;
  double seconds_throttled() const { return throttled_ns_.load() / 1e9; }

 private:
  struct PauseReason {
    const char* cause;  // a key of seconds_paused_by()
    std::string text;
    bool operator==(const PauseReason& o) const { return text == o.text; }
  };
  // Why the reader must wait now, or nullopt.
  std::optional<PauseReason> pause_reason(StopControl& stop);
  void wait_while_paused(StopControl& stop);
  // Waits until the last batch fits under the rate, following its changes.
  void wait_for_rate(StopControl& stop);
  double rate_now() const;  // the cap and the pace together; infinity: none
  // Of `wanted` rows, those a turn may take at the rate now: a twentieth of a
  // second's worth where the pace sets it, a tenth where --max-rate does, all
  // without a rate; at least one.
  std::size_t slot_rows(std::size_t wanted) const;
  // Why the standbys hold the reader back now (read about once a second), or nullopt.
  std::optional<std::string> replicas_hold_back(StopControl& stop);
  ThrottleSettings settings_;
  std::function<ReplicaLag()> replica_lag_;
  std::mutex turn_mutex_;  // guards what follows up to rows_read_, and serializes wait_for_turn
  std::chrono::steady_clock::time_point next_lag_check_{};
  std::optional<std::string> replicas_hold_back_;  // as of the last check
  std::optional<std::chrono::steady_clock::time_point> lag_unknown_since_;
  std::chrono::steady_clock::time_point last_turn_{};  // when the last batch went...
  double last_rows_ = 0;                               // ...with this many rows...
  double last_rate_ = 0;                               // ...at this rate (infinity: none)
  double credit_s_ = 0;                                // time it left unused at the rate
  std::atomic<std::int64_t> rows_read_{0};
  mutable std::mutex pace_mutex_;  // guards pace_rate_, pace_paused_ and paused_by_
  double pace_rate_ = std::numeric_limits<double>::infinity();
  std::optional<std::string> pace_paused_;
  std::map<std::string, double> paused_by_;
  std::atomic<std::size_t> batch_size_;
  std::atomic<std::int64_t> throttled_ns_{0};
};

}  // namespace rekey
