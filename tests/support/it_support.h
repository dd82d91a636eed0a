// Helpers for tests that run the rekey binary (and Python) as child processes,
// most of them against a real PostgreSQL. Integration tests live in
// tests/integration/ (the rekey_integration_tests binary, whose suites are
// named integration.<file>); unit tests in tests/unit/ use only the process
// and file helpers.
//
// Typical use:
//
//   TEST_CASE("...") {
//     REKEY_IT_REQUIRE_DB();                    // skips (with a message) when REKEY_TEST_DB is unset
//     rekey::it::TestDatabase db("mytest");     // CREATE DATABASE; dropped at scope end
//     db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
//     const auto r = rekey::it::run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v"},
//                                         rekey::it::key_env());
//     CHECK(r.exit_code == 0);
//   }
//
// Nothing here is thread-safe; use from the test's thread.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/connection>
#include <set>
#include <string>
#include <vector>

namespace rekey::it {

// ---------------------------------------------------------------- processes

// Environment changes for a child: a value sets the variable, nullopt unsets
// it. Everything else is inherited from the test process, except that
// NEW_ENCRYPTION_KEY, OLD_ENCRYPTION_KEY and DATABASE_URL are always unset
// unless given here (so the test process's own environment cannot leak in).
using Env = std::map<std::string, std::optional<std::string>>;

struct ProcessResult {
  int exit_code = -1;      // -1 when killed by a signal
  int term_signal = 0;     // the signal that ended it, or 0
  bool timed_out = false;  // wait() hit its timeout and killed it (SIGKILL)
  std::string out;         // everything written to stdout
  std::string err;         // everything written to stderr
  double seconds = 0;      // from start to exit
  long peak_rss_kib = 0;   // the child's peak resident set (getrusage's ru_maxrss), in KiB
  // "exit 3" / "signal 9" and the output, for doctest INFO/CHECK messages.
  std::string describe() const;
};

// A running child with stdin from /dev/null and stdout/stderr captured in
// temporary files. The destructor kills (SIGKILL) and reaps it if still running.
class Process {
 public:
  // argv[0] is the program path (no PATH search). Throws std::runtime_error.
  Process(const std::vector<std::string>& argv, const Env& env);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // True while it has not exited (reaps it when it has; wait() still returns the result).
  bool running();
  // Sends `sig` (no-op once it has exited).
  void signal(int sig);
  // Waits for the exit, up to `timeout` (then SIGKILLs it and sets timed_out).
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Output so far (the files are flushed by the child as it writes).
  std::string stdout_so_far() const;
  std::string stderr_so_far() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  struct rusage usage_ {};
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point ended_;
  std::string out_path_;
  std::string err_path_;
};

// Runs to completion (or timeout).
ProcessResult run(const std::vector<std::string>& argv, const Env& env = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(120));

// The built rekey binary (REKEY_BINARY) with `args`.
ProcessResult run_rekey(const std::vector<std::string>& args, const Env& env,
                        std::chrono::milliseconds timeout = std::chrono::seconds(120));
std::unique_ptr<Process> start_rekey(const std::vector<std::string>& args, const Env& env);

// /usr/bin/python3 (or $REKEY_PYTHON) with `script` (relative to the source
// tree, e.g. "tests/pg/fixture.py") and `args`.
ProcessResult run_python(const std::string& script, const std::vector<std::string>& args, const Env& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(120));

std::string source_path(const std::string& relative);  // REKEY_SOURCE_DIR + "/" + relative

// PATH with the secret stores' stand-ins first (tests/stand_ins: aws, az,
// gcloud, vault, op) and REKEY_FAKE_STORE, the JSON file they serve from.
Env stand_in_env(const std::string& store_file);

// ---------------------------------------------------------------- keys

// Test passphrases (>= 32 characters) and their environment.
inline constexpr const char* kOldPassphrase = "old-passphrase: correct horse battery staple 0001";
inline constexpr const char* kNewPassphrase = "new-passphrase: correct horse battery staple 0002";
inline constexpr const char* kOtherPassphrase = "another-passphrase: tr0ub4dor&3 and more than 32";

// NEW_ENCRYPTION_KEY=new, OLD_ENCRYPTION_KEY=old, plus `extra`.
Env key_env(const std::string& new_passphrase = kNewPassphrase, const std::string& old_passphrase = kOldPassphrase,
            const Env& extra = {});

// The Fernet key the service derives from `passphrase` (PBKDF2-HMAC-SHA256,
// 100000 iterations, salt faithful_finances_salt_v1): url-safe base64 (the
// form Fernet() takes), standard base64 and hex of the raw 32 bytes.
struct DerivedKey {
  std::string urlsafe_b64;
  std::string std_b64;
  std::string hex;
};
DerivedKey derive_service_key(const std::string& passphrase);

// Every form in which `passphrase` could leak: itself, its derived key in
// base64 (both alphabets) and hex, and the key's two halves (signing and
// encryption keys) in the same encodings. For "never appears" checks.
std::vector<std::string> secret_forms(const std::string& passphrase);

// ---------------------------------------------------------------- databases

// REKEY_TEST_DB (a libpq conninfo of a server where CREATE DATABASE is allowed), or nullopt.
std::optional<std::string> admin_conninfo();

// `conninfo` with its database replaced by `dbname` (keyword/value or URI form).
std::string with_dbname(const std::string& conninfo, const std::string& dbname);

// Skips the current test case (returning from it, with a message) when REKEY_TEST_DB is unset.
#define REKEY_IT_REQUIRE_DB()                                                           \
  do {                                                                                  \
    if (!::rekey::it::admin_conninfo()) {                                               \
      MESSAGE("REKEY_TEST_DB is not set: skipped (scripts/test.sh provides a server)"); \
      return;                                                                           \
    }                                                                                   \
  } while (false)

// A streaming hot standby of the REKEY_TEST_DB server, made by
// scripts/lib/pg.sh (pg_start_standby) on first use and shared by the test
// process (removed at exit); or the one scripts/test.sh started, when
// REKEY_TEST_STANDBY_DB and PG_STANDBY_TMP are set. Throws std::runtime_error
// (with the script's output) when it cannot be made.
class Standby {
 public:
  static Standby& shared();
  ~Standby();
  std::string conninfo(const std::string& dbname) const { return with_dbname(conninfo_, dbname); }
  void stop();   // fast shutdown; the primary sees it go
  void start();  // the same standby again; returns once it accepts connections
  // Waits until it has replayed all the primary (`primary_conninfo`) has written so far.
  void catch_up(const std::string& primary_conninfo);

