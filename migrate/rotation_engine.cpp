#include "migrate/rotation_engine.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "common/log.h"
#include "migrate/batch_pipeline.h"
#include "migrate/batch_rotation.h"
#include "migrate/census_engine.h"
#include "migrate/port_error.h"

namespace rekey {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::int64_t nanoseconds_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

// One batch of the main pass, handed from stage to stage.
struct Batch {
  std::vector<Row> rows;  // read; cleared once re-encrypted
  BatchWrite write;
  double crypto_seconds = 0;
};
using BatchPtr = std::unique_ptr<Batch>;

// One table's rotation, in stages that run one after the other on the calling
// thread: the main pass, the pending rows, the final sweep. The main pass is
// a pipeline whose reader and writer stages TBB runs at the same time: the
// reader stage owns cursor_ and reached_end_, the writer stage owns outcome_
// and failures_ (the calling thread owns them outside the pipeline). What the
// reader counts (its retries and time) are atomics, folded into the outcome
// by so_far().
class TableRotation {
 public:
  TableRotation(const TableShape& shape, const crypto::Keyring& keyring, TableReader& reader, TableWriter& writer,
                const EngineSettings& settings, StopControl& stop, const ProgressCallback& on_progress)
      : shape_(shape),
        keyring_(keyring),
        reader_(reader),
        writer_(writer),
        settings_(settings),
        stop_(stop),
        on_progress_(on_progress),
        where_("table " + shape.display_name()),
        failures_(settings.failures_before) {
    outcome_.counts.resize(shape.columns.size());
  }

  TableOutcome run(const KeyRange& range, TableStages stages) {
    try {
      const bool main_pass_done = stages == TableStages::kFinish || main_pass(range);
      const bool finish_done = stages == TableStages::kMainPass || (settle_pending() && final_sweep());
      if (main_pass_done && finish_done) outcome_.completed = stop_.reason() == StopReason::kNone;
    } catch (const RetriesExhausted& e) {
      // Every committed batch carries its checkpoint: stopping here is safe.
      log::error("{}", e.what());
      stop_.request(StopReason::kRetriesExhausted);
    }
    return so_far();
  }

 private:
  // Stage 1: every row of `range` in key order. True when it reached the
  // range's end without being stopped.
  bool main_pass(const KeyRange& range) {
    cursor_ = range.after;
    up_to_ = range.up_to;
    // One batch being read, one written, one per re-encryption thread; the
    // reader and writer mostly wait on the database.
    const std::size_t in_flight = std::max<std::size_t>(1, settings_.threads) + 2;
    run_batch_pipeline<Batch>(
        in_flight, in_flight, [&] { return read_stage(); }, [&](Batch& batch) { reencrypt_stage(batch); },
        [&](Batch& batch) { write_stage(batch); });
    return reached_end_ && stop_.reason() == StopReason::kNone;
  }

  // Serial: the next keyset page after cursor_; null (and the pipeline stops)
  // at the end of the table or when asked to stop.
  BatchPtr read_stage() {
    if (reached_end_ || stop_.should_stop()) return nullptr;
    const std::size_t rows =
        wait_for_turn(settings_.throttle != nullptr ? settings_.throttle->batch_size() : settings_.batch_size);
    if (rows == 0) return nullptr;
    auto batch = std::make_unique<Batch>();
    const auto started = Clock::now();
    const ReadLimit share = batch_share(rows, settings_.batch_bytes, settings_.threads);
    retry("reading a batch", read_retries_, [&] { batch->rows = reader_.read_range({cursor_, up_to_}, share); });
    count_read(rows, batch->rows.size());
    read_nanoseconds_ += nanoseconds_since(started);
    if (batch->rows.empty()) {
      reached_end_ = true;
      return nullptr;
    }
    // A short batch may have been cut at its bytes: only an empty read is the end.
    cursor_ = batch->rows.back().key;
    return batch;
  }

  // Parallel: the batch's values re-encrypted, its last key the checkpoint.
  void reencrypt_stage(Batch& batch) const {
    const auto started = Clock::now();
    batch.write = rotate_rows(shape_, keyring_, batch.rows);
    batch.crypto_seconds = seconds_since(started);
    batch.write.checkpoint = batch.rows.back().key;
    batch.rows.clear();
  }

  // Serial, in key order: the batch and its checkpoint written.
  void write_stage(Batch& batch) {
    outcome_.crypto_seconds += batch.crypto_seconds;
    commit(batch.write);
  }

