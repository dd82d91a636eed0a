#include "migrate/census_engine.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "crypto/token_signs.h"
#include "migrate/batch_pipeline.h"

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

namespace {

// One relation's census, in the stages of a pipeline: a serial scan, a
// parallel classification, a serial tally. The read stage owns requested_ and
// reached_end_, the tally stage owns outcome_ and kept_; TBB runs the serial
// stages one batch at a time each, and hands each batch from stage to stage.
class TableCensus {
 public:
  using Scanned = std::pair<std::vector<Row>, CensusOutcome>;  // rows, then what they hold
  using Batch = std::unique_ptr<Scanned>;
  using Progress = std::function<void(std::int64_t rows_seen, double elapsed_seconds)>;

  TableCensus(const TableShape& shape, const crypto::Keyring& keyring, RowScanner& scanner,
              const CensusSettings& settings, StopControl& stop, const Progress& on_progress)
      : shape_(shape),
        keyring_(keyring),
        scanner_(scanner),
        settings_(settings),
        stop_(stop),
        on_progress_(on_progress),
        outcome_(empty_outcome(shape, keyring)),
        kept_(shape.columns.size(), 0) {}

  CensusOutcome run() {
    // One batch being read, one tallied, one per thread; the scan mostly
    // waits on the database: one thread more than the classification's.
    const std::size_t threads = std::max<std::size_t>(1, settings_.threads);
    run_batch_pipeline<Scanned>(
        threads + 1, threads + 2, [&] { return read(); }, [&](Scanned& b) { classify(b); },
        [&](Scanned& b) { tally(b); });
    outcome_.completed = reached_end_ && stop_.reason() == StopReason::kNone;
    return std::move(outcome_);
  }

 private:
  // Serial: the next batch of the scan, up to what max_rows leaves.
  Batch read() {
    std::size_t limit = settings_.batch_size;
    if (settings_.max_rows > 0) {
      limit = static_cast<std::size_t>(
          std::min<std::int64_t>(static_cast<std::int64_t>(limit), settings_.max_rows - requested_));
    }
    if (reached_end_ || limit == 0 || stop_.should_stop()) {
      if (limit == 0) reached_end_ = true;
      return nullptr;
    }
    auto batch = std::make_unique<Scanned>();
    batch->first = scanner_.next(batch_share(limit, settings_.batch_bytes, settings_.threads));
    requested_ += static_cast<std::int64_t>(batch->first.size());  // a batch cut by bytes holds fewer
    if (batch->first.empty()) {
      reached_end_ = true;
      return nullptr;
    }
    return batch;
  }

  // Parallel: which key each value is under.
  void classify(Scanned& batch) const {
    batch.second = census_rows(shape_, keyring_, batch.first, settings_.examples);
    batch.first.clear();
  }

  // Serial, in scan order: the sums, the first examples, the rows to sweep.
  void tally(Scanned& batch) {
    CensusOutcome& part = batch.second;
    for (std::size_t c = 0; c < outcome_.counts.size(); ++c) outcome_.counts[c] += part.counts[c];
    for (const Failure& f : part.examples) {
      if (kept_[f.column] < settings_.examples) {
        ++kept_[f.column];
        outcome_.examples.push_back(f);
      }
    }
    for (KeyValues& key : part.old_rows) {
      if (outcome_.old_rows.size() < settings_.collect_old_rows) {
        outcome_.old_rows.push_back(std::move(key));
      } else {
        outcome_.old_rows_capped = true;
      }
    }
    outcome_.rows_seen += part.rows_seen;
    if (on_progress_) {
      on_progress_(outcome_.rows_seen,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    }
  }

  const TableShape& shape_;
  const crypto::Keyring& keyring_;
  RowScanner& scanner_;
  const CensusSettings& settings_;
  StopControl& stop_;
  const Progress& on_progress_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  CensusOutcome outcome_;
  std::vector<std::size_t> kept_;  // examples kept per column
  std::int64_t requested_ = 0;     // rows the scanner returned so far
  bool reached_end_ = false;
};

}  // namespace

CensusOutcome census_table(const TableShape& shape, const crypto::Keyring& keyring, RowScanner& scanner,
                           const CensusSettings& settings, StopControl& stop,
                           const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress) {
  return TableCensus(shape, keyring, scanner, settings, stop, on_progress).run();
}

}  // namespace rekey