 private:
  Standby();
  void ctl(const std::string& action);
  std::string conninfo_;
  std::string dir_;  // PG_STANDBY_TMP
  std::string port_;
  bool owned_ = false;  // made here, removed at exit
};

// Query results as text; NULL is nullopt.
using Cell = std::optional<std::string>;
using Rows = std::vector<std::vector<Cell>>;

// A database of its own, created on construction (named rekey_it_<label>_<pid>_<n>,
// with `create_options` such as "ENCODING 'SQL_ASCII' TEMPLATE template0")
// and dropped WITH (FORCE) on destruction. Queries run on one lazily opened
// connection in autocommit mode.
class TestDatabase {
 public:
  explicit TestDatabase(const std::string& label, const std::string& create_options = "");
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& conninfo() const { return conninfo_; }

  // Runs `sql` (one or more statements, no parameters).
  void exec(const std::string& sql);
  Rows query(const std::string& sql);
  // First column of the first row; nullopt if no row or NULL.
  Cell value(const std::string& sql);
  // Convenience: value() as an integer (0 when NULL / no row).
  long long count(const std::string& sql);
  bool schema_exists(const std::string& schema);
  // md5 over every row of `table` (a quoted, qualified name) ordered by `order_by`.
  std::string checksum(const std::string& table, const std::string& order_by);
  // md5 over the xmin (row version) of every row: changes if any row was rewritten, even to the same value.
  std::string row_versions(const std::string& table, const std::string& order_by);
  // Every row of every table of `schema`, as text, one line per row (empty if no such schema).
  std::string dump_schema(const std::string& schema);
  // Closes the connection (e.g. before dropping or to release locks).
  void disconnect();

 private:
  pqxx::connection& conn();
  std::string name_;
  std::string admin_;
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

// A second connection to a database, holding one open transaction: for row
// locks and concurrent writes while rekey runs. Rolled back on destruction
// unless commit() was called.
class Session {
 public:
  explicit Session(const std::string& conninfo);
  ~Session();
  void exec(const std::string& sql);  // inside the transaction (BEGIN is implicit)
  void commit();
  void rollback();

