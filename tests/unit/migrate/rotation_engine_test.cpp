// The rotation engine against an in-memory table: no database, real crypto.
#include "migrate/rotation_engine.h"

#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>

#include "crypto/fernet.h"
#include "crypto/keyring.h"
#include "migrate/port_error.h"

namespace rekey {
namespace {

std::unique_ptr<const crypto::Fernet> key_of(char fill) {
  const std::string raw(32, fill);
  return crypto::Fernet::create(crypto::ByteView(raw));
}

crypto::Keyring make_keyring() {
  std::vector<std::unique_ptr<const crypto::Fernet>> old;
  old.push_back(key_of('o'));
  return crypto::Keyring(key_of('n'), std::move(old));
}

// A one-column table keyed by a zero-padded number, with hooks to simulate an
// application writing concurrently and a connection failing. The engine reads
// and writes it from two pipeline stages at once: `mutex` guards the table
// for the calls of the ports (the test itself reads it after the run).
class FakeTable final : public TableReader, public TableWriter {
 public:
  std::mutex mutex;
  std::map<std::string, std::optional<std::string>> rows;
  std::optional<KeyValues> checkpoint;
  std::vector<Failure> failures;
  std::vector<KeyValues> pending_rows;
  std::vector<KeyValues> not_found;              // pending rows gone when read again
  std::function<void(FakeTable&)> before_write;  // runs inside write(), before the compare-and-swap
  int fail_next_writes = 0;                      // throw a lost connection this many times
  int writes = 0;

  std::size_t largest_read_bytes = 0;  // the most value bytes one read returned

  std::vector<Row> read_range(const KeyRange& range, const ReadLimit& limit) override {
    const std::lock_guard<std::mutex> lock(mutex);
    std::vector<Row> out;
    std::size_t bytes = 0;
    const auto end = range.up_to ? rows.upper_bound(range.up_to->front()) : rows.end();
    for (auto it = range.after ? rows.upper_bound(range.after->front()) : rows.begin();
         it != end && out.size() < limit.rows && bytes < limit.bytes; ++it) {
      bytes += it->second ? it->second->size() : 0;
      out.push_back(Row{{it->first}, {it->second}});
    }
    largest_read_bytes = std::max(largest_read_bytes, bytes);
    return out;
  }
  KeyedRows read_keys(const std::vector<KeyValues>& keys, std::size_t max_bytes) override {
    const std::lock_guard<std::mutex> lock(mutex);
    KeyedRows out;
    std::size_t bytes = 0;
    for (; out.keys_read < keys.size() && bytes < max_bytes; ++out.keys_read) {
      if (auto it = rows.find(keys[out.keys_read].front()); it != rows.end()) {
        bytes += it->second ? it->second->size() : 0;
        out.rows.push_back(Row{{it->first}, {it->second}});
      }
    }
    return out;
  }
  std::vector<std::size_t> write(const BatchWrite& batch) override {
    const std::lock_guard<std::mutex> lock(mutex);
    if (fail_next_writes > 0) {
      --fail_next_writes;
      throw PortError(PortFailure::kLostConnection, "simulated connection loss");
    }
    ++writes;
    if (before_write) before_write(*this);
    std::vector<std::size_t> lost;
    for (const auto& k : batch.resolved_pending) {
      pending_rows.erase(std::remove(pending_rows.begin(), pending_rows.end(), k), pending_rows.end());
    }
    for (const auto& k : batch.vanished_pending) {
      pending_rows.erase(std::remove(pending_rows.begin(), pending_rows.end(), k), pending_rows.end());
      not_found.push_back(k);
    }
    for (std::size_t i = 0; i < batch.updates.size(); ++i) {
      const auto& u = batch.updates[i];
      auto& value = rows.at(u.key.front());
      if (value != u.cells[0]->old_value) {
        lost.push_back(i);
        pending_rows.push_back(u.key);
        continue;
      }
      value = u.cells[0]->new_value;
    }
    failures.insert(failures.end(), batch.failures.begin(), batch.failures.end());
    if (batch.checkpoint) checkpoint = batch.checkpoint;
    return lost;
  }
  std::vector<KeyValues> pending() override {
    const std::lock_guard<std::mutex> lock(mutex);
    return pending_rows;
  }

