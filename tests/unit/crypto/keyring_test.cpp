// Unit tests for crypto/keyring: format detection, rotation, key order and the
// classification of values that are not (decryptable) tokens.
#include "crypto/keyring.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "crypto/token_signs.h"
#include "tests/support/crypto_test_util.h"

namespace rekey::crypto {
namespace {

using testing::Bytes;
using namespace std::string_view_literals;

const Bytes kNew = testing::seeded_key(100);
const Bytes kOld1 = testing::seeded_key(110);
const Bytes kOld2 = testing::seeded_key(120);
const Bytes kStranger = testing::seeded_key(130);

std::vector<std::unique_ptr<const Fernet>> fernets(std::initializer_list<const Bytes*> keys) {
  std::vector<std::unique_ptr<const Fernet>> out;
  for (const Bytes* k : keys) out.push_back(testing::fernet_of(*k));
  return out;
}

Keyring make_keyring() { return Keyring(testing::fernet_of(kNew), fernets({&kOld1, &kOld2})); }

std::string wrap(const std::string& token) { return testing::b64encode(token); }

// Decrypts a stored value in either format with `key`; "" with ok=false on failure.
std::string read_value(const Bytes& key, const std::string& stored, ValueFormat format, bool& ok,
                       std::uint64_t* timestamp = nullptr) {
  std::string token = stored;
  if (format == ValueFormat::kWrapped) token = testing::string_of(testing::b64decode(stored));
  ParsedToken parsed;
  SecretBytes pt;
  ok = ParsedToken::parse(token, parsed) == TokenError::kNone &&
       testing::fernet_of(key)->decrypt(parsed, pt) == TokenError::kNone;
  if (timestamp != nullptr) *timestamp = parsed.timestamp();
  return testing::string_of(pt);
}

// A token embedded in a value: under `key`, with this plaintext and
// timestamp, stored in `format`.
struct Embedded {
  const Bytes* key;
  std::string plaintext;
  std::uint64_t ts;
  ValueFormat format;
};

std::string stored_token(const Embedded& e) {
  const std::string token = testing::fernet_of(*e.key)->encrypt(ByteView(e.plaintext), e.ts);
  return e.format == ValueFormat::kPlain ? token : wrap(token);
}

// texts[0] token[0] texts[1] ... token[n-1] texts[n].
std::string compose(const std::vector<std::string>& texts, const std::vector<Embedded>& tokens) {
  std::string value = texts.at(0);
  for (std::size_t i = 0; i < tokens.size(); ++i) value += stored_token(tokens[i]) + texts.at(i + 1);
  return value;
}

// Rotates the value `texts` and `tokens` make and checks the result is the
// same texts around the same tokens, each under the new key with its
// plaintext, timestamp and format (new-key tokens byte for byte), that
// inspect() agrees, and that the result is already new.
void check_rotates_in_place(const Keyring& ring, const std::vector<std::string>& texts,
                            const std::vector<Embedded>& tokens, int key_index) {
  const std::string value = compose(texts, tokens);
  const ValueResult r = ring.rotate(value);
  REQUIRE(r.outcome == ValueOutcome::kRotated);
  CHECK(r.key_index == key_index);
  CHECK(r.reason == FailureReason::kNone);
  CHECK(r.format == tokens.front().format);
  CHECK(r.tokens == static_cast<int>(tokens.size()));
  const ValueResult inspected = ring.inspect(value);
  CHECK(inspected.outcome == ValueOutcome::kUnderOldKey);
  CHECK(inspected.key_index == key_index);
  CHECK(inspected.tokens == r.tokens);

  const SpanScan original = find_token_spans(value);
  const SpanScan scan = find_token_spans(r.rotated);
  REQUIRE(scan.boundaries == Boundaries::kClear);
  REQUIRE(scan.spans.size() == tokens.size());
  std::size_t at = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const TokenSpan& span = scan.spans[i];
    CHECK(r.rotated.compare(at, span.begin - at, texts[i]) == 0);
    CHECK(span.begin - at == texts[i].size());
    const std::string token = r.rotated.substr(span.begin, span.end - span.begin);
    const Embedded& want = tokens[i];
    bool ok = false;
    std::uint64_t ts = 0;
    CHECK(read_value(kNew, token, want.format, ok, &ts) == want.plaintext);
    CHECK(ok);
    CHECK(ts == want.ts);
    if (want.key == &kNew) {
      const TokenSpan& was = original.spans.at(i);
      CHECK(token == value.substr(was.begin, was.end - was.begin));
    } else {
      read_value(*want.key, token, want.format, ok);
      CHECK_FALSE(ok);
    }
    at = span.end;
  }
  CHECK(r.rotated.substr(at) == texts.back());
  const ValueResult again = ring.rotate(r.rotated);
  CHECK(again.outcome == ValueOutcome::kAlreadyNew);
  CHECK(again.tokens == r.tokens);
}

TEST_SUITE("crypto.keyring") {
  TEST_CASE("Keyring: plain and wrapped values under an old key are detected by inspect") {
    const Keyring ring = make_keyring();
    const std::string token = testing::fernet_of(kOld1)->encrypt("secret"sv, 1000);

    ValueResult plain = ring.inspect(token);
    CHECK(plain.outcome == ValueOutcome::kUnderOldKey);
    CHECK(plain.format == ValueFormat::kPlain);
    CHECK(plain.key_index == 1);
    CHECK(plain.reason == FailureReason::kNone);
    CHECK(plain.rotated.empty());

    ValueResult wrapped = ring.inspect(wrap(token));
    CHECK(wrapped.outcome == ValueOutcome::kUnderOldKey);
    CHECK(wrapped.format == ValueFormat::kWrapped);
    CHECK(wrapped.key_index == 1);
    CHECK(wrapped.rotated.empty());
  }

  TEST_CASE("Keyring::rotate keeps format and timestamp and re-encrypts under the new key only") {
    const Keyring ring = make_keyring();
    std::mt19937_64 rng(5);
    for (const ValueFormat format : {ValueFormat::kPlain, ValueFormat::kWrapped}) {
      for (const Bytes* old : {&kOld1, &kOld2}) {
        for (const std::size_t n : {0, 1, 12, 15, 16, 17, 64, 1000}) {
          const Bytes pt = testing::random_bytes_of(rng, n);
          const std::uint64_t ts = rng() >> (n % 2 == 0 ? 30 : 0);
          const std::string token = testing::fernet_of(*old)->encrypt(ByteView(pt), ts);
          const std::string stored = format == ValueFormat::kPlain ? token : wrap(token);
          CAPTURE(to_string(format));
          CAPTURE(n);

          const ValueResult r = ring.rotate(stored);
          REQUIRE(r.outcome == ValueOutcome::kRotated);
          CHECK(r.format == format);
          CHECK(r.key_index == (old == &kOld1 ? 1 : 2));
          CHECK(r.reason == FailureReason::kNone);
          CHECK(r.rotated != stored);

          bool ok = false;
          std::uint64_t new_ts = 0;
          CHECK(read_value(kNew, r.rotated, format, ok, &new_ts) == testing::string_of(pt));
          CHECK(ok);
          CHECK(new_ts == ts);
          read_value(*old, r.rotated, format, ok);
          CHECK_FALSE(ok);

          // The rotated value is canonical: a token, or the base64 of one.
          if (format == ValueFormat::kWrapped) {
            if (ts < (std::uint64_t{1} << 36)) CHECK(r.rotated.rfind("Z0FBQUFB", 0) == 0);  // "gAAAAA"
            CHECK(testing::b64encode(testing::b64decode(r.rotated)) == r.rotated);
          }

          const ValueResult again = ring.inspect(r.rotated);
          CHECK(again.outcome == ValueOutcome::kAlreadyNew);
          CHECK(again.key_index == 0);
          CHECK(again.format == format);
        }
      }
    }
  }

  TEST_CASE("Keyring: a value already under the new key is left alone") {
    const Keyring ring = make_keyring();
    const std::string token = testing::fernet_of(kNew)->encrypt("fresh"sv, 77);
    for (const std::string& stored : {token, wrap(token)}) {
      const ValueResult r = ring.rotate(stored);
      CHECK(r.outcome == ValueOutcome::kAlreadyNew);
      CHECK(r.key_index == 0);
      CHECK(r.rotated.empty());
      CHECK(r.reason == FailureReason::kNone);
      CHECK(r.format == (stored == token ? ValueFormat::kPlain : ValueFormat::kWrapped));
      CHECK(ring.inspect(stored).outcome == ValueOutcome::kAlreadyNew);
    }
  }

  TEST_CASE("Keyring: trying the last matching key first never changes which key a value is under") {
    const Keyring ring(testing::fernet_of(kNew), fernets({&kOld1, &kOld2}));
    const std::string under_old1 = testing::fernet_of(kOld1)->encrypt("a"sv, 1);
    const std::string under_old2 = testing::fernet_of(kOld2)->encrypt("b"sv, 2);
    const std::string under_new = testing::fernet_of(kNew)->encrypt("c"sv, 3);
    for (int round = 0; round < 3; ++round) {
      CHECK(ring.inspect(under_old2).key_index == 2);
      CHECK(ring.inspect(under_old2).key_index == 2);
      CHECK(ring.inspect(under_new).key_index == 0);
      CHECK(ring.inspect(under_old1).key_index == 1);
      CHECK(ring.rotate(under_new).outcome == ValueOutcome::kAlreadyNew);
    }
  }

  TEST_CASE("Keyring tries the new key first, then the old keys in the order given") {
    const std::string under_old2 = testing::fernet_of(kOld2)->encrypt("x"sv, 1);
    const std::string under_new = testing::fernet_of(kNew)->encrypt("x"sv, 1);
    {
      const Keyring ring(testing::fernet_of(kNew), fernets({&kOld2, &kOld1}));
      CHECK(ring.inspect(under_old2).key_index == 1);
      CHECK(ring.old_key_count() == 2);
      CHECK(ring.fingerprint(1) == testing::fernet_of(kOld2)->fingerprint());
      CHECK(ring.old_key(0).fingerprint() == testing::fernet_of(kOld2)->fingerprint());
      CHECK(ring.new_key().fingerprint() == testing::fernet_of(kNew)->fingerprint());
    }
    {
      // The same key twice: the first position wins.
      const Keyring ring(testing::fernet_of(kNew), fernets({&kOld1, &kOld2, &kOld2}));
      CHECK(ring.inspect(under_old2).key_index == 2);
    }
    {
      // The new key also listed as old: it is the new key (index 0).
      const Keyring ring(testing::fernet_of(kNew), fernets({&kOld1, &kNew}));
      CHECK(ring.inspect(under_new).key_index == 0);
      CHECK(ring.rotate(under_new).outcome == ValueOutcome::kAlreadyNew);
    }
    {
      const Keyring ring(testing::fernet_of(kNew), {});
      CHECK(ring.old_key_count() == 0);
      const ValueResult r = ring.rotate(under_old2);
      CHECK(r.outcome == ValueOutcome::kUndecryptable);
      CHECK(r.reason == FailureReason::kNoKeyMatches);
    }
  }

  TEST_CASE("Keyring rejects a null new key or null old key") {
    CHECK_THROWS_AS(Keyring(nullptr, {}), std::invalid_argument);
    std::vector<std::unique_ptr<const Fernet>> olds;
    olds.push_back(nullptr);
    CHECK_THROWS_AS(Keyring(testing::fernet_of(kNew), std::move(olds)), std::invalid_argument);
  }

  TEST_CASE("Keyring: undecryptable reasons - no key matches, bad padding, too short") {
    const Keyring ring = make_keyring();
    const Bytes iv(16, 7);
    struct Case {
      std::string name;
      std::string token;
      FailureReason reason;
    };
    const std::vector<Case> cases = {
        {"stranger key", testing::fernet_of(kStranger)->encrypt("x"sv, 1), FailureReason::kNoKeyMatches},
        {"bad padding under old key", testing::b64encode(testing::build_token(kOld1, 1, iv, Bytes(16, 0))),
         FailureReason::kBadPadding},
        {"bad padding under new key", testing::b64encode(testing::build_token(kNew, 1, iv, Bytes(32, 0))),
         FailureReason::kBadPadding},
        {"too short", testing::b64encode(Bytes(72, 0x80)), FailureReason::kTooShort},
    };
    for (const auto& c : cases) {
      for (const bool wrapped : {false, true}) {
        CAPTURE(c.name);
        CAPTURE(wrapped);
        const ValueResult r = ring.rotate(wrapped ? wrap(c.token) : c.token);
        CHECK(r.outcome == ValueOutcome::kUndecryptable);
        CHECK(r.reason == c.reason);
        CHECK(r.format == (wrapped ? ValueFormat::kWrapped : ValueFormat::kPlain));
        CHECK(r.key_index == -1);
        CHECK(r.rotated.empty());
        CHECK(ring.inspect(wrapped ? wrap(c.token) : c.token).reason == c.reason);
      }
    }
  }

  TEST_CASE("Keyring: plain text, JSON, empty and random base64 are not tokens") {
    const Keyring ring = make_keyring();
    std::vector<std::string> values = {
        "",
        "hello world",
        "Hello, World!",
        "{\"account\": \"12345678\", \"sort_code\": \"12-34-56\"}",
        "[1, 2, 3]",
        "12345678",
        "GB29NWBK60161331926819",
        "null",
        "\xff\xfe\x00\x01",
        "====",
    };
    std::mt19937_64 rng(11);
    for (int i = 0; i < 200; ++i) {
      Bytes raw = testing::random_bytes_of(rng, 1 + rng() % 120);
      if (raw[0] == 0x80) raw[0] = 0x81;
      if (raw[0] == 'g') raw[0] = 'h';  // base64 of base64 of a token would start with 'g'
      values.push_back(testing::b64encode(raw));
    }
    for (const auto& v : values) {
      CAPTURE(v);
      const ValueResult r = ring.rotate(v);
      CHECK(r.outcome == ValueOutcome::kNotToken);
      CHECK((r.reason == FailureReason::kBadBase64 || r.reason == FailureReason::kBadVersion));
      CHECK(r.key_index == -1);
      CHECK(r.rotated.empty());
      CHECK(ring.inspect(v).outcome == ValueOutcome::kNotToken);
    }
    CHECK(ring.inspect("hello world").reason == FailureReason::kBadBase64);  // 10 data characters
    CHECK(ring.inspect("AAAA").reason == FailureReason::kBadVersion);
  }

  TEST_CASE("Keyring rotates a token with whitespace around it and keeps the whitespace") {
    const Keyring ring = make_keyring();
    const Embedded plain{&kOld1, "spaced", 3, ValueFormat::kPlain};
    const Embedded wrapped{&kOld2, "spaced", 4, ValueFormat::kWrapped};
    check_rotates_in_place(ring, {"  ", "\n"}, {plain}, 1);
    check_rotates_in_place(ring, {"", "\r\n"}, {wrapped}, 2);
    check_rotates_in_place(ring, {"\t", " "}, {wrapped}, 2);
  }

  TEST_CASE("Keyring: tokens joined by commas under mixed keys are rotated in place") {
    const Keyring ring = make_keyring();
    const std::vector<Embedded> tokens = {{&kNew, "a", 10, ValueFormat::kPlain},
                                          {&kOld2, "", 11, ValueFormat::kPlain},
                                          {&kOld1, std::string(40, 'c'), 12, ValueFormat::kWrapped},
                                          {&kNew, "d", 13, ValueFormat::kWrapped},
                                          {&kOld1, "e", 14, ValueFormat::kPlain}};
    // key_index names the first old key found, format the first token's.
    check_rotates_in_place(ring, {"", ",", ",", ",", ",", ""}, tokens, 2);
    check_rotates_in_place(ring, {"", ", ", ", ", ", ", ", ", ""}, tokens, 2);
  }

  TEST_CASE("Keyring: tokens in a JSON string, a JSON array and inside text are rotated in place") {
    const Keyring ring = make_keyring();
    const Embedded a{&kOld1, "account 12345678", 1700000000, ValueFormat::kPlain};
    const Embedded b{&kOld2, "sort code 12-34-56", 1700000001, ValueFormat::kWrapped};
    const Embedded n{&kNew, "already", 1700000002, ValueFormat::kPlain};
    check_rotates_in_place(ring, {"\"", "\""}, {a}, 1);
    check_rotates_in_place(ring, {"[\"", "\",\"", "\", \"", "\"]"}, {a, b, n}, 1);
    check_rotates_in_place(ring, {"[\"", "\",\"", "\"]"}, {n, b}, 2);
    check_rotates_in_place(ring, {"{\"acct\": \"", "\", \"n\": 1}"}, {b}, 2);
    check_rotates_in_place(ring, {"acct: ", " (primary)"}, {a}, 1);
    check_rotates_in_place(ring, {"primary=", "; backup=", "."}, {a, b}, 1);
  }

  TEST_CASE("Keyring: bytes that are not UTF-8 around tokens are kept") {
    const Keyring ring = make_keyring();
    const Embedded a{&kOld1, "\xff\xfe", 5, ValueFormat::kPlain};
    const Embedded b{&kOld2, "b", 6, ValueFormat::kWrapped};
    check_rotates_in_place(ring, {std::string("\xff\xfe\x00", 3), std::string("\x80\0\xc3", 3), "\xed\xa0\x80"}, {a, b},
                           1);
  }

  TEST_CASE("Keyring: a value whose tokens are all under the new key is already new") {
    const Keyring ring = make_keyring();
    const std::vector<Embedded> tokens = {{&kNew, "x", 1, ValueFormat::kWrapped}, {&kNew, "y", 2, ValueFormat::kPlain}};
    const std::string value = compose({"[\"", "\", \"", "\"]"}, tokens);
    for (const ValueResult& r : {ring.inspect(value), ring.rotate(value)}) {
      CHECK(r.outcome == ValueOutcome::kAlreadyNew);
      CHECK(r.key_index == 0);
      CHECK(r.tokens == 2);
      CHECK(r.format == ValueFormat::kWrapped);
      CHECK(r.reason == FailureReason::kNone);
      CHECK(r.rotated.empty());
    }
  }

  TEST_CASE("Keyring: one bad token among good ones leaves the whole value untouched, with its reason") {
    const Keyring ring = make_keyring();
    const std::string good = stored_token({&kOld1, "good", 1, ValueFormat::kPlain});
    const std::string fresh = stored_token({&kNew, "fresh", 2, ValueFormat::kWrapped});
    const std::string stranger = testing::fernet_of(kStranger)->encrypt("x"sv, 1);
    const std::string bad_padding = testing::b64encode(testing::build_token(kOld1, 1, Bytes(16, 7), Bytes(16, 0)));
    struct Case {
      std::string bad;
      FailureReason reason;
      ValueOutcome outcome;
      ValueFormat format;
    };
    const std::vector<Case> cases = {
        {stranger, FailureReason::kNoKeyMatches, ValueOutcome::kUndecryptable, ValueFormat::kPlain},
        {wrap(stranger), FailureReason::kNoKeyMatches, ValueOutcome::kUndecryptable, ValueFormat::kWrapped},
        {bad_padding, FailureReason::kBadPadding, ValueOutcome::kUndecryptable, ValueFormat::kPlain},
        {good.substr(0, good.size() - 3), FailureReason::kBadBase64, ValueOutcome::kNotToken, ValueFormat::kPlain},
        {"gAAAAA==", FailureReason::kTooShort, ValueOutcome::kUndecryptable, ValueFormat::kPlain},
        {"gAAAAA", FailureReason::kBadBase64, ValueOutcome::kNotToken, ValueFormat::kPlain},
        {"gAAAAAhello", FailureReason::kBadBase64, ValueOutcome::kNotToken, ValueFormat::kPlain},
    };
    for (const Case& c : cases) {
      for (const std::string& value : {good + "," + c.bad + "," + fresh, "[\"" + fresh + "\", \"" + c.bad + "\"]",
                                       "note " + c.bad + " then " + good}) {
        CAPTURE(value);
        for (const ValueResult& r : {ring.inspect(value), ring.rotate(value)}) {
          CHECK(r.outcome == c.outcome);
          CHECK(r.reason == c.reason);
          CHECK(r.format == c.format);
          CHECK(r.key_index == -1);
          CHECK(r.tokens == (value[0] == '[' ? 2 : 3) - (value[0] == 'n' ? 1 : 0));
          CHECK(r.rotated.empty());
        }
      }
    }
  }

  TEST_CASE("Keyring: a token prefix inside a run of base64 characters leaves the value untouched") {
    const Keyring ring = make_keyring();
    const std::string token = stored_token({&kOld1, std::string(32, 'x'), 1, ValueFormat::kPlain});  // no padding
    const std::string wrapped = stored_token({&kOld1, "x", 1, ValueFormat::kWrapped});
    for (const std::string& value : {"x" + token + " ", " " + token + token, "[\"" + token + "\",\"id" + token + "\"]",
                                     "a-" + wrapped + ",", std::string("9gAAAAA ")}) {
      CAPTURE(value);
      for (const ValueResult& r : {ring.inspect(value), ring.rotate(value)}) {
        CHECK(r.outcome == ValueOutcome::kUndecryptable);
        CHECK(r.reason == FailureReason::kUnclearTokenBoundary);
        CHECK(r.key_index == -1);
        CHECK(r.tokens == 0);
        CHECK(r.rotated.empty());
      }
      CHECK_FALSE(token_format(value).has_value());
    }
  }

  TEST_CASE("Keyring: a wrapped token that would change length where it cannot fails the check") {
    // The inner token text ends in a byte base64 skips; its canonical
    // re-encryption is shorter, loses the padding, and would run into the text
    // after it.
    const Keyring ring = make_keyring();
    const std::string token = testing::fernet_of(kOld1)->encrypt(ByteView(std::string(16, 'p')), 1);
    REQUIRE(token.size() == 120);
    const std::string value = " " + wrap(token + "\n") + "abc";
    const ValueResult r = ring.rotate(value);
    CHECK(r.outcome == ValueOutcome::kUndecryptable);
    CHECK(r.reason == FailureReason::kVerifyFailed);
    CHECK(r.format == ValueFormat::kWrapped);
    CHECK(r.key_index == -1);
    CHECK(r.rotated.empty());
    CHECK(ring.inspect(value).outcome == ValueOutcome::kUnderOldKey);
    // With a separator after it, the same token is rotated in place.
    const ValueResult spaced = ring.rotate(" " + wrap(token + "\n") + " abc");
    REQUIRE(spaced.outcome == ValueOutcome::kRotated);
    CHECK(spaced.rotated == " " + spaced.rotated.substr(1, 160) + " abc");
  }

  TEST_CASE("Keyring: a token read across foreign bytes is found but never rewritten") {
    const Keyring ring = make_keyring();
    // No token prefix (a timestamp from 2^36 on), or a prefix broken by a byte base64 skips.
    const std::string late = testing::fernet_of(kOld2)->encrypt("late"sv, std::uint64_t{1} << 40);
    const std::string split = testing::fernet_of(kOld1)->encrypt("split"sv, 1);
    for (const std::string& value :
         {" " + late + "\n", "\"" + late + "\"", split.substr(0, 3) + "\n" + split.substr(3)}) {
      CAPTURE(value);
      const ValueResult inspected = ring.inspect(value);
      CHECK(inspected.outcome == ValueOutcome::kUnderOldKey);
      CHECK(inspected.key_index == (value == " " + late + "\n" || value[0] == '"' ? 2 : 1));
      CHECK(inspected.tokens == 1);
      const ValueResult r = ring.rotate(value);
      CHECK(r.outcome == ValueOutcome::kUndecryptable);
      CHECK(r.reason == FailureReason::kForeignBytesInToken);
      CHECK(r.key_index == -1);
      CHECK(r.tokens == 1);
      CHECK(r.rotated.empty());
      CHECK(token_format(value) == ValueFormat::kPlain);
    }
    const std::string fresh = testing::fernet_of(kNew)->encrypt("fresh"sv, std::uint64_t{1} << 40);
    CHECK(ring.rotate(" " + fresh).outcome == ValueOutcome::kAlreadyNew);
    CHECK(ring.rotate(" " + wrap(fresh) + " ").outcome == ValueOutcome::kAlreadyNew);
    const ValueResult text = ring.rotate("hello, world");
    CHECK(text.outcome == ValueOutcome::kNotToken);
    CHECK(text.tokens == 0);
  }

  TEST_CASE("Keyring: a 1 MB value with tokens in it") {
    const Keyring ring = make_keyring();
    std::mt19937_64 rng(3);
    std::vector<std::string> texts = {""};
    std::vector<Embedded> tokens;
    std::size_t size = 0;
    while (size < (1u << 20)) {
      std::string& text = texts.back();
      for (std::size_t i = 0, n = 1 + rng() % 4000; i < n; ++i) text += " ,;:\"{}[]\n\x80\xffxyz019"[rng() % 18];
      text += ' ';
      size += text.size();
      const Bytes* key = rng() % 3 == 0 ? &kNew : &kOld1;
      tokens.push_back({key, "p", rng() % 1000, rng() % 2 == 0 ? ValueFormat::kPlain : ValueFormat::kWrapped});
      texts.emplace_back(" ");
    }
    texts.back() += "end";
    check_rotates_in_place(ring, texts, tokens, 1);
  }

  TEST_CASE("token_format: structure only - plain or wrapped tokens under any key, nullopt otherwise") {
    const std::string token = testing::fernet_of(kStranger)->encrypt("who knows"sv, 5);
    CHECK(token_format(token) == ValueFormat::kPlain);
    CHECK(token_format(" " + token + "\n") == ValueFormat::kPlain);
    CHECK(token_format(wrap(token)) == ValueFormat::kWrapped);
    CHECK(token_format(wrap(token) + "\n") == ValueFormat::kWrapped);
    const Bytes iv(16, 1);
    CHECK(token_format(testing::b64encode(testing::build_token(kNew, 1, iv, Bytes(16, 0)))) == ValueFormat::kPlain);
    // Structurally broken: too short, bad padding characters, wrong version, not base64.
    CHECK_FALSE(token_format(testing::b64encode(Bytes(72, 0x80))).has_value());
    CHECK_FALSE(token_format(wrap(testing::b64encode(Bytes(72, 0x80)))).has_value());
    CHECK_FALSE(token_format(token.substr(0, token.size() - 1)).has_value());
    CHECK_FALSE(token_format(testing::b64encode(Bytes(100, 0x81))).has_value());
    for (const char* v : {"", "hello world", "{\"a\": 1}", "AAAA", "====", "gAAAAA"}) {
      CAPTURE(v);
      CHECK_FALSE(token_format(v).has_value());
    }
    // It agrees with inspect() on the format wherever inspect finds a token.
    const Keyring ring = make_keyring();
    const std::string under_old = testing::fernet_of(kOld2)->encrypt("x"sv, 1);
    for (const std::string& v : {under_old, wrap(under_old)}) {
      const ValueResult r = ring.inspect(v);
      REQUIRE(token_format(v).has_value());
      CHECK(*token_format(v) == r.format);
    }
  }

  // Python's service reads these: Fernet.decrypt(urlsafe_b64decode(value)) skips
  // the junk when it decodes the token, so rekey must rotate them too (a leading
  // byte 0x80..0x83 also makes the value parse as a plain token no key verifies).
  TEST_CASE("Keyring: wrapped values whose token text has leading bytes base64 skips are rotated") {
    const Keyring ring = make_keyring();
    const std::string token = testing::fernet_of(kOld1)->encrypt("lead"sv, 8);
    int rotated = 0;
    const std::vector<std::string> prefixes = {" ", "\n", "\t", std::string(1, '\0'), "=", "\x80", "\x83", "!"};
    for (const auto& prefix : prefixes) {
      if (ring.rotate(wrap(prefix + token)).outcome == ValueOutcome::kRotated) ++rotated;
    }
    CHECK(rotated == static_cast<int>(prefixes.size()));
  }

  TEST_CASE("Keyring to_string names for formats, outcomes and reasons") {
    CHECK(std::string(to_string(ValueFormat::kPlain)) == "plain");
    CHECK(std::string(to_string(ValueFormat::kWrapped)) == "wrapped");
    CHECK(std::string(to_string(ValueOutcome::kAlreadyNew)) == "already_new");
    CHECK(std::string(to_string(ValueOutcome::kUnderOldKey)) == "under_old_key");
    CHECK(std::string(to_string(ValueOutcome::kRotated)) == "rotated");
    CHECK(std::string(to_string(ValueOutcome::kUndecryptable)) == "undecryptable");
    CHECK(std::string(to_string(ValueOutcome::kNotToken)) == "not_a_token");
    CHECK(std::string(to_string(FailureReason::kNone)) == "none");
    CHECK(std::string(to_string(FailureReason::kBadBase64)) == "bad_base64");
    CHECK(std::string(to_string(FailureReason::kBadVersion)) == "bad_version");
    CHECK(std::string(to_string(FailureReason::kTooShort)) == "too_short");
    CHECK(std::string(to_string(FailureReason::kNoKeyMatches)) == "hmac_mismatch_all_keys");
    CHECK(std::string(to_string(FailureReason::kBadPadding)) == "bad_padding");
    CHECK(std::string(to_string(FailureReason::kVerifyFailed)) == "reencrypt_verify_failed");
    CHECK(std::string(to_string(FailureReason::kUnclearTokenBoundary)) == "token_boundary_unclear");
    CHECK(std::string(to_string(FailureReason::kForeignBytesInToken)) == "token_with_foreign_bytes");
  }

  TEST_CASE("token signs: a whole token of any timestamp is one; random base64 of other lengths never") {
    for (const std::uint64_t ts :
         {std::uint64_t{1700000000}, std::uint64_t{1} << 36, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
      CAPTURE(ts);
      const std::string token = testing::fernet_of(kOld1)->encrypt("x"sv, ts);
      CHECK(is_whole_token(token));
      CHECK(is_whole_token(wrap(token)));
      CHECK(holds_token(token));
      CHECK(holds_token("note: " + token) == (ts < (std::uint64_t{1} << 36)));  // a prefix, or nothing to see
    }
    std::mt19937_64 rng(5);
    for (int i = 0; i < 2000; ++i) {
      Bytes raw = testing::random_bytes_of(rng, 80);
      raw[0] = 0x80;  // the right version byte, but no token's length
      CHECK_FALSE(is_whole_token(testing::b64encode(raw)));
      CHECK_FALSE(is_whole_token(wrap(testing::b64encode(raw))));
    }
    CHECK_FALSE(is_whole_token(""));
    CHECK_FALSE(is_whole_token("hello world"));
    const TokenSigns& signs = token_signs();
    CHECK(signs.anywhere == std::vector<std::string>{"gAAAAA", "Z0FBQUFB"});
    CHECK(signs.first_chars == "gZ");
    CHECK(signs.min_whole_length == 100);
    CHECK(testing::fernet_of(kOld1)->encrypt(""sv, 1).size() == signs.min_whole_length);
  }

  TEST_CASE("Keyring: a token without a prefix beside tokens with one leaves the whole value untouched") {
    const Keyring ring = make_keyring();
    const std::string usual = testing::fernet_of(kOld1)->encrypt("usual"sv, 1700000000);
    const std::string far = testing::fernet_of(kOld1)->encrypt("far future"sv, std::uint64_t{1} << 40);
    for (const std::string& value :
         {usual + "," + far, "[\"" + far + "\", \"" + usual + "\"]", usual + " " + wrap(far)}) {
      CAPTURE(value);
      const ValueResult r = ring.rotate(value);
      CHECK(r.outcome == ValueOutcome::kUndecryptable);
      CHECK(r.reason == FailureReason::kUnclearTokenBoundary);
      CHECK(r.rotated.empty());
    }
    CHECK(ring.rotate(far).outcome == ValueOutcome::kRotated);  // alone, it is read as one token
  }
}

TEST_SUITE("crypto.keyring") {
  TEST_CASE("token_format: plain and wrapped tokens, not decoys") {
    const auto fernet = testing::fernet_of(testing::seeded_key(7));
    const std::string token = fernet->encrypt("4111 1111"sv, 1700000000);
    CHECK(token_format(token) == ValueFormat::kPlain);
    CHECK(token_format(testing::b64encode(token)) == ValueFormat::kWrapped);
    for (const char* decoy : {"", "hello world", "user@example.com", "{\"a\": 1}", "gAAAAA", "Z0FBQUFB",
                              "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"}) {
      CAPTURE(decoy);
      CHECK_FALSE(token_format(decoy).has_value());
    }
  }
}

}  // namespace
}  // namespace rekey::crypto
