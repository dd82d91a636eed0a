#include "migrate/rotation_engine.h"

#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/log.h"
#include "crypto/token_signs.h"
#include "migrate/census_engine.h"
#include "migrate/port_error.h"

namespace rekey {
namespace {

struct Batch {
  std::vector<Row> rows;
  BatchWrite write;
  double crypto_seconds = 0;
};

std::string_view as_view(const std::string& s) { return std::string_view(s.data(), s.size()); }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The rows of `all` that are not among `found` (keys compared as read).
std::vector<KeyValues> missing_from(const std::vector<KeyValues>& all, const std::vector<Row>& found) {
  std::vector<KeyValues> out;
  for (const auto& key : all) {
    const bool read = std::any_of(found.begin(), found.end(), [&](const Row& r) { return r.key == key; });
    if (!read) out.push_back(key);
  }
  return out;
}

// One table's rotation. The stages run one after the other on the calling
// thread, except the main pass's pipeline: its reader stage owns cursor_ and
// read_retries_, its writer stage owns outcome_ (but for retries) and
// failures_; retries are atomics because both stages count them.
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

  TableOutcome run(const std::optional<KeyValues>& start_after) {
    try {
      if (main_pass(start_after) && settle_pending() && final_sweep()) {
        outcome_.completed = stop_.reason() == StopReason::kNone;
      }
    } catch (const RetriesExhausted& e) {
      // Every committed batch carries its checkpoint: stopping here is safe.
      log::error("{}", e.what());
      stop_.request(StopReason::kRetriesExhausted);
    }
    outcome_.retries = read_retries_ + write_retries_;
    return outcome_;
  }

 private:
  template <typename Work>
  void retry(const std::string& what, std::atomic<std::int64_t>& counter, Work&& work) {
    std::int64_t n = 0;
    with_retries(settings_.retry, where_ + ": " + what, std::forward<Work>(work), &n);
    counter += n;
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

  // Writes one batch with its state; counts what it did.
  void commit(BatchWrite& write) {
    if (stop_.reason() == StopReason::kLockLost || !lock_still_held()) return;
    std::vector<std::size_t> lost;
    const auto write_started = std::chrono::steady_clock::now();
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
    outcome_.write_seconds += seconds_since(write_started);
    if (settings_.throttle != nullptr) {
      settings_.throttle->record_write(static_cast<std::size_t>(write.rows_seen),
                                       std::chrono::steady_clock::now() - write_started);
    }
    tally(write, lost);
  }

  void tally(const BatchWrite& write, const std::vector<std::size_t>& lost) {
    for (std::size_t c = 0; c < outcome_.counts.size(); ++c) outcome_.counts[c] += write.counts[c];
    // A lost update is counted as changed concurrently once, when first read;
    // when a re-read loses again it is simply not rotated yet.
    for (std::size_t i : lost) {
      for (std::size_t c = 0; c < shape_.columns.size(); ++c) {
        if (!write.updates[i].cells[c]) continue;
        --outcome_.counts[c].rotated;
        if (!write.reread) ++outcome_.counts[c].changed_concurrently;
      }
    }
    failures_ += static_cast<std::int64_t>(write.failures.size());
    for (const auto& f : write.failures) ++outcome_.failure_reasons[f.reason];
    outcome_.pending_not_found += static_cast<std::int64_t>(write.vanished_pending.size());
    outcome_.rows_seen += write.rows_seen;
    ++outcome_.batches;
    if (settings_.max_failures > 0 && failures_ >= settings_.max_failures) stop_.request(StopReason::kMaxFailures);
    if (on_progress_) {
      outcome_.retries = read_retries_ + write_retries_;
      on_progress_(outcome_, seconds_since(started_));
    }
  }

  // Stage 1: every row in key order after `start_after`. True when it reached
  // the end of the table without being stopped.
  bool main_pass(const std::optional<KeyValues>& start_after) {
    cursor_ = start_after;
    const std::size_t threads = std::max<std::size_t>(1, settings_.threads);
    // The reader and writer stages mostly wait on the database: two threads more.
    tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, threads + 2);
    tbb::task_arena arena(static_cast<int>(threads + 2));
    arena.execute([&] {
      tbb::parallel_pipeline(
          threads + 2,
          tbb::make_filter<void, std::shared_ptr<Batch>>(tbb::filter_mode::serial_in_order,
                                                         [&](tbb::flow_control& fc) { return read_batch(fc); }) &
              tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(
                  tbb::filter_mode::parallel, [&](std::shared_ptr<Batch> b) { return reencrypt(std::move(b)); }) &
              tbb::make_filter<std::shared_ptr<Batch>, void>(tbb::filter_mode::serial_in_order,
                                                             [&](std::shared_ptr<Batch> batch) {
                                                               outcome_.crypto_seconds += batch->crypto_seconds;
                                                               commit(batch->write);
                                                             }));
    });
    return reached_end_ && stop_.reason() == StopReason::kNone;
  }