  // A scan of the rows as they are now, for the final sweep.
  class Scanner final : public RowScanner {
   public:
    explicit Scanner(const FakeTable& t) : rows_(t.rows.begin(), t.rows.end()) {}
    std::vector<Row> next(const ReadLimit& limit) override {
      std::vector<Row> out;
      for (; at_ < rows_.size() && out.size() < limit.rows; ++at_)
        out.push_back(Row{{rows_[at_].first}, {rows_[at_].second}});
      return out;
    }

   private:
    std::vector<std::pair<std::string, std::optional<std::string>>> rows_;
    std::size_t at_ = 0;
  };
  std::function<std::unique_ptr<RowScanner>()> scanner() {
    return [this] { return std::make_unique<Scanner>(*this); };
  }
};

TableShape shape() {
  TableShape s;
  s.schema = "public";
  s.table = "users";
  s.key_columns = {"id"};
  s.key_types = {"text"};
  s.columns = {"phone_enc"};
  s.kinds = {ColumnKind::kText};
  return s;
}

std::string key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06d", i);
  return buf;
}

// Every value decrypts under the new key to what was stored under the old one.
void check_all_new(const FakeTable& t, const std::map<std::string, std::string>& plaintext) {
  const auto new_key = key_of('n');
  for (const auto& [k, v] : t.rows) {
    if (!v || plaintext.count(k) == 0) continue;
    crypto::SecretBytes out;
    REQUIRE(new_key->decrypt(*v, out) == crypto::TokenError::kNone);
    CHECK(std::string(out.begin(), out.end()) == plaintext.at(k));
  }
}

struct Fixture {
  crypto::Keyring keyring = make_keyring();
  FakeTable table;
  std::map<std::string, std::string> plaintext;
  StopControl stop;
  EngineSettings settings;

  explicit Fixture(int n) {
    const auto old_key = key_of('o');
    for (int i = 0; i < n; ++i) {
      if (i % 10 == 3) {
        table.rows[key(i)] = std::nullopt;
        continue;
      }
      plaintext[key(i)] = "+1-555-" + std::to_string(i);
      table.rows[key(i)] = old_key->encrypt(std::string_view(plaintext[key(i)]), 1700000000 + i);
    }
    settings.batch_size = 7;
    settings.threads = 2;
    settings.retry.first_delay = std::chrono::milliseconds(1);
  }
  TableOutcome run(const std::optional<KeyValues>& after = std::nullopt,
                   const ProgressCallback& on_progress = nullptr) {
    return rotate_table(shape(), keyring, table, table, KeyRange{after, std::nullopt}, TableStages::kAll, settings,
                        stop, on_progress);
  }
};

}  // namespace