  // Stage 2: rows that lost a compare-and-swap (changed or held locked by the
  // application), read again for at most --retry-for. True when none is left.
  bool settle_pending() {
    std::chrono::milliseconds pause{100};
    const auto give_up_at = Clock::now() + settings_.retry.retry_for;
    for (int round = 0;; ++round) {
      std::vector<KeyValues> keys;
      retry("listing pending rows", write_retries_, [&] { keys = writer_.pending(); });
      outcome_.pending_left = static_cast<std::int64_t>(keys.size());
      if (keys.empty()) return true;
      if (stop_.should_stop() || round >= settings_.pending_rounds || Clock::now() >= give_up_at) return false;
      if (round > 0 && !pause_for(pause)) return false;
      pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
      log::info("{}: reading again {} row(s) the application changed or held locked during the run",
                shape_.display_name(), keys.size());
      rewrite_rows(keys, Reread::kPending);
    }
  }

  // Stage 3: a census of the whole table; rows still under an old key (the
  // application inserted or copied an old-key value behind the checkpoint)
  // are rotated, and values that fail are recorded, until a sweep finds
  // nothing old. True when the last sweep was clean.
  bool final_sweep() {
    if (!settings_.open_scan) return true;
    int capped_sweeps = 0;
    for (int round = 0; round < settings_.sweep_rounds; ++round) {
      CensusOutcome found;
      retry("sweeping for old-key values", read_retries_, [&] {
        auto scanner = settings_.open_scan();
        found = census_table(shape_, keyring_, *scanner, sweep_census(), stop_, nullptr);
      });
      if (!found.completed) return false;
      record_failures(found);
      if (found.old_rows.empty()) return true;
      log::warn("{}: {} row(s) hold values under an old key written behind the checkpoint; rotating them",
                shape_.display_name(), found.old_rows.size());
      const std::int64_t rotated_before = rotated_total();
      rewrite_rows(found.old_rows, Reread::kSweep);
      outcome_.swept += rotated_total() - rotated_before;
      if (!settle_pending()) return false;
      // A capped sweep has more to do; it is no sign of a second writer (but
      // rows that cannot be read again must not keep it going for ever).
      if (found.old_rows_capped && capped_sweeps++ < kMaxCappedSweeps) --round;
    }
    outcome_.old_values_keep_coming = true;
    log::error(
        "{}: values under an old key kept appearing in {} sweeps: something still writes with the old key "
        "(an application instance on the old configuration?); deploy the new key everywhere and rerun",
        shape_.display_name(), settings_.sweep_rounds);
    return false;
  }

  CensusSettings sweep_census() const {
    CensusSettings census;
    census.batch_size = settings_.batch_size;
    census.batch_bytes = settings_.batch_bytes;
    census.threads = settings_.threads;
    census.examples = kRecordedFailures;
    census.collect_old_rows = kSweepRows;
    return census;
  }

  // Reads `keys` again, a batch at a time, and writes what is still under an
  // old key (stages 2 and 3, on the calling thread).
  void rewrite_rows(const std::vector<KeyValues>& keys, Reread why) {
    const std::size_t max_bytes = batch_share(settings_.batch_size, settings_.batch_bytes, settings_.threads).bytes;
    for (std::size_t from = 0; from < keys.size() && !stop_.should_stop();) {
      // Paced like the main pass: the rate cap, the pace, the pause file and replica lag hold here too.
      const std::size_t rows = wait_for_turn(std::min(keys.size() - from, settings_.batch_size));
      if (rows == 0) break;
      std::vector<KeyValues> chunk(keys.begin() + static_cast<std::ptrdiff_t>(from),
                                   keys.begin() + static_cast<std::ptrdiff_t>(from + rows));
      KeyedRows read;
      retry("reading rows again", read_retries_, [&] { read = reader_.read_keys(chunk, max_bytes); });
      count_read(chunk.size(), read.rows.size());
      chunk.resize(std::max<std::size_t>(1, read.keys_read));
      from += chunk.size();
      BatchWrite write = reread_rows(shape_, keyring_, chunk, read.rows, why);
      commit(write);
    }
  }

  // Values the sweep found that no key decrypts (new since they were first
  // read, or already recorded: recording is idempotent).
  void record_failures(const CensusOutcome& found) {
    BatchWrite write;
    write.counts.resize(shape_.columns.size());
    write.reread = true;
    for (const Failure& f : found.examples) {
      if (f.reason != crypto::to_string(crypto::ValueOutcome::kUnderOldKey)) write.failures.push_back(f);
    }
    if (!write.failures.empty()) commit(write);
  }

  // Writes one batch with its state, unless this runner lost its table lock;
  // counts what it did.
  void commit(BatchWrite& write) {
    if (stop_.reason() == StopReason::kLockLost || !lock_still_held()) return;
    const auto started = Clock::now();
    const std::vector<std::size_t> lost = write_with_retries(write);
    outcome_.write_seconds += seconds_since(started);
    if (settings_.throttle != nullptr) {
      settings_.throttle->record_write(static_cast<std::size_t>(write.rows_seen), Clock::now() - started);
    }
    count_written(write, lost);
  }