  std::shared_ptr<Batch> read_batch(tbb::flow_control& fc) {
    if (reached_end_ || stop_.should_stop()) {
      fc.stop();
      return nullptr;
    }
    std::size_t limit = settings_.batch_size;
    if (settings_.throttle != nullptr) {
      settings_.throttle->wait_for_turn(stop_);
      if (stop_.should_stop()) {
        fc.stop();
        return nullptr;
      }
      limit = settings_.throttle->batch_size();
    }
    auto batch = std::make_shared<Batch>();
    const auto read_started = std::chrono::steady_clock::now();
    const ReadLimit share = batch_share(limit, settings_.batch_bytes, settings_.threads);
    retry("reading a batch", read_retries_, [&] { batch->rows = reader_.read_after(cursor_, share); });
    if (settings_.throttle != nullptr) settings_.throttle->count_read(batch->rows.size());
    outcome_.read_seconds += seconds_since(read_started);
    if (batch->rows.empty()) {
      reached_end_ = true;
      fc.stop();
      return nullptr;
    }
    // A short batch may have been cut at its bytes: only an empty read is the end.
    cursor_ = batch->rows.back().key;
    return batch;
  }

  std::shared_ptr<Batch> reencrypt(std::shared_ptr<Batch> batch) const {
    const auto crypto_started = std::chrono::steady_clock::now();
    batch->write = rotate_rows(shape_, keyring_, batch->rows);
    batch->crypto_seconds = seconds_since(crypto_started);
    batch->write.checkpoint = batch->rows.back().key;
    batch->rows.clear();
    return batch;
  }

