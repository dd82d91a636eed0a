#include "migrate/rotation_engine.h"

#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <thread>

#include "db/connection.h"
#include "migrate/log.h"

namespace rekey {
namespace {

struct Batch {
  std::vector<Row> rows;
  BatchWrite write;
  double crypto_seconds = 0;
};

std::string_view as_view(const std::string& s) { return std::string_view(s.data(), s.size()); }

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
          out.failures.push_back(Failure{row.key, c, crypto::to_string(r.reason)});
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
  TableOutcome outcome;
  outcome.counts.resize(shape.columns.size());
  const auto started = std::chrono::steady_clock::now();
  const std::string where = "table " + shape.display_name();
  std::optional<KeyValues> cursor = start_after;
  bool reached_end = false;
  std::int64_t failures = settings.failures_before;

  const auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  const auto commit = [&](BatchWrite& write) {
    if (stop.reason() == StopReason::kLockLost) return;
    if (settings.still_locked) {
      bool locked = true;
      with_retries(
          settings.retry, where + ": checking the table lock", [&] { locked = settings.still_locked(); },
          &outcome.retries);
      if (!locked) {
        log::error("{}: another runner took this table's lock after a reconnect; stopping without writing", where);
        stop.request(StopReason::kLockLost);
        return;
      }
    }
    std::vector<std::size_t> lost;
    const auto write_started = std::chrono::steady_clock::now();
    with_retries(
        settings.retry, where + ": writing a batch",
        [&] {
          try {
            lost = writer.write(write);
          } catch (const std::exception& e) {
            // A row the application holds locked: write around it from now on;
            // the rows left out come back as not applied and are read again later.
            if (db::is_lock_timeout(e)) write.skip_locked = true;
            throw;
          }
        },
        &outcome.retries);
    outcome.write_seconds += seconds_since(write_started);
    if (settings.throttle != nullptr) {
      settings.throttle->record_write(static_cast<std::size_t>(write.rows_seen),
                                      std::chrono::steady_clock::now() - write_started);
    }
    for (std::size_t c = 0; c < outcome.counts.size(); ++c) outcome.counts[c] += write.counts[c];
    // A lost update is counted as changed concurrently once, when first read;
    // when a re-read loses again it is simply not rotated yet.
    const bool first_read = !write.reread;
    for (std::size_t i : lost) {
      for (std::size_t c = 0; c < shape.columns.size(); ++c) {
        if (!write.updates[i].cells[c]) continue;
        --outcome.counts[c].rotated;
        if (first_read) ++outcome.counts[c].changed_concurrently;
      }
    }
    failures += static_cast<std::int64_t>(write.failures.size());
    for (const auto& f : write.failures) ++outcome.failure_reasons[f.reason];
    outcome.rows_seen += write.rows_seen;
    ++outcome.batches;
    if (settings.max_failures > 0 && failures >= settings.max_failures) stop.request(StopReason::kMaxFailures);
    if (on_progress) on_progress(outcome, seconds_since(started));
  };