  std::vector<std::size_t> write_with_retries(BatchWrite& write) {
    std::vector<std::size_t> lost;
    retry("writing a batch", write_retries_, [&] {
      try {
        lost = writer_.write(write);
      } catch (const std::exception& e) {
        // A row the application holds locked: write around it from now on;
        // the rows left out come back as not applied and are read again later.
        if (is_lock_timeout(e)) write.skip_locked = true;
        throw;
      }
    });
    return lost;
  }

  bool lock_still_held() {
    if (!settings_.still_locked) return true;
    bool locked = true;
    retry("checking the table lock", write_retries_, [&] { locked = settings_.still_locked(); });
    if (locked) return true;
    log::error("{}: another runner took this table's lock after a reconnect; stopping without writing", where_);
    stop_.request(StopReason::kLockLost);
    return false;
  }

  void count_written(const BatchWrite& write, const std::vector<std::size_t>& lost) {
    const std::vector<ColumnCounts> applied = counts_applied(write, lost);
    for (std::size_t c = 0; c < outcome_.counts.size(); ++c) outcome_.counts[c] += applied[c];
    failures_ += static_cast<std::int64_t>(write.failures.size());
    for (const auto& f : write.failures) ++outcome_.failure_reasons[f.reason];
    outcome_.pending_not_found += static_cast<std::int64_t>(write.vanished_pending.size());
    outcome_.rows_seen += write.rows_seen;
    ++outcome_.batches;
    if (settings_.max_failures > 0 && failures_ >= settings_.max_failures) stop_.request(StopReason::kMaxFailures);
    if (on_progress_) on_progress_(so_far(), seconds_since(started_));
  }

  // Paces a read of up to `rows` rows (rate cap, pace, pause file, replica
  // lag): the rows it may read now; 0 when asked to stop.
  std::size_t wait_for_turn(std::size_t rows) {
    if (settings_.throttle != nullptr) return settings_.throttle->wait_for_turn(stop_, rows);
    return stop_.should_stop() ? 0 : rows;
  }

  // A read paced for `paced` rows returned `rows`.
  void count_read(std::size_t paced, std::size_t rows) {
    if (settings_.throttle != nullptr && rows < paced) settings_.throttle->unread(paced - rows);
  }

  // Waits `d` unless asked to stop; false when stopped.
  bool pause_for(std::chrono::milliseconds d) {
    const auto until = Clock::now() + d;
    while (!stop_.should_stop() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return !stop_.should_stop();
  }

  template <typename Work>
  void retry(const std::string& what, std::atomic<std::int64_t>& counter, Work&& work) {
    std::int64_t n = 0;
    with_retries(settings_.retry, where_ + ": " + what, std::forward<Work>(work), &n);
    counter += n;
  }

  std::int64_t rotated_total() const {
    std::int64_t n = 0;
    for (const auto& c : outcome_.counts) n += c.rotated;
    return n;
  }

  // The outcome, with what the reader counts folded in. Writer stage or
  // calling thread only.
  const TableOutcome& so_far() {
    outcome_.retries = read_retries_ + write_retries_;
    outcome_.read_seconds = static_cast<double>(read_nanoseconds_) * 1e-9;
    return outcome_;
  }

  static constexpr std::size_t kRecordedFailures = 100000;  // per column and sweep
  static constexpr std::size_t kSweepRows = 100000;         // rewritten per sweep round
  static constexpr int kMaxCappedSweeps = 1000;             // 10^8 rows found under an old key by the sweeps

  const TableShape& shape_;
  const crypto::Keyring& keyring_;
  TableReader& reader_;
  TableWriter& writer_;
  const EngineSettings& settings_;
  StopControl& stop_;
  const ProgressCallback& on_progress_;
  const std::string where_;
  const Clock::time_point started_ = Clock::now();
  TableOutcome outcome_;
  std::int64_t failures_;
  std::optional<KeyValues> cursor_;
  std::optional<KeyValues> up_to_;  // the main pass's last key; nullopt: the table's end
  bool reached_end_ = false;
  std::atomic<std::int64_t> read_retries_{0};
  std::atomic<std::int64_t> read_nanoseconds_{0};
  std::atomic<std::int64_t> write_retries_{0};
};

}  // namespace

TableOutcome rotate_table(const TableShape& shape, const crypto::Keyring& keyring, TableReader& reader,
                          TableWriter& writer, const KeyRange& range, TableStages stages,
                          const EngineSettings& settings, StopControl& stop, const ProgressCallback& on_progress) {
  return TableRotation(shape, keyring, reader, writer, settings, stop, on_progress).run(range, stages);
}

}  // namespace rekey
