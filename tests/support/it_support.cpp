#include "tests/support/it_support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace rekey::it {
namespace {

std::string make_temp_file(const char* tag) {
  std::string pattern = std::string("/tmp/rekey-it-") + tag + ".XXXXXX";
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed: " + std::string(std::strerror(errno)));
  ::close(fd);
  return pattern;
}

std::string b64(const unsigned char* data, std::size_t size, bool urlsafe) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  if (urlsafe) {
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

std::string hex(const unsigned char* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

std::string sanitize(const std::string& label) {
  std::string out;
  for (char c : label) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += '_';
    }
  }
  return out.substr(0, 30);
}

Rows to_rows(const pqxx::result& r) {
  Rows rows;
  for (const auto& row : r) {
    std::vector<Cell> cells;
    for (const auto& f : row) cells.push_back(f.is_null() ? Cell() : Cell(std::string(f.c_str(), f.size())));
    rows.push_back(std::move(cells));
  }
  return rows;
}

std::string quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

// ---------------------------------------------------------------- processes

std::string ProcessResult::describe() const {
  std::ostringstream s;
  if (timed_out) s << "TIMED OUT, ";
  if (term_signal != 0) {
    s << "signal " << term_signal;
  } else {
    s << "exit " << exit_code;
  }
  s << " after " << seconds << "s\n--- stdout:\n" << out << "\n--- stderr:\n" << err;
  return s.str();
}

Process::Process(const std::vector<std::string>& argv, const Env& env) {
  if (argv.empty()) throw std::runtime_error("Process: empty argv");
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const char* name : {"NEW_ENCRYPTION_KEY", "OLD_ENCRYPTION_KEY", "DATABASE_URL"}) vars.erase(name);
  for (const auto& [name, value] : env) {
    if (value) {
      vars[name] = *value;
    } else {
      vars.erase(name);
    }
  }
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : vars) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  out_path_ = make_temp_file("out");
  err_path_ = make_temp_file("err");
  const int out_fd = ::open(out_path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  const int err_fd = ::open(err_path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || in_fd < 0) throw std::runtime_error("Process: cannot open capture files");
  started_ = std::chrono::steady_clock::now();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execve(argp[0], argp.data(), envp.data());
    static constexpr char kMsg[] = "Process: execve failed\n";
    const ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  ::close(in_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

bool Process::running() {
  if (reaped_) return false;
  const pid_t r = ::wait4(pid_, &status_, WNOHANG, &usage_);
  if (r == pid_) {
    reaped_ = true;
    ended_ = std::chrono::steady_clock::now();
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

ProcessResult Process::wait(std::chrono::milliseconds timeout) {
  ProcessResult result;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= until) {
      result.timed_out = true;
      ::kill(pid_, SIGKILL);
      ::wait4(pid_, &status_, 0, &usage_);
      reaped_ = true;
      ended_ = std::chrono::steady_clock::now();
      break;
    }
    sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status_)) result.exit_code = WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) result.term_signal = WTERMSIG(status_);
  result.out = stdout_so_far();
  result.err = stderr_so_far();
  result.seconds = std::chrono::duration<double>(ended_ - started_).count();
  result.peak_rss_kib = usage_.ru_maxrss;
  return result;
}

std::string Process::stdout_so_far() const { return read_file(out_path_); }
std::string Process::stderr_so_far() const { return read_file(err_path_); }

ProcessResult run(const std::vector<std::string>& argv, const Env& env, std::chrono::milliseconds timeout) {
  Process p(argv, env);
  return p.wait(timeout);
}

ProcessResult run_rekey(const std::vector<std::string>& args, const Env& env, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{REKEY_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, env, timeout);
}

