// Unit tests for crypto/fernet: the official Fernet spec vectors, tampering,
// token layout and error reporting.
#include "crypto/fernet.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/crypto_test_util.h"

namespace rekey::crypto {
namespace {

using nlohmann::json;
using testing::Bytes;
using namespace std::string_view_literals;

const char* const kVectorDir = "/usr/lib/python3/dist-packages/cryptography_vectors/fernet/";
constexpr std::int64_t kMaxClockSkew = 60;  // cryptography.fernet._MAX_CLOCK_SKEW

json load_vectors(const std::string& name) { return json::parse(testing::read_file(std::string(kVectorDir) + name)); }

std::unique_ptr<const Fernet> fernet_from_secret(const std::string& secret) {
  return testing::fernet_of(testing::b64decode(secret));
}

TEST_SUITE("crypto.fernet") {
  TEST_CASE("parse_iso8601 helper converts ISO times with offsets to epoch seconds") {
    CHECK(testing::parse_iso8601("1970-01-01T00:00:00Z") == 0);
    CHECK(testing::parse_iso8601("1970-01-01T00:00:00+00:00") == 0);
    CHECK(testing::parse_iso8601("1985-10-26T01:20:00-07:00") == 499162800);  // Python: datetime.timestamp()
    CHECK(testing::parse_iso8601("2000-03-01T00:00:00Z") == 951868800);
    CHECK(testing::parse_iso8601("2024-02-29T23:59:59+01:00") == 1709247599);
  }

  TEST_CASE("Fernet spec vectors: generate.json - encrypt_with_iv produces the exact token") {
    const json vectors = load_vectors("generate.json");
    REQUIRE(vectors.size() >= 1);
    for (const auto& v : vectors) {
      const auto f = fernet_from_secret(v.at("secret").get<std::string>());
      Bytes iv;
      for (const auto& b : v.at("iv")) iv.push_back(b.get<std::uint8_t>());
      const std::int64_t now = testing::parse_iso8601(v.at("now").get<std::string>());
      const std::string src = v.at("src").get<std::string>();
      const std::string token =
          f->encrypt_with_iv(std::string_view(src), static_cast<std::uint64_t>(now), ByteView(iv));
      CHECK(token == v.at("token").get<std::string>());
    }
  }

  TEST_CASE("Fernet spec vectors: verify.json - decrypt gives src, timestamp within ttl") {
    const json vectors = load_vectors("verify.json");
    REQUIRE(vectors.size() >= 1);
    for (const auto& v : vectors) {
      const auto f = fernet_from_secret(v.at("secret").get<std::string>());
      const std::string token = v.at("token").get<std::string>();
      SecretBytes plaintext;
      REQUIRE(f->decrypt(token, plaintext) == TokenError::kNone);
      CHECK(testing::string_of(plaintext) == v.at("src").get<std::string>());

      ParsedToken parsed;
      REQUIRE(ParsedToken::parse(token, parsed) == TokenError::kNone);
      const std::int64_t now = testing::parse_iso8601(v.at("now").get<std::string>());
      const auto ts = static_cast<std::int64_t>(parsed.timestamp());
      CHECK(ts + v.at("ttl_sec").get<std::int64_t>() >= now);
      CHECK(ts <= now + kMaxClockSkew);
    }
  }

  TEST_CASE(
      "Fernet spec vectors: invalid.json - every vector fails, except ttl-only ones whose timestamp is out of window") {
    // rekey (like the service) never passes a ttl, so a vector that is invalid
    // only because of its timestamp must decrypt; the window check is the
    // caller's. Expected errors for the others are rekey's own reasons.
    const std::map<std::string, TokenError> expected = {
        {"incorrect mac", TokenError::kAuthentication},
        {"too short", TokenError::kTooShort},
        {"invalid base64", TokenError::kBadBase64},
        {"payload size not multiple of block size", TokenError::kTooShort},  // 72 bytes, below the minimum 73
        {"payload padding error", TokenError::kBadCiphertext},
        {"far-future TS (unacceptable clock skew)", TokenError::kNone},
        {"expired TTL", TokenError::kNone},
        {"incorrect IV (causes padding error)", TokenError::kBadCiphertext},
    };
    const json vectors = load_vectors("invalid.json");
    REQUIRE(vectors.size() == expected.size());
    std::set<std::string> seen;
    for (const auto& v : vectors) {
      const std::string desc = v.at("desc").get<std::string>();
      CAPTURE(desc);
      REQUIRE(expected.count(desc) == 1);
      seen.insert(desc);
      const auto f = fernet_from_secret(v.at("secret").get<std::string>());
      const std::string token = v.at("token").get<std::string>();
      const std::int64_t now = testing::parse_iso8601(v.at("now").get<std::string>());
      const std::int64_t ttl = v.at("ttl_sec").get<std::int64_t>();

      SecretBytes plaintext = to_secret("stale");
      const TokenError error = f->decrypt(token, plaintext);
      CHECK(error == expected.at(desc));

      ParsedToken parsed;
      const bool parses = ParsedToken::parse(token, parsed) == TokenError::kNone;
      const auto ts = static_cast<std::int64_t>(parsed.timestamp());
      const bool in_window = parses && ts >= now - ttl && ts <= now + kMaxClockSkew;
      if (error == TokenError::kNone) {
        // Fails only because of ttl / clock skew.
        CHECK(parses);
        CHECK_FALSE(in_window);
        CHECK(plaintext.empty());  // Python's Fernet(secret).decrypt(token) gives b'' for both
      } else {
        CHECK(plaintext.empty());
        if (parses) CHECK(in_window);  // so the failure is the token's, not the clock's
      }
    }
    CHECK(seen.size() == expected.size());
  }

  TEST_CASE("Fernet::encrypt/decrypt round trip for plaintext lengths 0..100 and 10 KB") {
    const auto f = testing::fernet_of(testing::seeded_key(7));
    std::mt19937_64 rng(2);
    std::vector<std::size_t> sizes;
    for (std::size_t n = 0; n <= 100; ++n) sizes.push_back(n);
    sizes.push_back(10240);
    for (const std::size_t n : sizes) {
      const Bytes pt = testing::random_bytes_of(rng, n);
      const std::uint64_t ts = rng();
      const std::string token = f->encrypt(ByteView(pt), ts);
      // Layout: 0x80 | ts | iv | ciphertext (PKCS7, at least one pad byte) | mac.
      const std::size_t raw_size = 1 + 8 + 16 + (n / 16 + 1) * 16 + 32;
      CHECK(token.size() == (raw_size + 2) / 3 * 4);
      CHECK(token[0] == 'g');
      ParsedToken parsed;
      REQUIRE(ParsedToken::parse(token, parsed) == TokenError::kNone);
      CHECK(parsed.bytes().size() == raw_size);
      CHECK(parsed.timestamp() == ts);
      SecretBytes out;
      REQUIRE(f->decrypt(parsed, out) == TokenError::kNone);
      CHECK(Bytes(out.begin(), out.end()) == pt);
    }
  }

  TEST_CASE("Fernet tokens keep timestamps 0 and 2^64-1 and start with gAAAAA below 2^36") {
    const auto f = testing::fernet_of(testing::seeded_key(1));
    for (const std::uint64_t ts : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{1700000000},
                                   (std::uint64_t{1} << 36) - 1, std::uint64_t{1} << 36, ~std::uint64_t{0}}) {
      const std::string token = f->encrypt("x"sv, ts);
      ParsedToken parsed;
      REQUIRE(ParsedToken::parse(token, parsed) == TokenError::kNone);
      CHECK(parsed.timestamp() == ts);
      // 'g' + "AAAAA" is 0x80 and 28 zero bits: the timestamp's top 28 bits.
      CHECK((token.rfind("gAAAAA", 0) == 0) == (ts < (std::uint64_t{1} << 36)));
    }
  }

