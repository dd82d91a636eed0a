#include "migrate/census_engine.h"

#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace rekey {

std::int64_t CensusCounts::not_new() const { return total - null - under_new; }

CensusCounts& CensusCounts::operator+=(const CensusCounts& o) {
  total += o.total;
  null += o.null;
  under_new += o.under_new;
  if (under_old.size() < o.under_old.size()) under_old.resize(o.under_old.size());
  for (std::size_t i = 0; i < o.under_old.size(); ++i) under_old[i] += o.under_old[i];
  undecryptable += o.undecryptable;
  not_token += o.not_token;
  return *this;
}

CensusOutcome census_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows,
                          std::size_t examples_per_column) {
  CensusOutcome out;
  out.counts.assign(shape.columns.size(), CensusCounts{});
  for (auto& c : out.counts) c.under_old.assign(keyring.old_key_count(), 0);
  std::vector<std::size_t> kept(shape.columns.size(), 0);
  out.rows_seen = static_cast<std::int64_t>(rows.size());
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      CensusCounts& counts = out.counts[c];
      ++counts.total;
      const auto& value = row.values.at(c);
      if (!value) {
        ++counts.null;
        continue;
      }
      const crypto::ValueResult r = keyring.inspect(std::string_view(value->data(), value->size()));
      switch (r.outcome) {
        case crypto::ValueOutcome::kAlreadyNew:
          ++counts.under_new;
          continue;
        case crypto::ValueOutcome::kUnderOldKey:
        case crypto::ValueOutcome::kRotated:
          ++counts.under_old.at(static_cast<std::size_t>(r.key_index - 1));
          continue;
        case crypto::ValueOutcome::kUndecryptable:
          ++counts.undecryptable;
          break;
        case crypto::ValueOutcome::kNotToken:
          ++counts.not_token;
          break;
      }
      if (kept[c] < examples_per_column) {
        ++kept[c];
        const char* reason = r.outcome == crypto::ValueOutcome::kNotToken ? "not_a_token" : crypto::to_string(r.reason);
        out.examples.push_back(Failure{row.key, c, reason});
      }
    }
  }
  return out;
}

CensusOutcome census_table(const TableShape& shape, const crypto::Keyring& keyring, TableReader& reader,
                           const CensusSettings& settings, StopControl& stop,
                           const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress) {
  CensusOutcome outcome;
  outcome.counts.assign(shape.columns.size(), CensusCounts{});
  for (auto& c : outcome.counts) c.under_old.assign(keyring.old_key_count(), 0);
  std::vector<std::size_t> kept(shape.columns.size(), 0);
  const auto started = std::chrono::steady_clock::now();
  const std::string where = "table " + shape.display_name() + ": reading a batch";
  std::optional<KeyValues> cursor;
  std::int64_t requested = 0;  // rows asked of the reader so far
  bool reached_end = false;

  using Batch = std::shared_ptr<std::pair<std::vector<Row>, CensusOutcome>>;
  const auto read = [&](tbb::flow_control& fc) -> Batch {
    std::size_t limit = settings.batch_size;
    if (settings.max_rows > 0) {
      limit = static_cast<std::size_t>(
          std::min<std::int64_t>(static_cast<std::int64_t>(limit), settings.max_rows - requested));
    }
    if (reached_end || limit == 0 || stop.should_stop()) {
      if (limit == 0) reached_end = true;
      fc.stop();
      return nullptr;
    }
    auto batch = std::make_shared<std::pair<std::vector<Row>, CensusOutcome>>();
    with_retries(
        settings.retry, where, [&] { batch->first = reader.read_after(cursor, limit); }, &outcome.retries);
    requested += static_cast<std::int64_t>(limit);
    if (batch->first.size() < limit) reached_end = true;
    if (batch->first.empty()) {
      fc.stop();
      return nullptr;
    }
    cursor = batch->first.back().key;
    return batch;
  };
  const auto classify = [&](Batch batch) {
    batch->second = census_rows(shape, keyring, batch->first, settings.examples);
    batch->first.clear();
    return batch;
  };
  const auto tally = [&](Batch batch) {
    const CensusOutcome& part = batch->second;
    for (std::size_t c = 0; c < outcome.counts.size(); ++c) outcome.counts[c] += part.counts[c];
    for (const Failure& f : part.examples) {
      if (kept[f.column] < settings.examples) {
        ++kept[f.column];
        outcome.examples.push_back(f);
      }
    }
    outcome.rows_seen += part.rows_seen;
    if (on_progress) {
      on_progress(outcome.rows_seen, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  };

  const std::size_t threads = std::max<std::size_t>(1, settings.threads);
  // The reader mostly waits on the database: one thread more.
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, threads + 1);
  tbb::task_arena arena(static_cast<int>(threads + 1));
  arena.execute([&] {
    tbb::parallel_pipeline(threads + 2, tbb::make_filter<void, Batch>(tbb::filter_mode::serial_in_order, read) &
                                            tbb::make_filter<Batch, Batch>(tbb::filter_mode::parallel, classify) &
                                            tbb::make_filter<Batch, void>(tbb::filter_mode::serial_in_order, tally));
  });
  outcome.completed = reached_end && stop.reason() == StopReason::kNone;
  return outcome;
}

}  // namespace rekey