TEST_SUITE("migrate.rotation_engine") {
  TEST_CASE("rotate_table re-encrypts every value, counts NULLs and checkpoints the last key") {
    Fixture f(100);
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.rows_seen == 100);
    CHECK(out.counts[0].rotated == 90);
    CHECK(out.counts[0].null == 10);
    CHECK(f.table.checkpoint == KeyValues{key(99)});
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("a table cut into random chunks, each's main pass then the finish: every row once, all rotated") {
    std::mt19937 random(1130);
    for (int round = 0; round < 20; ++round) {
      const int rows = 1 + static_cast<int>(random() % 300);
      Fixture f(rows);
      std::set<int> cuts;
      const int chunks = static_cast<int>(random() % 8);
      for (int i = 0; i < chunks; ++i) cuts.insert(static_cast<int>(random() % (rows + 5)));
      std::optional<KeyValues> lower;
      std::int64_t seen = 0;
      for (auto it = cuts.begin();; ++it) {
        const std::optional<KeyValues> upper =
            it == cuts.end() ? std::nullopt : std::optional<KeyValues>(KeyValues{key(*it)});
        const TableOutcome part = rotate_table(shape(), f.keyring, f.table, f.table, KeyRange{lower, upper},
                                               TableStages::kMainPass, f.settings, f.stop, nullptr);
        CHECK(part.completed);
        seen += part.rows_seen;
        lower = upper;
        if (it == cuts.end()) break;
      }
      CHECK(seen == rows);
      const TableOutcome finish = rotate_table(shape(), f.keyring, f.table, f.table, KeyRange{}, TableStages::kFinish,
                                               f.settings, f.stop, nullptr);
      CHECK(finish.completed);
      CHECK(finish.swept == 0);
      check_all_new(f.table, f.plaintext);
    }
  }

  TEST_CASE("progress sees the outcome so far after each batch, while the reader reads on") {
    Fixture f(300);
    f.table.fail_next_writes = 1;
    std::vector<TableOutcome> seen;
    const TableOutcome out = f.run(std::nullopt, [&](const TableOutcome& so_far, double) { seen.push_back(so_far); });
    CHECK(out.completed);
    REQUIRE(seen.size() == static_cast<std::size_t>(out.batches));
    for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i].rows_seen > seen[i - 1].rows_seen);
    CHECK(seen.back().rows_seen == 300);
    CHECK(seen.back().retries == 1);
    CHECK(seen.back().read_seconds > 0);
  }

  TEST_CASE("batches cut at their share of --batch-bytes: every row rotated, the short batches are no end") {
    Fixture f(100);
    f.settings.batch_size = 50;
    f.settings.batch_bytes = 4 * 500;  // two threads: 500 bytes a read, about five 100-byte tokens
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.rows_seen == 100);
    CHECK(out.counts[0].rotated == 90);
    CHECK(out.batches >= 15);
    CHECK(f.table.largest_read_bytes < 500 + 200);
    CHECK(f.table.checkpoint == KeyValues{key(99)});
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("rotate_table never rewrites a value already under the new key") {
    Fixture f(30);
    f.run();
    const auto before = f.table.rows;
    Fixture again(0);
    again.table.rows = before;
    const TableOutcome out = again.run();
    CHECK(out.counts[0].rotated == 0);
    CHECK(out.counts[0].already_new == 27);
    CHECK(again.table.rows == before);
  }

  TEST_CASE("rotate_table leaves undecryptable values untouched and records each with its reason") {
    Fixture f(20);
    f.table.rows[key(5)] = "not a token";
    f.table.rows[key(6)] = key_of('x')->encrypt(std::string_view("other key"), 1);
    f.plaintext.erase(key(5));
    f.plaintext.erase(key(6));
    const TableOutcome out = f.run();
    CHECK(out.counts[0].undecryptable == 2);
    CHECK(f.table.rows[key(5)] == std::optional<std::string>("not a token"));
    REQUIRE(f.table.failures.size() == 2);
    CHECK(f.table.failures[0].reason == "not_a_token");
    CHECK(f.table.failures[1].reason == "hmac_mismatch_all_keys");
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("rotate_table does not overwrite a value the application changed, and reads it again") {
    Fixture f(40);
    const auto new_key = key_of('n');
    bool changed = false;
    f.table.before_write = [&](FakeTable& t) {
      if (changed) return;
      changed = true;
      // The application writes every row of this batch and the next with the new key.
      for (auto& [k, v] : t.rows) {
        if (k > key(14) || !v) continue;
        f.plaintext[k] = "app wrote " + k;
        v = new_key->encrypt(std::string_view(f.plaintext[k]), 42);
      }
    };
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.counts[0].changed_concurrently > 0);
    CHECK(f.table.pending_rows.empty());
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("rotate_table retries a batch after a lost connection") {
    Fixture f(30);
    f.table.fail_next_writes = 2;
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.retries == 2);
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("rotate_table stops after the batch in flight and resumes from the checkpoint") {
    Fixture f(100);
    f.settings.threads = 1;
    f.table.before_write = [&](FakeTable& t) {
      if (t.writes == 3) f.stop.request(StopReason::kSignal);
    };
    const TableOutcome first = f.run();
    CHECK_FALSE(first.completed);
    REQUIRE(f.table.checkpoint);
    const KeyValues resume_at = *f.table.checkpoint;
    CHECK(first.rows_seen < 100);
    f.table.before_write = nullptr;
    StopControl fresh;
    const TableOutcome second = rotate_table(shape(), f.keyring, f.table, f.table, KeyRange{resume_at, std::nullopt},
                                             TableStages::kAll, f.settings, fresh, nullptr);
    CHECK(second.completed);
    CHECK(first.rows_seen + second.rows_seen == 100);
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("the final sweep rotates an old-key value the application wrote behind the checkpoint") {
    Fixture f(60);
    f.settings.open_scan = f.table.scanner();
    const auto old_key = key_of('o');
    f.table.before_write = [&](FakeTable& t) {
      if (t.writes != 4) return;
      // Row 1 was rotated by the first batch; the application copies an old-key value over it.
      t.rows[key(1)] = t.rows[key(59)];
      f.plaintext[key(1)] = f.plaintext[key(59)];
    };
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.swept == 1);
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("old-key values that keep coming back stop the run unfinished (exit 75), never 'completed'") {
    Fixture f(30);
    f.settings.open_scan = f.table.scanner();
    const std::string stale = *f.table.rows[key(0)];
    // An instance still on the old key writes some row at every turn.
    f.table.before_write = [&](FakeTable& t) { t.rows[key(t.writes % 30)] = stale; };
    const TableOutcome out = f.run();
    CHECK_FALSE(out.completed);
    CHECK(out.old_values_keep_coming);
  }

  TEST_CASE("a pending row gone when read again is reported as not found, never marked settled") {
    Fixture f(30);
    const auto other_old = key_of('o')->encrypt(std::string_view("changed"), 9);
    f.table.before_write = [&](FakeTable& t) {
      if (t.writes == 1) t.rows[key(2)] = other_old;  // the compare-and-swap on row 2 fails
      if (t.writes == 2) t.rows.erase(key(2));        // and the row is deleted before it is read again
    };
    f.plaintext.erase(key(2));
    const TableOutcome out = f.run();
    CHECK(out.completed);
    CHECK(out.pending_not_found == 1);
    CHECK(f.table.not_found == std::vector<KeyValues>{{key(2)}});
    check_all_new(f.table, f.plaintext);
  }

  TEST_CASE("a value that fails when a pending row is read again is recorded and counted") {
    Fixture f(30);
    f.table.before_write = [&](FakeTable& t) {
      if (t.writes == 1) t.rows[key(2)] = "garbage the application wrote";
    };
    f.plaintext.erase(key(2));
    const TableOutcome out = f.run();
    CHECK(out.completed);
    REQUIRE(f.table.failures.size() == 1);
    CHECK(f.table.failures[0].key == KeyValues{key(2)});
    CHECK(out.counts[0].undecryptable == 1);
    CHECK(out.failure_reasons.size() == 1);
  }

  TEST_CASE("rotate_table stops once --max-failures values could not be decrypted") {
    Fixture f(50);
    for (int i = 0; i < 50; i += 2) f.table.rows[key(i)] = "garbage";
    f.settings.max_failures = 5;
    const TableOutcome out = f.run();
    CHECK_FALSE(out.completed);
    CHECK(f.stop.reason() == StopReason::kMaxFailures);
  }
}

}  // namespace rekey
