// Randomized invariant test of rotating tokens in place, judged by Python.
//
// A seeded generator makes a few thousand stored values that mix tokens (plain
// and wrapped; under the new key, an old key, an unknown key; broken ones),
// separators, JSON around them, text and bytes that are not UTF-8. Keyring
// rotates and inspects each; tests/interop/span_judge.py (run with
// /usr/bin/python3, or $REKEY_PYTHON) reads every value with cryptography and
// its own regular expressions, and lists what it disagrees with: a value
// changed other than inside its tokens, a token not under the new key only or
// with another plaintext, timestamp or format, a value rotated or found
// already new although a token in it does not decrypt, inspect and Python
// disagreeing about old-key tokens.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "crypto/keyring.h"
#include "tests/support/crypto_test_util.h"
#include "tests/support/it_support.h"

namespace rekey::crypto {
namespace {

using nlohmann::json;
using testing::Bytes;

constexpr std::size_t kValues = 4000;

const Bytes kNew = testing::seeded_key(1);
const Bytes kOld1 = testing::seeded_key(50);
const Bytes kOld2 = testing::seeded_key(90);
const Bytes kUnknown = testing::seeded_key(150);

std::string hex_of(std::string_view s) { return testing::to_hex(ByteView(s)); }

// Random stored values from one seed.
class ValueMaker {
 public:
  explicit ValueMaker(std::uint64_t seed) : rng_(seed) {}

  std::string value() {
    switch (below(10)) {
      case 0:
        return token();
      case 1:
        return joined(pick({",", ", ", ";", "\n", " | "}), 2 + below(4));
      case 2:
        return "\"" + token() + "\"";
      case 3:
        return "[" + joined(pick({",", ", "}), 1 + below(4), "\"") + "]";
      case 4:
        return "{\"a\": \"" + token() + "\", \"n\": 1, \"b\": \"" + token() + "\"}";
      case 5:
        return pick({"acct: ", "note ", "id=", "(", "k:"}) + token() + pick({" (primary)", ".", "", ")", " end"});
      case 6:
        return pick({" ", "\n", "\t", "  ", "\r\n"}) + token() + pick({" ", "\n", "", "\r\n"});
      case 7:
        return foreign_bytes_token();
      case 8:
        return non_utf8() + token() + non_utf8() + token() + non_utf8();
      default:
        return soup();
    }
  }

 private:
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  std::string pick(std::initializer_list<const char*> from) { return *(from.begin() + below(from.size())); }

  const Bytes& key() {
    static const Bytes* const keys[] = {&kNew, &kNew, &kOld1, &kOld1, &kOld2, &kUnknown};
    return *keys[below(6)];
  }

  Bytes plaintext() {
    Bytes pt = testing::random_bytes_of(rng_, below(80));
    if (below(2) == 0) {
      for (auto& b : pt) b = static_cast<std::uint8_t>(' ' + b % 95);
    }
    return pt;
  }

  std::uint64_t timestamp() {
    switch (below(20)) {
      case 0:
        return 0;
      case 1:
        return (std::uint64_t{1} << 36) - 1;
      default:
        return 1700000000 + below(100000000);
    }
  }

  std::string format(const std::string& token) { return below(2) == 0 ? token : testing::b64encode(token); }

  // A token (plain or wrapped) under one of the keys, or a broken one.
  std::string token() {
    if (below(8) == 0) return broken_token();
    return format(testing::fernet_of(key())->encrypt(ByteView(plaintext()), timestamp()));
  }

  std::string broken_token() {
    std::string t = testing::fernet_of(key())->encrypt(ByteView(plaintext()), timestamp());
    switch (below(5)) {
      case 0:  // truncated
        t.resize(t.size() - 1 - below(10));
        break;
      case 1: {  // a character changed: the HMAC fails
        char& c = t[10 + below(t.size() - 12)];
        c = c == 'A' ? 'B' : 'A';
        break;
      }
      case 2:  // authenticated under an old key, bad padding
        t = testing::b64encode(testing::build_token(kOld1, timestamp(), Bytes(16, 3), Bytes(32, 0)));
        break;
      case 3:  // too short
        t = testing::b64encode(Bytes(40, 0x80));
        break;
      default:
        t = "gAAAAA" + std::string(below(12), 'x');
        break;
    }
    return format(t);
  }

  // `n` tokens, each between `quote`s, joined by `separator`.
  std::string joined(const std::string& separator, std::size_t n, const std::string& quote = "") {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += (i > 0 ? separator : "") + quote + token() + quote;
    return out;
  }