  TEST_CASE("Fernet::encrypt uses a fresh IV each time") {
    const auto f = testing::fernet_of(testing::seeded_key(3));
    std::set<std::string> tokens;
    for (int i = 0; i < 100; ++i) tokens.insert(f->encrypt("same"sv, 42));
    CHECK(tokens.size() == 100);
  }

  TEST_CASE("Fernet::create rejects keys that are not 32 bytes; encrypt_with_iv rejects IVs that are not 16") {
    for (const std::size_t n : {0, 16, 31, 33, 64}) {
      const Bytes key(n, 1);
      CHECK_THROWS_AS(Fernet::create(ByteView(key)), std::invalid_argument);
    }
    const auto f = testing::fernet_of(testing::seeded_key(0));
    const Bytes iv15(15), iv17(17);
    CHECK_THROWS_AS(f->encrypt_with_iv("x"sv, 0, ByteView(iv15)), std::invalid_argument);
    CHECK_THROWS_AS(f->encrypt_with_iv("x"sv, 0, ByteView(iv17)), std::invalid_argument);
  }

  TEST_CASE("Fernet::fingerprint is the first 8 hex digits of SHA-256 of the raw key") {
    // Python: hashlib.sha256(urlsafe_b64decode(secret)).hexdigest()[:8]
    const auto f = fernet_from_secret("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
    CHECK(f->fingerprint() == "cbeb362f");
    CHECK(testing::fernet_of(testing::seeded_key(0))->fingerprint() !=
          testing::fernet_of(testing::seeded_key(1))->fingerprint());
  }

  TEST_CASE("Fernet::decrypt reports each error class and leaves the plaintext empty") {
    const Bytes key = testing::seeded_key(9);
    const auto f = testing::fernet_of(key);
    const Bytes iv(16, 0xab);
    auto check = [&](std::string_view token, TokenError want) {
      SecretBytes pt = to_secret("previous contents");
      CHECK(f->decrypt(token, pt) == want);
      CHECK(pt.empty());
    };
    check("gAAAAA!", TokenError::kBadBase64);  // 6 data characters: incorrect padding
    check("", TokenError::kBadVersion);        // decodes to nothing
    check("AAAA", TokenError::kBadVersion);    // 0x00 ...
    check(testing::b64encode(Bytes{0x81, 0, 0}), TokenError::kBadVersion);
    check(testing::b64encode(Bytes(72, 0x80)), TokenError::kTooShort);
    check(testing::fernet_of(testing::seeded_key(10))->encrypt("x"sv, 1), TokenError::kAuthentication);

    // Authenticated under `key` but malformed after decryption.
    Bytes bad_pad(16, 0);  // last byte 0: not PKCS7
    check(testing::b64encode(testing::build_token(key, 5, iv, bad_pad)), TokenError::kBadCiphertext);
    Bytes pad17(16, 17);  // pad byte larger than the block
    check(testing::b64encode(testing::build_token(key, 5, iv, pad17)), TokenError::kBadCiphertext);
    Bytes inconsistent(32, 4);
    inconsistent[29] = 3;  // last four bytes 03 04 04 04 but claims 4 bytes of padding
    check(testing::b64encode(testing::build_token(key, 5, iv, inconsistent)), TokenError::kBadCiphertext);
    const Bytes ragged(33, 0);  // ciphertext not a whole number of blocks (raw)
    check(testing::b64encode(testing::build_token(key, 5, iv, ragged, /*raw=*/true)), TokenError::kBadCiphertext);

    // And a well-formed hand-built token decrypts: full block of padding.
    Bytes full(16, 16);
    SecretBytes pt;
    CHECK(f->decrypt(testing::b64encode(testing::build_token(key, 5, iv, full)), pt) == TokenError::kNone);
    CHECK(pt.empty());
    Bytes abc = {'a', 'b', 'c'};
    abc.resize(16, 13);
    CHECK(f->decrypt(testing::b64encode(testing::build_token(key, 5, iv, abc)), pt) == TokenError::kNone);
    CHECK(testing::string_of(pt) == "abc");
  }

  TEST_CASE("TokenError to_string names") {
    CHECK(std::string(to_string(TokenError::kNone)) == "ok");
    CHECK(std::string(to_string(TokenError::kBadBase64)) == "bad_base64");
    CHECK(std::string(to_string(TokenError::kBadVersion)) == "bad_version");
    CHECK(std::string(to_string(TokenError::kTooShort)) == "too_short");
    CHECK(std::string(to_string(TokenError::kAuthentication)) == "hmac_mismatch");
    CHECK(std::string(to_string(TokenError::kBadCiphertext)) == "bad_padding");
  }

  TEST_CASE("Tamper: every single-bit flip of the decoded token is rejected") {
    const auto f = testing::fernet_of(testing::seeded_key(20));
    for (const std::size_t n : {0, 5, 16, 40}) {
      const std::string token = f->encrypt(ByteView(Bytes(n, 0x5a)), 1234567890);
      const Bytes raw = testing::b64decode(token);
      CAPTURE(n);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
          Bytes flipped = raw;
          flipped[i] ^= static_cast<std::uint8_t>(1u << bit);
          SecretBytes pt;
          const TokenError error = f->decrypt(testing::b64encode(flipped), pt);
          CAPTURE(i);
          CAPTURE(bit);
          CHECK(error == (i == 0 ? TokenError::kBadVersion : TokenError::kAuthentication));
          CHECK(pt.empty());
        }
      }
    }
  }

