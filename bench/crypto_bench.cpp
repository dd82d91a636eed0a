// Single-core throughput of Keyring::rotate against Python's MultiFernet.rotate
// and against a physical bound (2 HMAC-SHA256 + 2 AES-128-CBC per token).
//
//   rekey_bench [--seconds S] [--tokens N] [--python PATH] [--peer bench/python_rotate_peer.py]
//               [--no-python] [--only-rekey CASE]
//
// Pins itself (and the Python peer it starts) to one CPU and counts that
// thread's CPU time, so rates are per core-second. Prints markdown tables; see
// bench/crypto_bench.sh.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/base64.h"
#include "crypto/fernet.h"
#include "crypto/key_material.h"
#include "crypto/keyring.h"

namespace {

using rekey::crypto::ByteView;
using rekey::crypto::Fernet;
using rekey::crypto::Keyring;
using rekey::crypto::ParsedToken;
using rekey::crypto::SecretBytes;
using rekey::crypto::ValueOutcome;

struct Options {
  double seconds = 1.0;  // per trial; 3 trials per case, median reported
  std::size_t tokens = 4096;
  std::string python = "/usr/bin/python3";
  std::string peer = (std::filesystem::path(__FILE__).parent_path() / "python_rotate_peer.py").string();
  bool run_python = true;
  std::string only;  // run only this case through rekey (for profiling)
};

struct Case {
  std::string name;
  std::size_t plaintext_size;
  bool wrapped;
  std::vector<std::string> values;  // stored values under the old key
  double rekey_rate = 0;
  double python_rate = 0;
  double bound_rate = 0;
};

// CPU time of this thread: rates are per second of one core's time, so other
// load on the machine changes them little (wall-clock time would).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs `op(i)` over i = 0, 1, ... for at least `seconds` of CPU time; returns ops per CPU second.
template <typename Op>
double rate_of(double seconds, Op&& op) {
  std::size_t done = 0;
  const double start = thread_cpu_seconds();
  double now = start;
  do {
    for (int k = 0; k < 1024; ++k) op(done++);
    now = thread_cpu_seconds();
  } while (now - start < seconds);
  return static_cast<double>(done) / (now - start);
}

template <typename Op>
double median_rate(double seconds, Op&& op) {
  std::vector<double> r;
  for (int t = 0; t < 3; ++t) r.push_back(rate_of(seconds, op));
  std::sort(r.begin(), r.end());
  return r[1];
}

std::string fmt_rate(double r) {
  const auto v = static_cast<long long>(r + 0.5);
  std::string digits = std::to_string(v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string fmt(double v, const char* spec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

// ---- the physical bound -----------------------------------------------------
// Per token: HMAC-SHA256 verify under the old key and HMAC-SHA256 under the new
// key (inner/outer states precomputed, as a Fernet object does), AES-128-CBC
// decrypt under the old key and encrypt under the new key (contexts keyed
// once; only the IV changes). No base64, no allocation, no checks.
class Bound {
 public:
  Bound(const std::uint8_t old_key[32], const std::uint8_t new_key[32]) {
    init_hmac(old_key, old_inner_, old_outer_);
    init_hmac(new_key, new_inner_, new_outer_);
    dec_ = EVP_CIPHER_CTX_new();
    enc_ = EVP_CIPHER_CTX_new();
    if (EVP_DecryptInit_ex(dec_, EVP_aes_128_cbc(), nullptr, old_key + 16, zero_iv_) != 1 ||
        EVP_EncryptInit_ex(enc_, EVP_aes_128_cbc(), nullptr, new_key + 16, zero_iv_) != 1 ||
        EVP_CIPHER_CTX_set_padding(dec_, 0) != 1 || EVP_CIPHER_CTX_set_padding(enc_, 0) != 1) {
      throw std::runtime_error("OpenSSL setup failed");
    }
  }
  ~Bound() {
    EVP_CIPHER_CTX_free(dec_);
    EVP_CIPHER_CTX_free(enc_);
  }

  // `raw` is decoded token bytes; `out` has room for the same size.
  bool rotate(const std::vector<std::uint8_t>& raw, std::uint8_t* out) {
    const std::size_t signed_size = raw.size() - 32;
    const std::size_t ct_size = signed_size - 25;
    std::uint8_t tag[32];
    hmac(old_inner_, old_outer_, raw.data(), signed_size, tag);
    const bool ok = std::memcmp(tag, raw.data() + signed_size, 32) == 0;
    int dec_len = 0;
    int enc_len = 0;
    std::uint8_t pt[4096];
    EVP_CipherInit_ex(dec_, nullptr, nullptr, nullptr, raw.data() + 9, 0);
    EVP_DecryptUpdate(dec_, pt, &dec_len, raw.data() + 25, static_cast<int>(ct_size));
    std::memcpy(out, raw.data(), 25);  // same header; a real rotation would use a fresh IV
    EVP_CipherInit_ex(enc_, nullptr, nullptr, nullptr, raw.data() + 9, 1);
    EVP_EncryptUpdate(enc_, out + 25, &enc_len, pt, static_cast<int>(ct_size));
    hmac(new_inner_, new_outer_, out, signed_size, out + signed_size);
    // Whole ciphertext processed both ways (padding stays off across IV-only re-inits).
    return ok && static_cast<std::size_t>(dec_len) == ct_size && static_cast<std::size_t>(enc_len) == ct_size;
  }

 private:
  static void init_hmac(const std::uint8_t key[32], SHA256_CTX& inner, SHA256_CTX& outer) {
    std::uint8_t pad[64];
    std::memset(pad, 0x36, sizeof pad);
    for (int i = 0; i < 16; ++i) pad[i] ^= key[i];
    SHA256_Init(&inner);
    SHA256_Update(&inner, pad, sizeof pad);
    std::memset(pad, 0x5c, sizeof pad);
    for (int i = 0; i < 16; ++i) pad[i] ^= key[i];
    SHA256_Init(&outer);
    SHA256_Update(&outer, pad, sizeof pad);
  }
  static void hmac(const SHA256_CTX& inner, const SHA256_CTX& outer, const std::uint8_t* data, std::size_t size,
                   std::uint8_t out[32]) {
    SHA256_CTX c = inner;
    SHA256_Update(&c, data, size);
    SHA256_Final(out, &c);
    c = outer;
    SHA256_Update(&c, out, 32);
    SHA256_Final(out, &c);
  }

  SHA256_CTX old_inner_{}, old_outer_{}, new_inner_{}, new_outer_{};
  EVP_CIPHER_CTX* dec_ = nullptr;
  EVP_CIPHER_CTX* enc_ = nullptr;
  std::uint8_t zero_iv_[16] = {};
};

// ---- Python ---------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void run_python(const Options& opt, const std::string& new_key, const std::string& old_key, std::vector<Case>& cases) {
  char tmpl[] = "/tmp/rekey-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::string dir = tmpl;
  nlohmann::json request = {
      {"new", new_key}, {"old", old_key}, {"seconds", opt.seconds}, {"cases", nlohmann::json::array()}};
  for (const auto& c : cases) {
    request["cases"].push_back({{"name", c.name}, {"wrapped", c.wrapped}, {"values", c.values}});
  }
  {
    std::ofstream f(dir + "/in.json");
    f << request.dump();
  }
  const std::string cmd = shell_quote(opt.python) + " " + shell_quote(opt.peer) + " " + shell_quote(dir + "/in.json") +
                          " " + shell_quote(dir + "/out.json");
  const int status = std::system(cmd.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("python peer failed: " + cmd);
  }
  std::ifstream in(dir + "/out.json");
  const nlohmann::json out = nlohmann::json::parse(in);
  for (auto& c : cases) c.python_rate = out.at("rates").at(c.name).get<double>();
  std::filesystem::remove_all(dir);
}

// ---- building blocks, for the breakdown ------------------------------------------

void breakdown(const Options& opt, const Keyring& ring, const Case& c) {
  const auto& vals = c.values;
  const std::size_t n = vals.size();
  std::vector<ParsedToken> parsed(n);
  std::vector<std::string> texts(n);  // the token text (inside the wrapping, if any)
  for (std::size_t i = 0; i < n; ++i) {
    texts[i] = vals[i];
    if (c.wrapped) {
      std::vector<std::uint8_t> inner;
      rekey::crypto::base64url_decode_lenient(vals[i], inner);
      texts[i].assign(inner.begin(), inner.end());
    }
    ParsedToken::parse(texts[i], parsed[i]);
  }
  const Fernet& old_key = ring.old_key(0);
  const Fernet& new_key = ring.new_key();
  SecretBytes pt;
  std::vector<std::uint8_t> sink;
  volatile std::size_t keep = 0;
  const double t = opt.seconds / 2;
  struct Row {
    const char* what;
    double rate;
  };
  std::vector<Row> rows = {
      {"base64 decode of the stored value", median_rate(t,
                                                        [&](std::size_t i) {
                                                          sink.clear();
                                                          rekey::crypto::base64url_decode_lenient(vals[i % n], sink);
                                                          keep = keep + sink.size();
                                                        })},
      {"ParsedToken::parse (token text)", median_rate(t,
                                                      [&](std::size_t i) {
                                                        ParsedToken p;
                                                        ParsedToken::parse(texts[i % n], p);
                                                        keep = keep + p.bytes().size();
                                                      })},
      {"Fernet::decrypt(parsed), wrong key (HMAC only)",
       median_rate(t,
                   [&](std::size_t i) { keep = keep + static_cast<std::size_t>(new_key.decrypt(parsed[i % n], pt)); })},
      {"Fernet::decrypt(parsed), right key",
       median_rate(t,
                   [&](std::size_t i) { keep = keep + static_cast<std::size_t>(old_key.decrypt(parsed[i % n], pt)); })},
      {"Fernet::encrypt (incl. RAND_bytes IV, base64)",
       median_rate(t,
                   [&](std::size_t i) {
                     keep = keep + new_key.encrypt(ByteView(parsed[i % n].bytes().data(), c.plaintext_size), 1).size();
                   })},
      {"Keyring::inspect",
       median_rate(t, [&](std::size_t i) { keep = keep + ring.inspect(vals[i % n]).rotated.size(); })},
      {"Keyring::rotate",
       median_rate(t, [&](std::size_t i) { keep = keep + ring.rotate(vals[i % n]).rotated.size(); })},
  };
  std::cout << "\n#### Breakdown: " << c.name << "\n\n| step | ops/s | ns/op |\n|---|---:|---:|\n";
  for (const auto& r : rows) {
    std::cout << "| " << r.what << " | " << fmt_rate(r.rate) << " | " << fmt(1e9 / r.rate, "%.0f") << " |\n";
  }
  (void)keep;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  bool want_breakdown = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("missing value for " + a);
      return argv[++i];
    };
    if (a == "--seconds") {
      opt.seconds = std::stod(next());
    } else if (a == "--tokens") {
      opt.tokens = std::stoul(next());
    } else if (a == "--python") {
      opt.python = next();
    } else if (a == "--peer") {
      opt.peer = next();
    } else if (a == "--no-python") {
      opt.run_python = false;
    } else if (a == "--no-breakdown") {
      want_breakdown = false;
    } else if (a == "--only-rekey") {
      opt.only = next();
    } else {
      std::cerr << "usage: rekey_bench [--seconds S] [--tokens N] [--python PATH] [--peer FILE] [--no-python]"
                   " [--no-breakdown] [--only-rekey CASE]\n";
      return 2;
    }
  }

  // One core: pin to the CPU we are on; the Python peer inherits the mask.
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpu = sched_getcpu();
  CPU_SET(cpu < 0 ? 0 : cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");

  const SecretBytes new_text = rekey::crypto::generate_fernet_key();
  const SecretBytes old_text = rekey::crypto::generate_fernet_key();
  SecretBytes new_raw, old_raw;
  rekey::crypto::decode_fernet_key(std::string_view(reinterpret_cast<const char*>(new_text.data()), new_text.size()),
                                   new_raw);
  rekey::crypto::decode_fernet_key(std::string_view(reinterpret_cast<const char*>(old_text.data()), old_text.size()),
                                   old_raw);
  std::vector<std::unique_ptr<const Fernet>> olds;
  olds.push_back(Fernet::create(old_raw));
  const Keyring ring(Fernet::create(new_raw), std::move(olds));
  const Fernet& old_fernet = ring.old_key(0);

  std::vector<Case> cases;
  for (const std::size_t size : {std::size_t{12}, std::size_t{64}}) {
    for (const bool wrapped : {false, true}) {
      Case c{std::to_string(size) + " B " + (wrapped ? "wrapped" : "plain"), size, wrapped, {}};
      std::vector<std::uint8_t> pt(size);
      for (std::size_t i = 0; i < opt.tokens; ++i) {
        rekey::crypto::random_bytes(pt.data(), pt.size());
        std::string token = old_fernet.encrypt(ByteView(pt), 1700000000 + i);
        if (wrapped)
          token = rekey::crypto::base64url_encode(reinterpret_cast<const std::uint8_t*>(token.data()), token.size());
        c.values.push_back(std::move(token));
      }
      cases.push_back(std::move(c));
    }
  }

  std::cerr << "rekey_bench: pinned to CPU " << cpu << "; " << opt.tokens << " tokens per case; 3 x " << opt.seconds
            << " CPU-s trials per measurement (median)\n";

  for (auto& c : cases) {
    if (!opt.only.empty() && c.name != opt.only) continue;
    const std::size_t n = c.values.size();
    // Sanity: every value rotates.
    for (const auto& v : c.values) {
      if (ring.rotate(v).outcome != ValueOutcome::kRotated) throw std::runtime_error("bench token did not rotate");
    }
    std::size_t bytes = 0;
    c.rekey_rate =
        median_rate(opt.seconds, [&](std::size_t i) { bytes += ring.rotate(c.values[i % n]).rotated.size(); });
    if (bytes == 0) return 1;

    // The bound, on the decoded token bytes.
    std::vector<std::vector<std::uint8_t>> raw(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<std::uint8_t> text;
      rekey::crypto::base64url_decode_lenient(c.values[i], text);
      if (c.wrapped) {
        rekey::crypto::base64url_decode_lenient(
            std::string_view(reinterpret_cast<const char*>(text.data()), text.size()), raw[i]);
      } else {
        raw[i] = std::move(text);
      }
    }
    Bound bound(old_raw.data(), new_raw.data());
    std::vector<std::uint8_t> out(raw[0].size());
    std::size_t bad = 0;
    c.bound_rate =
        median_rate(opt.seconds, [&](std::size_t i) { bad += bound.rotate(raw[i % n], out.data()) ? 0 : 1; });
    if (bad != 0) throw std::runtime_error("bound: HMAC did not verify or AES did not process every block");
  }
  if (!opt.only.empty()) {
    for (const auto& c : cases) {
      if (c.name == opt.only) std::cout << c.name << ": " << fmt_rate(c.rekey_rate) << " rot/s\n";
    }
    return 0;
  }

  if (opt.run_python) {
    auto as_text = [](const SecretBytes& s) { return std::string(s.begin(), s.end()); };
    run_python(opt, as_text(new_text), as_text(old_text), cases);
  }

  std::cout << "### Keyring::rotate, one core (new key + 1 old key; tokens under the old key)\n\n";
  std::cout << "| case | rekey rot/s | python rot/s | ratio |\n|---|---:|---:|---:|\n";
  for (const auto& c : cases) {
    std::cout << "| " << c.name << " | " << fmt_rate(c.rekey_rate) << " | "
              << (opt.run_python ? fmt_rate(c.python_rate) : std::string("-")) << " | "
              << (opt.run_python ? fmt(c.rekey_rate / c.python_rate, "%.1fx") : std::string("-")) << " |\n";
  }
  std::cout << "\n### Physical bound: 2 HMAC-SHA256 + 2 AES-128-CBC per token (raw OpenSSL, no base64)\n\n";
  std::cout << "| case | bound ops/s | rekey % of bound |\n|---|---:|---:|\n";
  for (const auto& c : cases) {
    std::cout << "| " << c.name << " | " << fmt_rate(c.bound_rate) << " | "
              << fmt(100.0 * c.rekey_rate / c.bound_rate, "%.0f%%") << " |\n";
  }
  double min_rate = 1e300, min_ratio = 1e300;
  for (const auto& c : cases) {
    min_rate = std::min(min_rate, c.rekey_rate);
    if (opt.run_python) min_ratio = std::min(min_ratio, c.rekey_rate / c.python_rate);
  }
  std::cout << "\nTargets: >= 500,000 rot/s: " << (min_rate >= 500000 ? "MET" : "NOT MET") << " (slowest case "
            << fmt_rate(min_rate) << ")";
  if (opt.run_python) {
    std::cout << "; >= 30x Python: " << (min_ratio >= 30 ? "MET" : "NOT MET") << " (lowest " << fmt(min_ratio, "%.1fx")
              << ")";
  }
  std::cout << "\n";
  if (want_breakdown) {
    for (const auto& c : cases) breakdown(opt, ring, c);
  }
  return 0;
}
