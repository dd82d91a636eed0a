// Unit tests for crypto/token_spans: the one-token shape, where embedded
// tokens start and end, and unclear boundaries.
#include "crypto/token_spans.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/crypto_test_util.h"

namespace rekey::crypto {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

const testing::Bytes kKey = testing::seeded_key(40);

// A token whose text needs `pads` '=' (0, 1 or 2): 73-byte tokens need two,
// 89-byte ones one, 105-byte ones none.
std::string token_needing(int pads, std::uint64_t ts = 1700000000) {
  const std::size_t plaintext = pads == 2 ? 0 : pads == 1 ? 16 : 32;
  return testing::fernet_of(kKey)->encrypt(ByteView(std::string(plaintext, 'x')), ts);
}

std::vector<std::string> texts_of(std::string_view value, const SpanScan& scan) {
  std::vector<std::string> out;
  for (const TokenSpan& s : scan.spans) out.emplace_back(value.substr(s.begin, s.end - s.begin));
  return out;
}

std::vector<std::string> spans_of(std::string_view value) {
  const SpanScan scan = find_token_spans(value);
  REQUIRE(scan.boundaries == Boundaries::kClear);
  return texts_of(value, scan);
}

void check_no_span(const std::string& value, Boundaries boundaries) {
  CAPTURE(value);
  const SpanScan scan = find_token_spans(value);
  CHECK(scan.boundaries == boundaries);
  CHECK(scan.spans.empty());
}

bool is_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

TEST_SUITE("crypto.token_spans") {
  TEST_CASE("token_prefixes: every token below 2^36 and every wrapped token starts with one") {
    CHECK(token_prefixes()[0] == "gAAAAA");
    CHECK(token_prefixes()[1] == "Z0FBQUFB");
    CHECK(testing::b64encode("gAAAAA"sv) == "Z0FBQUFB");
    for (const std::uint64_t ts : {std::uint64_t{0}, std::uint64_t{1700000000}, (std::uint64_t{1} << 36) - 1}) {
      const std::string token = testing::fernet_of(kKey)->encrypt("p"sv, ts);
      CHECK(token.rfind("gAAAAA", 0) == 0);
      CHECK(testing::b64encode(token).rfind("Z0FBQUFB", 0) == 0);
    }
    CHECK(testing::fernet_of(kKey)->encrypt("p"sv, std::uint64_t{1} << 36).rfind("gAAAAA", 0) != 0);
  }

  TEST_CASE("is_single_token_text: alphabet characters, then at most two '='") {
    const std::string token = token_needing(2);
    for (const std::string& v :
         {std::string(), token, testing::b64encode(token), token.substr(0, token.size() - 1), token_needing(0),
          token_needing(0) + "==", std::string("xgAAAAA"), std::string("==")}) {
      CAPTURE(v);
      CHECK(is_single_token_text(v));
    }
    for (const std::string& v : {token + "=", " " + token, token + "\n", token.substr(0, 20) + "=" + token.substr(20),
                                 token + "," + token, "\"" + token + "\"", std::string("ab+c"), std::string("ab/c"),
                                 std::string("ab\xc3\xa9"), std::string("ab\0c", 4), std::string("===")}) {
      CAPTURE(v);
      CHECK_FALSE(is_single_token_text(v));
    }
  }

  TEST_CASE("find_token_spans: tokens joined by commas, in JSON, in text, with whitespace") {
    const std::string a = token_needing(2);
    const std::string b = token_needing(1);
    const std::string c = token_needing(0);
    const std::string w = testing::b64encode(b);
    CHECK(spans_of(a + "," + b + "," + c) == std::vector<std::string>{a, b, c});
    CHECK(spans_of(a + ", " + w) == std::vector<std::string>{a, w});
    CHECK(spans_of("\"" + a + "\"") == std::vector<std::string>{a});
    CHECK(spans_of("[\"" + c + "\",\"" + w + "\"]") == std::vector<std::string>{c, w});
    CHECK(spans_of("{\"k\": \"" + b + "\", \"n\": 1}") == std::vector<std::string>{b});
    CHECK(spans_of("acct: " + a + " (primary)") == std::vector<std::string>{a});
    CHECK(spans_of("  " + c + "\r\n") == std::vector<std::string>{c});
    CHECK(spans_of("\xff\xfe" + a + "\x80\0"s + b) == std::vector<std::string>{a, b});
    CHECK(spans_of("https://x.example/" + c + "?q=1") == std::vector<std::string>{c});

    const SpanScan scan = find_token_spans("x " + a + ";" + c);
    REQUIRE(scan.spans.size() == 2);
    CHECK(scan.spans[0] == TokenSpan{2, 2 + a.size()});
    CHECK(scan.spans[1] == TokenSpan{3 + a.size(), 3 + a.size() + c.size()});
  }

  TEST_CASE("find_token_spans: a span takes the padding its run calls for, not more") {
    const std::string two = token_needing(2);
    const std::string one = token_needing(1);
    const std::string none = token_needing(0);
    CHECK(spans_of(" " + two + "=") == std::vector<std::string>{two});
    CHECK(spans_of(" " + one + "==") == std::vector<std::string>{one});
    CHECK(spans_of(" " + none + "==") == std::vector<std::string>{none});
    // Missing padding: the span is what is there (and will not decode).
    CHECK(spans_of(" " + two.substr(0, two.size() - 1)) == std::vector<std::string>{two.substr(0, two.size() - 1)});
    CHECK(spans_of(" " + two.substr(0, two.size() - 2)) == std::vector<std::string>{two.substr(0, two.size() - 2)});
    // A token after padding starts a run of its own.
    CHECK(spans_of(" " + two + one + none) == std::vector<std::string>{two, one, none});
    // Characters outside [A-Za-z0-9_-] end a run, '+' and '/' too.
    CHECK(spans_of(" gAAAAAab+cd") == std::vector<std::string>{"gAAAAAab"});
    CHECK(spans_of(" Z0FBQUFBab/cd") == std::vector<std::string>{"Z0FBQUFBab"});
  }

  TEST_CASE("find_token_spans: no prefix, no span") {
    for (const std::string& v : {std::string(), std::string("hello world"), std::string("{\"a\": [1, 2]}"),
                                 std::string(" gAAAA "), std::string(" Z0FBQUF "), std::string("g AAAAA")}) {
      check_no_span(v, Boundaries::kClear);
    }
  }

  TEST_CASE("find_token_spans: a prefix inside a run makes the boundaries unclear") {
    const std::string a = token_needing(0);
    const std::string w = testing::b64encode(token_needing(1));  // 120 characters: no padding
    for (const std::string& v : {" x" + a, "[\"" + a + "\", \"x" + a + "\"]", a + a, " " + w + a, "_" + w,
                                 "-" + a + " ", "9gAAAAA"s, " xZ0FBQUFB"s}) {
      check_no_span(v, Boundaries::kUnclear);
    }
  }

  TEST_CASE("find_token_spans: a 1 MB value with tokens in it") {
    const std::string a = token_needing(2);
    const std::string w = testing::b64encode(token_needing(1));
    std::string value;
    std::vector<TokenSpan> want;
    std::mt19937_64 rng(7);
    while (value.size() < (1u << 20)) {
      for (std::size_t i = 0, n = rng() % 2000; i < n; ++i) value += " abcXYZ019,.;:\n\xff\x80\"[]{}"[rng() % 22];
      value += ' ';
      const std::string& t = rng() % 2 == 0 ? a : w;
      want.push_back(TokenSpan{value.size(), value.size() + t.size()});
      value += t;
      value += ' ';
    }
    const SpanScan scan = find_token_spans(value);
    CHECK(scan.boundaries == Boundaries::kClear);
    CHECK(scan.spans == want);
  }

  TEST_CASE("find_token_spans: spans are one-token texts with clear edges (random values)") {
    std::mt19937_64 rng(99);
    const std::vector<std::string> pieces = {token_needing(2),
                                             token_needing(1),
                                             testing::b64encode(token_needing(0)),
                                             "gAAAAA",
                                             "Z0FBQUFB",
                                             "=",
                                             "==",
                                             " ",
                                             ",",
                                             "\"",
                                             "ab",
                                             "\xc3",
                                             "\0"s,
                                             "+",
                                             "x"};
    int clear = 0;
    int unclear = 0;
    for (int round = 0; round < 3000; ++round) {
      std::string v;
      for (std::size_t i = 0, n = rng() % 8; i < n; ++i) v += pieces[rng() % pieces.size()];
      CAPTURE(v);
      const SpanScan scan = find_token_spans(v);
      // A prefix follows an alphabet character exactly when the boundaries are unclear.
      bool prefix_inside_run = false;
      for (std::size_t i = 1; i < v.size(); ++i) {
        for (const std::string_view p : token_prefixes()) {
          prefix_inside_run = prefix_inside_run || (is_alphabet(v[i - 1]) && v.compare(i, p.size(), p) == 0);
        }
      }
      CHECK((scan.boundaries == Boundaries::kUnclear) == prefix_inside_run);
      (scan.boundaries == Boundaries::kUnclear ? unclear : clear)++;
      std::size_t last_end = 0;
      for (const TokenSpan& s : scan.spans) {
        const std::string_view text = std::string_view(v).substr(s.begin, s.end - s.begin);
        CHECK(s.begin >= last_end);
        CHECK(is_single_token_text(text));
        CHECK((text.rfind("gAAAAA", 0) == 0 || text.rfind("Z0FBQUFB", 0) == 0));
        CHECK((s.begin == 0 || !is_alphabet(v[s.begin - 1])));
        CHECK((s.end == v.size() || !is_alphabet(v[s.end]) || v[s.end - 1] == '='));  // the run ended
        last_end = s.end;
      }
    }
    CHECK(clear > 1000);
    CHECK(unclear > 300);
  }
}

}  // namespace
}  // namespace rekey::crypto