  // A token no span can hold: timestamp from 2^36 on (no prefix), or its
  // prefix broken by a byte base64 skips; with whitespace around.
  std::string foreign_bytes_token() {
    const bool late = below(2) == 0;
    const std::uint64_t ts = late ? (std::uint64_t{1} << 36) + rng_() % (std::uint64_t{1} << 40) : timestamp();
    std::string t = testing::fernet_of(key())->encrypt(ByteView(plaintext()), ts);
    if (!late) t.insert(1 + below(4), 1, "\n \t\x80"[below(4)]);
    return " " + t + pick({"\n", " ", ""});
  }

  std::string non_utf8() {
    std::string out;
    for (std::size_t i = 0, n = below(4); i < n; ++i) out += static_cast<char>(0x80 + below(128));
    if (below(3) == 0) out += '\0';
    return out;
  }

  // Pieces stuck together with no care for boundaries.
  std::string soup() {
    std::string out;
    for (std::size_t i = 0, n = 1 + below(7); i < n; ++i) {
      switch (below(6)) {
        case 0:
        case 1:
          out += token();
          break;
        case 2:
          out += pick({",", " ", "=", "==", "+", "/", "\"", "[", "]", ":", "\n"});
          break;
        case 3:
          for (std::size_t k = 0, m = 1 + below(4); k < m; ++k) out += "AZaz09-_xg"[below(10)];
          break;
        case 4:
          out += non_utf8();
          break;
        default:
          out += pick({"hello world", "acct ", "gAAAAA", "Z0FBQUFB", "null"});
          break;
      }
    }
    return out;
  }

  std::mt19937_64 rng_;
};

json result_json(const ValueResult& r) {
  return {{"outcome", to_string(r.outcome)},
          {"rotated", hex_of(r.rotated)},
          {"key_index", r.key_index},
          {"tokens", r.tokens}};
}

TEST_SUITE("crypto.token_spans_interop") {
  TEST_CASE("interop: random values with embedded tokens - rotate changes only tokens, as Python reads them") {
    std::vector<std::unique_ptr<const Fernet>> olds;
    olds.push_back(testing::fernet_of(kOld1));
    olds.push_back(testing::fernet_of(kOld2));
    const Keyring ring(testing::fernet_of(kNew), std::move(olds));

    ValueMaker maker(20250101);
    json cases = json::array();
    std::map<std::string, int> outcomes;
    for (std::size_t i = 0; i < kValues; ++i) {
      const std::string value = maker.value();
      const ValueResult rotated = ring.rotate(value);
      ++outcomes[to_string(rotated.outcome) + std::string("/") + to_string(rotated.reason)];
      cases.push_back(
          {{"value", hex_of(value)}, {"rotate", result_json(rotated)}, {"inspect", result_json(ring.inspect(value))}});
    }

    const it::TempDir dir;
    const std::string in = dir.file("cases.json");
    it::write_file(in, json{{"keys",
                             {{"new", hex_of(testing::string_of(kNew))},
                              {"old", {hex_of(testing::string_of(kOld1)), hex_of(testing::string_of(kOld2))}}}},
                            {"cases", cases}}
                           .dump());
    const it::ProcessResult py = it::run_python("tests/interop/span_judge.py", {in});
    REQUIRE_MESSAGE(py.exit_code == 0, py.describe());
    const json results = json::parse(py.out).at("results");
    REQUIRE(results.size() == kValues);

    std::map<std::string, int> kinds;
    std::map<std::string, int> expects;
    int bad = 0;
    for (std::size_t i = 0; i < kValues; ++i) {
      const json& r = results[i];
      ++kinds[r.at("kind").get<std::string>()];
      ++expects[r.at("expect").get<std::string>()];
      if (r.at("problems").empty()) continue;
      if (++bad <= 10) {
        INFO("value " << cases[i].at("value").get<std::string>());
        INFO("rotate " << cases[i].at("rotate").dump());
        CHECK_MESSAGE(false, r.at("problems").dump());
      }
    }
    MESSAGE("rekey outcomes: " << json(outcomes).dump() << "; Python's kinds: " << json(kinds).dump()
                               << ", expectations: " << json(expects).dump());
    CHECK(bad == 0);
    // Every kind of value and every expectation is well represented.
    CHECK(kinds["single"] > 200);
    CHECK(kinds["spans"] > 1500);
    CHECK(kinds["unclear"] > 100);
    CHECK(kinds["lenient"] > 200);
    CHECK(expects["rotate"] > 500);
    CHECK(expects["already_new"] > 200);
    CHECK(expects["fail"] > 500);
    CHECK(expects["old_untouched"] > 100);
  }
}

}  // namespace
}  // namespace rekey::crypto