  // Reads `keys` again and rotates what is still under an old key. Rows not
  // found are marked so when `pending`; rows that lose again become pending.
  void rewrite_rows(const std::vector<KeyValues>& keys, bool pending) {
    const std::size_t max_bytes = batch_share(settings_.batch_size, settings_.batch_bytes, settings_.threads).bytes;
    for (std::size_t from = 0; from < keys.size() && !stop_.should_stop();) {
      std::vector<KeyValues> chunk(
          keys.begin() + static_cast<std::ptrdiff_t>(from),
          keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), from + settings_.batch_size)));
      // Paced like the main pass: the rate cap, the pause file and replica lag hold here too.
      if (settings_.throttle != nullptr) {
        settings_.throttle->wait_for_turn(stop_);
        if (stop_.should_stop()) break;
      }
      KeyedRows read;
      retry("reading rows again", read_retries_, [&] { read = reader_.read_keys(chunk, max_bytes); });
      if (settings_.throttle != nullptr) settings_.throttle->count_read(read.rows.size());
      chunk.resize(std::max<std::size_t>(1, read.keys_read));
      from += chunk.size();
      const std::vector<Row>& rows = read.rows;
      BatchWrite write = rotate_rows(shape_, keyring_, rows);
      // Counted when first read: only what a re-read rotates or fails is new.
      write.rows_seen = 0;
      for (auto& counts : write.counts) counts = ColumnCounts{counts.rotated, 0, 0, counts.undecryptable, 0, 0};
      if (pending) {
        write.vanished_pending = missing_from(chunk, rows);
        for (const Row& r : rows) write.resolved_pending.push_back(r.key);
      }
      write.reread = true;
      write.skip_locked = true;
      commit(write);
    }
  }

  // Stage 2: rows that lost a compare-and-swap (changed or held locked by the
  // application), read again for at most --retry-for. True when none is left.
  bool settle_pending() {
    std::chrono::milliseconds pause{100};
    const auto give_up_at = std::chrono::steady_clock::now() + settings_.retry.retry_for;
    for (int round = 0;; ++round) {
      std::vector<KeyValues> keys;
      retry("listing pending rows", write_retries_, [&] { keys = writer_.pending(); });
      outcome_.pending_left = static_cast<std::int64_t>(keys.size());
      if (keys.empty()) return true;
      if (stop_.should_stop() || round >= settings_.pending_rounds || std::chrono::steady_clock::now() >= give_up_at) {
        return false;
      }
      if (round > 0 && !pause_for(pause)) return false;
      pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
      log::info("{}: reading again {} row(s) the application changed or held locked during the run",
                shape_.display_name(), keys.size());
      rewrite_rows(keys, true);
    }
  }

  // Waits `d` unless asked to stop; false when stopped.
  bool pause_for(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stop_.should_stop() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return !stop_.should_stop();
  }

  // Stage 3: a census of the whole table; rows still under an old key (the
  // application inserted or copied an old-key value behind the checkpoint)
  // are rotated, and values that fail are recorded, until a sweep finds
  // nothing old. True when the last sweep was clean.
  bool final_sweep() {
    if (!settings_.open_scan) return true;
    CensusSettings census;
    census.batch_size = settings_.batch_size;
    census.batch_bytes = settings_.batch_bytes;
    census.threads = settings_.threads;
    census.examples = kRecordedFailures;
    census.collect_old_rows = kSweepRows;
    int capped_sweeps = 0;
    for (int round = 0; round < settings_.sweep_rounds; ++round) {
      CensusOutcome found;
      retry("sweeping for old-key values", read_retries_, [&] {
        auto scanner = settings_.open_scan();
        found = census_table(shape_, keyring_, *scanner, census, stop_, nullptr);
      });
      if (!found.completed) return false;
      record_failures(found);
      if (found.old_rows.empty()) return true;
      log::warn("{}: {} row(s) hold values under an old key written behind the checkpoint; rotating them",
                shape_.display_name(), found.old_rows.size());
      const std::int64_t rotated_before = rotated_total();
      rewrite_rows(found.old_rows, false);
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

  std::int64_t rotated_total() const {
    std::int64_t n = 0;
    for (const auto& c : outcome_.counts) n += c.rotated;
    return n;
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
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  TableOutcome outcome_;
  std::int64_t failures_;
  std::optional<KeyValues> cursor_;
  bool reached_end_ = false;
  std::atomic<std::int64_t> read_retries_{0};
  std::atomic<std::int64_t> write_retries_{0};
};

}  // namespace

BatchWrite rotate_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows) {
  BatchWrite out;
  out.counts.resize(shape.columns.size());
  out.rows_seen = static_cast<std::int64_t>(rows.size());
  for (const Row& row : rows) {
    RowUpdate update;
    bool changed = false;
    update.cells.resize(shape.columns.size());
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      const auto& value = row.values.at(c);
      ColumnCounts& counts = out.counts[c];
      if (!value) {
        ++counts.null;
        continue;
      }
      if (shape.policy(c) == ValuePolicy::kValuesWithToken && !crypto::holds_token(*value)) {
        ++counts.no_token;
        continue;
      }
      crypto::ValueResult r = keyring.rotate(as_view(*value));
      switch (r.outcome) {
        case crypto::ValueOutcome::kAlreadyNew:
          ++counts.already_new;
          break;
        case crypto::ValueOutcome::kRotated:
          ++counts.rotated;
          update.cells[c] = RowUpdate::Cell{*value, std::move(r.rotated)};
          changed = true;
          break;
        case crypto::ValueOutcome::kUnderOldKey:
        case crypto::ValueOutcome::kUndecryptable:
        case crypto::ValueOutcome::kNotToken:
          ++counts.undecryptable;
          out.failures.push_back(Failure{row.key, c, crypto::why_not_new(r)});
          break;
      }
    }
    if (changed) {
      update.key = row.key;
      out.updates.push_back(std::move(update));
    }
  }
  return out;
}

TableOutcome rotate_table(const TableShape& shape, const crypto::Keyring& keyring, TableReader& reader,
                          TableWriter& writer, const std::optional<KeyValues>& start_after,
                          const EngineSettings& settings, StopControl& stop, const ProgressCallback& on_progress) {
  return TableRotation(shape, keyring, reader, writer, settings, stop, on_progress).run(start_after);
}

}  // namespace rekey