  TEST_CASE("Tamper: every truncation of the token text is rejected (as Python rejects them all)") {
    // Python (urlsafe_b64decode + Fernet): removing only the '=' padding is
    // "Incorrect padding", and cutting at a quantum boundary drops bytes the
    // HMAC covers, so no proper prefix of a token decrypts.
    const auto f = testing::fernet_of(testing::seeded_key(21));
    int padded_tokens = 0;
    int unpadded_tokens = 0;
    for (const std::size_t n : {0, 1, 16, 17, 32, 33}) {  // tokens ending in "==", "=" and no padding
      const std::string token = f->encrypt(ByteView(Bytes(n, 0x33)), 99);
      ++(token.back() == '=' ? padded_tokens : unpadded_tokens);
      CAPTURE(token);
      for (std::size_t len = 0; len < token.size(); ++len) {
        SecretBytes pt;
        const TokenError error = f->decrypt(std::string_view(token).substr(0, len), pt);
        CAPTURE(len);
        CHECK(error != TokenError::kNone);
        CHECK(pt.empty());
        if (len < token.size() && token.find('=') != std::string::npos && len >= token.find('=')) {
          CHECK(error == TokenError::kBadBase64);  // only padding removed
        }
      }
    }
    CHECK(padded_tokens > 0);
    CHECK(unpadded_tokens > 0);
  }

  TEST_CASE("Fernet objects are usable from several threads at once") {
    const auto f = testing::fernet_of(testing::seeded_key(30));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(static_cast<std::uint64_t>(t));
        for (int i = 0; i < 2000; ++i) {
          const Bytes pt = testing::random_bytes_of(rng, rng() % 64);
          SecretBytes out;
          const std::string token = f->encrypt(ByteView(pt), static_cast<std::uint64_t>(i));
          if (f->decrypt(token, out) != TokenError::kNone || Bytes(out.begin(), out.end()) != pt) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures.load() == 0);
  }
}

}  // namespace
}  // namespace rekey::crypto