 private:
  std::unique_ptr<pqxx::connection> conn_;
  bool open_ = false;
};

// Waits (polling every `poll`) until `pred` is true or `timeout` passes; returns pred's last value.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(5));

// ---------------------------------------------------------------- test data (tests/pg/fixture.py)

// Seeds `spec` (see tests/pg/fixture.py for its format) into the database of
// `conninfo` through Python's cryptography, keys taken from `env`; writes the
// manifest of every value written to `manifest_path`. Throws std::runtime_error
// (with Python's stderr) on failure.
void seed_fixture(const std::string& conninfo, const nlohmann::json& spec, const std::string& manifest_path,
                  const Env& env = key_env());

// `count` stored values written by Python's cryptography under the key in
// environment variable `env_var` (from `env`): the i-th a token of `prefix` +
// str(i) at timestamp 1700000000, in `format` ("plain" or "wrapped"). Throws
// std::runtime_error (with Python's stderr) on failure.
std::vector<std::string> python_tokens(const std::string& env_var, int count, const std::string& format = "plain",
                                       const std::string& prefix = "pt-", const Env& env = key_env());

// Checks every seeded row against the manifest (options: see fixture.py) and
// returns {"ok", "error_count", "errors", "rows", "counts"}. Throws on a crash.
nlohmann::json check_fixture(const std::string& conninfo, const std::string& manifest_path,
                             const nlohmann::json& options, const Env& env = key_env());

// ---------------------------------------------------------------- files

// A temporary directory, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
// `text` in the file `name` of `dir`, with permission bits `mode`; its path.
std::string key_file(const TempDir& dir, const std::string& name, const std::string& text, mode_t mode);
// The names of the entries in `dir`.
std::set<std::string> names_in(const std::string& dir);
// Permission bits of `path` itself (not of what a link points to), or -1 if it is not a regular file.
int regular_file_mode(const std::string& path);
// A symbolic link at `link` to `target`; fails the test case if it cannot be made.
void plant_link(const std::string& target, const std::string& link);

// Data seeded by tests/pg/fixture.py from `spec` into `db`, with its manifest
// in a temporary directory of its own. check() has Python decrypt every
// seeded row (options: see fixture.py; {"mode": "final"} by default).
struct SeededFixture {
  TempDir dir;
  std::string conninfo;
  std::string manifest;
  SeededFixture(const TestDatabase& db, const nlohmann::json& spec, const Env& env = key_env());
  nlohmann::json check(const nlohmann::json& options = nlohmann::json{{"mode", "final"}},
                       const Env& env = key_env()) const;
};

// True if `haystack` contains `needle`.
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The JSON report rekey wrote to `path` (fails the test case if it is empty).
nlohmann::json read_report(const std::string& path);

// Every column of `report` has the counts the Python checker derived from what
// was seeded (`expected`: {table: {column: counts}}); changed_concurrently is 0.
void check_report_counts(const nlohmann::json& report, const nlohmann::json& expected);

// rows_seen of the latest run over all its tables (state schema "rekey"); -1
// before the state schema or a run exists.
long long latest_rows_seen(TestDatabase& db);

// The range units of the latest run over `table` whose rows_seen differs from
// the rows of `table` in (lower_key, last_key]: a checkpoint moved without its
// batch, or a batch counted without its checkpoint. `key` is the table's
// one-column bigint key. 0 when every checkpoint is exact.
long long chunks_off_checkpoint(TestDatabase& db, const std::string& table, const std::string& key);

// Waits (at most 20 s) until no session of rekey's is left in `db`: after a
// kill -9 the server notices the dead client soon, and until then its
// session still holds rekey's advisory lock on the table.
void wait_for_rekey_sessions_to_end(TestDatabase& db);

// Starts rekey with `args` (key_env()), SIGKILLs it `delay` after the latest
// run has seen at least `threshold` rows, and waits for its sessions to end.
// Returns rows_seen then. Fails the test case if rekey finished first.
long long kill_after(TestDatabase& db, const std::vector<std::string>& args, long long threshold,
                     std::chrono::milliseconds delay = std::chrono::milliseconds(0));

// Fails the test case unless a check_fixture() result says ok, showing its errors.
#define REQUIRE_DATA_OK(result)                \
  do {                                         \
    const nlohmann::json& r_ = (result);       \
    INFO("data check errors: " << r_.dump(1)); \
    REQUIRE(r_.at("ok").get<bool>());          \
  } while (false)

// ---------------------------------------------------------------- implementation of templates

void sleep_for(std::chrono::milliseconds d);

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout, std::chrono::milliseconds poll) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return pred();
    sleep_for(poll);
  }
}

}  // namespace rekey::it