  const std::size_t threads = std::max<std::size_t>(1, settings.threads);
  // The reader and writer stages mostly wait on the database: two threads more.
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, threads + 2);
  tbb::task_arena arena(static_cast<int>(threads + 2));
  try {
    arena.execute([&] {
      tbb::parallel_pipeline(threads + 2, tbb::make_filter<void, std::shared_ptr<Batch>>(
                                              tbb::filter_mode::serial_in_order,
                                              [&](tbb::flow_control& fc) -> std::shared_ptr<Batch> {
                                                if (reached_end || stop.should_stop()) {
                                                  fc.stop();
                                                  return nullptr;
                                                }
                                                std::size_t limit = settings.batch_size;
                                                if (settings.throttle != nullptr) {
                                                  settings.throttle->wait_for_turn(stop);
                                                  if (stop.should_stop()) {
                                                    fc.stop();
                                                    return nullptr;
                                                  }
                                                  limit = settings.throttle->batch_size();
                                                }
                                                auto batch = std::make_shared<Batch>();
                                                const auto read_started = std::chrono::steady_clock::now();
                                                with_retries(
                                                    settings.retry, where + ": reading a batch",
                                                    [&] { batch->rows = reader.read_after(cursor, limit); },
                                                    &outcome.retries);
                                                if (settings.throttle != nullptr)
                                                  settings.throttle->count_read(batch->rows.size());
                                                outcome.read_seconds += seconds_since(read_started);
                                                if (batch->rows.empty()) {
                                                  reached_end = true;
                                                  fc.stop();
                                                  return nullptr;
                                                }
                                                cursor = batch->rows.back().key;
                                                if (batch->rows.size() < limit) reached_end = true;
                                                return batch;
                                              }) &
                                              tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(
                                                  tbb::filter_mode::parallel,
                                                  [&](std::shared_ptr<Batch> batch) {
                                                    const auto crypto_started = std::chrono::steady_clock::now();
                                                    batch->write = rotate_rows(shape, keyring, batch->rows);
                                                    batch->crypto_seconds = seconds_since(crypto_started);
                                                    batch->write.checkpoint = batch->rows.back().key;
                                                    batch->rows.clear();
                                                    return batch;
                                                  }) &
                                              tbb::make_filter<std::shared_ptr<Batch>, void>(
                                                  tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Batch> batch) {
                                                    outcome.crypto_seconds += batch->crypto_seconds;
                                                    commit(batch->write);
                                                  }));
    });
  } catch (const RetriesExhausted& e) {
    // Every committed batch carries its checkpoint: stopping here is safe.
    log::error("{}", e.what());
    stop.request(StopReason::kRetriesExhausted);
    return outcome;
  }
  if (!reached_end || stop.reason() != StopReason::kNone) return outcome;

  // Rows whose compare-and-swap failed, read again until they settle.
  try {
    std::chrono::milliseconds pause{100};
    // Rows the application keeps locked or rewriting are read again for at
    // most --retry-for; what is left then stays pending for the next run.
    const auto give_up_at = std::chrono::steady_clock::now() + settings.retry.retry_for;
    for (int round = 0;; ++round) {
      std::vector<KeyValues> keys;
      with_retries(
          settings.retry, where + ": listing pending rows", [&] { keys = writer.pending(); }, &outcome.retries);
      outcome.pending_left = static_cast<std::int64_t>(keys.size());
      if (keys.empty() || stop.should_stop()) break;
      if (round >= settings.pending_rounds || std::chrono::steady_clock::now() >= give_up_at) break;
      if (round > 0) {
        // Rows still held or rewritten by the application: give it a moment.
        const auto until = std::chrono::steady_clock::now() + pause;
        while (!stop.should_stop() && std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
        if (stop.should_stop()) break;
      }
      log::info("{}: reading again {} row(s) the application changed or held locked during the run",
                shape.display_name(), keys.size());
      for (std::size_t from = 0; from < keys.size(); from += settings.batch_size) {
        const std::vector<KeyValues> chunk(
            keys.begin() + static_cast<std::ptrdiff_t>(from),
            keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), from + settings.batch_size)));
        std::vector<Row> rows;
        with_retries(
            settings.retry, where + ": reading pending rows", [&] { rows = reader.read_keys(chunk); },
            &outcome.retries);
        BatchWrite write = rotate_rows(shape, keyring, rows);
        // Counted when first read: only what a re-read rotates is new.
        write.rows_seen = 0;
        for (auto& counts : write.counts) counts = ColumnCounts{counts.rotated, 0, 0, 0, 0};
        write.resolved_pending = chunk;
        write.reread = true;
        write.skip_locked = true;
        commit(write);
      }
    }
  } catch (const RetriesExhausted& e) {
    log::error("{}", e.what());
    stop.request(StopReason::kRetriesExhausted);
    return outcome;
  }
  outcome.completed = outcome.pending_left == 0 && stop.reason() == StopReason::kNone;
  return outcome;
}

}  // namespace rekey
