#include "migrate/census_engine.h"

#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "crypto/token_signs.h"

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

namespace {

// Counts one non-NULL value; true when it is under the new key.
bool count_value(CensusCounts& counts, const crypto::ValueResult& r) {
  switch (r.outcome) {
    case crypto::ValueOutcome::kAlreadyNew:
      ++counts.under_new;
      return true;
    case crypto::ValueOutcome::kUnderOldKey:
    case crypto::ValueOutcome::kRotated:
      ++counts.under_old.at(static_cast<std::size_t>(r.key_index - 1));
      return false;
    case crypto::ValueOutcome::kUndecryptable:
      ++counts.undecryptable;
      return false;
    case crypto::ValueOutcome::kNotToken:
      ++counts.not_token;
      return false;
  }
  return false;
}

CensusOutcome empty_outcome(const TableShape& shape, const crypto::Keyring& keyring) {
  CensusOutcome out;
  out.counts.assign(shape.columns.size(), CensusCounts{});
  for (auto& c : out.counts) c.under_old.assign(keyring.old_key_count(), 0);
  return out;
}

}  // namespace

CensusOutcome census_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows,
                          std::size_t examples_per_column) {
  CensusOutcome out = empty_outcome(shape, keyring);
  std::vector<std::size_t> kept(shape.columns.size(), 0);
  out.rows_seen = static_cast<std::int64_t>(rows.size());
  for (const Row& row : rows) {
    bool row_has_old = false;
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      CensusCounts& counts = out.counts[c];
      const auto& value = row.values.at(c);
      if (shape.policy(c) == ValuePolicy::kValuesWithToken && (!value || !crypto::holds_token(*value))) {
        continue;
      }
      ++counts.total;
      if (!value) {
        ++counts.null;
        continue;
      }
      const crypto::ValueResult r = keyring.inspect(std::string_view(value->data(), value->size()));
      if (count_value(counts, r)) continue;
      row_has_old = row_has_old || r.outcome == crypto::ValueOutcome::kUnderOldKey;
      if (kept[c] < examples_per_column) {
        ++kept[c];
        out.examples.push_back(Failure{row.key, c, crypto::why_not_new(r)});
      }
    }
    if (row_has_old) out.old_rows.push_back(row.key);
  }
  return out;
}

CensusOutcome census_table(const TableShape& shape, const crypto::Keyring& keyring, RowScanner& scanner,
                           const CensusSettings& settings, StopControl& stop,
                           const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress) {
  CensusOutcome outcome = empty_outcome(shape, keyring);
  std::vector<std::size_t> kept(shape.columns.size(), 0);
  const auto started = std::chrono::steady_clock::now();
  std::int64_t requested = 0;  // rows the scanner returned so far
  bool reached_end = false;

  using Batch = std::shared_ptr<std::pair<std::vector<Row>, CensusOutcome>>;
  // Serial: the next batch of the scan, up to what max_rows leaves.
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
    batch->first = scanner.next(batch_share(limit, settings.batch_bytes, settings.threads));
    requested += static_cast<std::int64_t>(batch->first.size());  // a batch cut by bytes holds fewer
    if (batch->first.empty()) {
      reached_end = true;
      fc.stop();
      return nullptr;
    }
    return batch;
  };
  // Parallel: which key each value is under.
  const auto classify = [&](Batch batch) {
    batch->second = census_rows(shape, keyring, batch->first, settings.examples);
    batch->first.clear();
    return batch;
  };
  // Serial, in scan order: the sums, the first examples, the rows to sweep.
  const auto tally = [&](Batch batch) {
    CensusOutcome& part = batch->second;
    for (std::size_t c = 0; c < outcome.counts.size(); ++c) outcome.counts[c] += part.counts[c];
    for (const Failure& f : part.examples) {
      if (kept[f.column] < settings.examples) {
        ++kept[f.column];
        outcome.examples.push_back(f);
      }
    }
    for (KeyValues& key : part.old_rows) {
      if (outcome.old_rows.size() < settings.collect_old_rows) {
        outcome.old_rows.push_back(std::move(key));
      } else {
        outcome.old_rows_capped = true;
      }
    }
    outcome.rows_seen += part.rows_seen;
    if (on_progress) {
      on_progress(outcome.rows_seen, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  };

  const std::size_t threads = std::max<std::size_t>(1, settings.threads);
  // The scan mostly waits on the database: one thread more.
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