std::unique_ptr<Process> start_rekey(const std::vector<std::string>& args, const Env& env) {
  std::vector<std::string> argv{REKEY_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Process>(argv, env);
}

ProcessResult run_python(const std::string& script, const std::vector<std::string>& args, const Env& env,
                         std::chrono::milliseconds timeout) {
  const char* python = std::getenv("REKEY_PYTHON");
  std::vector<std::string> argv{python != nullptr && *python != '\0' ? python : "/usr/bin/python3",
                                source_path(script)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, env, timeout);
}

std::string source_path(const std::string& relative) { return std::string(REKEY_SOURCE_DIR) + "/" + relative; }

Env stand_in_env(const std::string& store_file) {
  const char* path = std::getenv("PATH");
  return Env{{"REKEY_FAKE_STORE", store_file},
             {"PATH", source_path("tests/stand_ins") + ":" + (path != nullptr ? path : "/usr/bin:/bin")}};
}

// ---------------------------------------------------------------- keys

Env key_env(const std::string& new_passphrase, const std::string& old_passphrase, const Env& extra) {
  Env env{{"NEW_ENCRYPTION_KEY", new_passphrase}, {"OLD_ENCRYPTION_KEY", old_passphrase}};
  for (const auto& [k, v] : extra) env[k] = v;
  return env;
}

DerivedKey derive_service_key(const std::string& passphrase) {
  static constexpr char kSalt[] = "faithful_finances_salt_v1";
  unsigned char key[32];
  if (PKCS5_PBKDF2_HMAC(passphrase.data(), static_cast<int>(passphrase.size()),
                        reinterpret_cast<const unsigned char*>(kSalt), sizeof kSalt - 1, 100000, EVP_sha256(),
                        sizeof key, key) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return {b64(key, sizeof key, true), b64(key, sizeof key, false), hex(key, sizeof key)};
}

std::vector<std::string> secret_forms(const std::string& passphrase) {
  const DerivedKey k = derive_service_key(passphrase);
  std::vector<unsigned char> raw;
  for (std::size_t i = 0; i < k.hex.size(); i += 2) {
    raw.push_back(static_cast<unsigned char>(std::stoi(k.hex.substr(i, 2), nullptr, 16)));
  }
  std::vector<std::string> forms{passphrase, k.urlsafe_b64.substr(0, 43), k.std_b64.substr(0, 43), k.hex};
  for (int half = 0; half < 2; ++half) {
    const unsigned char* p = raw.data() + 16 * half;
    forms.push_back(b64(p, 16, true).substr(0, 22));
    forms.push_back(b64(p, 16, false).substr(0, 22));
    forms.push_back(hex(p, 16));
  }
  return forms;
}

// ---------------------------------------------------------------- databases

std::optional<std::string> admin_conninfo() {
  const char* v = std::getenv("REKEY_TEST_DB");
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::string with_dbname(const std::string& conninfo, const std::string& dbname) {
  static const std::regex uri(R"(^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$)", std::regex::icase);
  std::smatch m;
  if (std::regex_match(conninfo, m, uri)) return m[1].str() + "/" + dbname + m[3].str();
  static const std::regex kw(R"((^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+))");
  if (std::regex_search(conninfo, kw)) return std::regex_replace(conninfo, kw, "$1dbname=" + dbname);
  return conninfo + " dbname=" + dbname;
}

TestDatabase::TestDatabase(const std::string& label, const std::string& create_options) {
  static std::atomic<int> counter{0};
  const auto admin = admin_conninfo();
  if (!admin) throw std::runtime_error("REKEY_TEST_DB is not set");
  admin_ = *admin;
  name_ = "rekey_it_" + sanitize(label) + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  conninfo_ = with_dbname(admin_, name_);
  pqxx::connection c(admin_);
  pqxx::nontransaction tx(c);
  tx.exec("DROP DATABASE IF EXISTS " + quote(name_) + " WITH (FORCE)");
  tx.exec("CREATE DATABASE " + quote(name_) + (create_options.empty() ? "" : " " + create_options));
}

TestDatabase::~TestDatabase() {
  try {
    conn_.reset();
    pqxx::connection c(admin_);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + quote(name_) + " WITH (FORCE)");
  } catch (...) {
    // Best effort: a leftover database in a throwaway cluster is harmless.
  }
}

pqxx::connection& TestDatabase::conn() {
  if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(conninfo_ + " application_name=rekey_it");
  return *conn_;
}

void TestDatabase::exec(const std::string& sql) {
  pqxx::nontransaction tx(conn());
  tx.exec(sql);
}

Rows TestDatabase::query(const std::string& sql) {
  pqxx::nontransaction tx(conn());
  return to_rows(tx.exec(sql));
}

Cell TestDatabase::value(const std::string& sql) {
  const Rows rows = query(sql);
  if (rows.empty() || rows[0].empty()) return std::nullopt;
  return rows[0][0];
}

long long TestDatabase::count(const std::string& sql) {
  const Cell v = value(sql);
  return v ? std::stoll(*v) : 0;
}

bool TestDatabase::schema_exists(const std::string& schema) {
  pqxx::nontransaction tx(conn());
  return !tx.exec("SELECT 1 FROM pg_namespace WHERE nspname = " + tx.quote(schema)).empty();
}

std::string TestDatabase::checksum(const std::string& table, const std::string& order_by) {
  return value("SELECT md5(string_agg(t::text, E'\\n' ORDER BY " + order_by + ")) FROM " + table + " AS t")
      .value_or("(empty)");
}

std::string TestDatabase::row_versions(const std::string& table, const std::string& order_by) {
  return value("SELECT md5(string_agg(t.xmin::text || ':' || t.ctid::text, ',' ORDER BY " + order_by + ")) FROM " +
               table + " AS t")
      .value_or("(empty)");
}

std::string TestDatabase::dump_schema(const std::string& schema) {
  std::string out;
  pqxx::nontransaction tx(conn());
  const auto tables =
      tx.exec("SELECT tablename FROM pg_tables WHERE schemaname = " + tx.quote(schema) + " ORDER BY tablename");
  for (const auto& t : tables) {
    const std::string name = quote(schema) + "." + quote(t[0].c_str());
    for (const auto& row : tx.exec("SELECT x::text FROM " + name + " AS x")) out += name + ": " + row[0].c_str() + "\n";
  }
  return out;
}

void TestDatabase::disconnect() { conn_.reset(); }

Session::Session(const std::string& conninfo)
    : conn_(std::make_unique<pqxx::connection>(conninfo + " application_name=rekey_it_session")) {}

Session::~Session() {
  try {
    rollback();
  } catch (...) {
  }
}

void Session::exec(const std::string& sql) {
  pqxx::nontransaction tx(*conn_);
  if (!open_) {
    tx.exec("BEGIN");
    open_ = true;
  }
  tx.exec(sql);
}

void Session::commit() {
  if (!open_) return;
  pqxx::nontransaction tx(*conn_);
  tx.exec("COMMIT");
  open_ = false;
}

void Session::rollback() {
  if (!open_) return;
  pqxx::nontransaction tx(*conn_);
  tx.exec("ROLLBACK");
  open_ = false;
}

// ---------------------------------------------------------------- test data

std::vector<std::string> python_tokens(const std::string& env_var, int count, const std::string& format,
                                       const std::string& prefix, const Env& env) {
  const ProcessResult r =
      run_python("tests/pg/fixture.py", {"tokens", env_var, std::to_string(count), prefix, "1700000000", format}, env);
  if (r.exit_code != 0) throw std::runtime_error("fixture.py tokens failed: " + r.describe());
  return nlohmann::json::parse(r.out).get<std::vector<std::string>>();
}

void seed_fixture(const std::string& conninfo, const nlohmann::json& spec, const std::string& manifest_path,
                  const Env& env) {
  const std::string spec_path = manifest_path + ".spec.json";
  write_file(spec_path, spec.dump(2));
  const ProcessResult r = run_python("tests/pg/fixture.py", {"seed", conninfo, spec_path, manifest_path}, env);
  if (r.exit_code != 0) throw std::runtime_error("fixture.py seed failed: " + r.describe());
}

nlohmann::json check_fixture(const std::string& conninfo, const std::string& manifest_path,
                             const nlohmann::json& options, const Env& env) {
  const std::string options_path = manifest_path + ".check.json";
  write_file(options_path, options.dump(2));
  const ProcessResult r = run_python("tests/pg/fixture.py", {"check", conninfo, manifest_path, options_path}, env);
  if (r.exit_code != 0) throw std::runtime_error("fixture.py check failed: " + r.describe());
  return nlohmann::json::parse(r.out);
}

// ---------------------------------------------------------------- files

TempDir::TempDir() {
  std::string pattern = "/tmp/rekey-it-dir.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void sleep_for(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

nlohmann::json read_report(const std::string& path) {
  const std::string text = read_file(path);
  INFO("report: " << text);
  REQUIRE(!text.empty());
  return nlohmann::json::parse(text);
}

// Every column of the report has the counts the checker derived from what was
// seeded; changed_concurrently is 0.
void check_report_counts(const nlohmann::json& report, const nlohmann::json& expected) {
  REQUIRE(report.at("tables").size() == expected.size());
  for (const auto& t : report.at("tables")) {
    const std::string name = t.at("table").get<std::string>();
    REQUIRE_MESSAGE(expected.contains(name), "unexpected table in report: " << name);
    for (const auto& c : t.at("columns")) {
      const std::string column = c.at("column").get<std::string>();
      INFO("table " << name << " column " << column << ": report " << c.dump() << ", seeded "
                    << expected.at(name).dump());
      REQUIRE(expected.at(name).contains(column));
      const nlohmann::json& e = expected.at(name).at(column);
      CHECK(c.at("rotated") == e.at("rotated"));
      CHECK(c.at("already_new") == e.at("already_new"));
      CHECK(c.at("null") == e.at("null"));
      CHECK(c.at("undecryptable") == e.at("undecryptable"));
      CHECK(c.at("changed_concurrently") == 0);
    }
  }
}

// ---------------------------------------------------------------- standby

namespace {
// Runs `commands` in bash with scripts/lib/pg.sh sourced; throws with its output on failure.
std::string pg_script(const std::string& commands, const Env& env) {
  const ProcessResult r =
      run({"/bin/bash", "-c", "set -e; source \"$0\"; " + commands, source_path("scripts/lib/pg.sh")}, env,
          std::chrono::seconds(120));
  if (r.exit_code != 0) throw std::runtime_error("scripts/lib/pg.sh: " + commands + ": " + r.describe());
  return r.out;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}
}  // namespace

Standby& Standby::shared() {
  static Standby standby;
  return standby;
}

Standby::Standby()
    : conninfo_(env_or_empty("REKEY_TEST_STANDBY_DB")),
      dir_(env_or_empty("PG_STANDBY_TMP")),
      port_(env_or_empty("PG_STANDBY_PORT")) {
  if (!conninfo_.empty() && !dir_.empty() && !port_.empty()) return;
  const auto admin = admin_conninfo();
  if (!admin) throw std::runtime_error("REKEY_TEST_DB is not set");
  std::istringstream out(
      pg_script("pg_start_standby >&2; printf '%s\\n%s\\n%s\\n' \"$PG_STANDBY_TMP\" \"$PG_STANDBY_PORT\" "
                "\"$REKEY_TEST_STANDBY_DB\"",
                {{"REKEY_TEST_DB", *admin}}));
  std::getline(out, dir_);
  std::getline(out, port_);
  std::getline(out, conninfo_);
  owned_ = true;
}

Standby::~Standby() {
  if (!owned_) return;
  try {
    pg_script("pg_stop_standby", {{"PG_STANDBY_TMP", dir_}, {"PG_STANDBY_PORT", port_}});
  } catch (const std::exception&) {
    // At exit: nothing left to report to.
  }
}

void Standby::ctl(const std::string& action) {
  pg_script("pg_standby_ctl " + action, {{"PG_STANDBY_TMP", dir_}, {"PG_STANDBY_PORT", port_}});
}

void Standby::stop() { ctl("stop"); }
void Standby::start() { ctl("start"); }

void Standby::catch_up(const std::string& primary_conninfo) {
  pqxx::connection primary(primary_conninfo);
  const std::string lsn =
      pqxx::nontransaction(primary).exec1("SELECT pg_current_wal_insert_lsn()::text")[0].as<std::string>();
  pqxx::connection standby(conninfo("postgres"));
  const bool replayed = wait_until(
      [&] {
        return pqxx::nontransaction(standby)
            .exec1("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn")[0]
            .as<bool>();
      },
      std::chrono::seconds(30), std::chrono::milliseconds(20));
  if (!replayed) throw std::runtime_error("the standby did not replay up to " + lsn + " within 30 s");
}

SeededFixture::SeededFixture(const TestDatabase& db, const nlohmann::json& spec, const Env& env)
    : conninfo(db.conninfo()), manifest(dir.file("manifest.json")) {
  seed_fixture(conninfo, spec, manifest, env);
}

nlohmann::json SeededFixture::check(const nlohmann::json& options, const Env& env) const {
  return check_fixture(conninfo, manifest, options, env);
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

int regular_file_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

void plant_link(const std::string& target, const std::string& link) {
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
}

long long latest_rows_seen(TestDatabase& db) {
  if (!db.value("SELECT to_regclass('rekey.table_progress')::text")) return -1;
  // What the run's tables recorded before work units, and its units' rows.
  const Cell v = db.value(
      "SELECT (SELECT sum(rows_seen) FROM rekey.table_progress WHERE run_id = r.id) + "
      "COALESCE((SELECT sum(rows_seen) FROM rekey.chunks WHERE run_id = r.id AND kind = 'range'), 0) "
      "FROM (SELECT max(id) AS id FROM rekey.runs) r");
  return v ? std::stoll(*v) : -1;
}

long long chunks_off_checkpoint(TestDatabase& db, const std::string& table, const std::string& key) {
  return db.count("SELECT count(*) FROM rekey.chunks c WHERE c.kind = 'range' AND c.table_name = '" + table +
                  "' AND c.run_id = (SELECT max(id) FROM rekey.runs) AND c.rows_seen <> (SELECT count(*) FROM " +
                  table + " t WHERE (c.lower_key IS NULL OR t." + key + " > (c.lower_key->>0)::bigint) AND t." + key +
                  " <= (c.last_key->>0)::bigint)");
}

void wait_for_rekey_sessions_to_end(TestDatabase& db) {
  const std::string sql =
      "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() + "' AND application_name = 'rekey'";
  REQUIRE_MESSAGE(wait_until([&] { return db.count(sql) == 0; }, std::chrono::seconds(20)),
                  "rekey's sessions outlived the process");
}

long long kill_after(TestDatabase& db, const std::vector<std::string>& args, long long threshold,
                     std::chrono::milliseconds delay) {
  auto p = start_rekey(args, key_env());
  REQUIRE(wait_until([&] { return latest_rows_seen(db) >= threshold || !p->running(); }, std::chrono::seconds(60),
                     std::chrono::milliseconds(1)));
  std::this_thread::sleep_for(delay);
  p->signal(SIGKILL);
  const ProcessResult r = p->wait(std::chrono::seconds(30));
  INFO("rekey: " << r.describe());
  REQUIRE_MESSAGE(r.term_signal == SIGKILL, "rekey finished before it could be killed at " << threshold << " rows");
  wait_for_rekey_sessions_to_end(db);
  return latest_rows_seen(db);
}

std::string key_file(const TempDir& dir, const std::string& name, const std::string& text, mode_t mode) {
  const std::string path = dir.file(name);
  write_file(path, text);
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

}  // namespace rekey::it
