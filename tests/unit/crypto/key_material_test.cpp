// Unit tests for crypto/key_material: PBKDF2 passphrase keys, lenient Fernet
// key decoding and key/passphrase generation.
#include "crypto/key_material.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

#include "crypto/fernet.h"
#include "tests/support/crypto_test_util.h"

namespace rekey::crypto {
namespace {

using testing::Bytes;
using testing::to_hex;
using namespace std::string_view_literals;

std::string derive_hex(std::string_view passphrase, std::string salt, std::uint32_t iterations) {
  KdfParams params;
  params.salt = std::move(salt);
  params.iterations = iterations;
  const SecretBytes key = derive_passphrase_key(passphrase, params);
  return to_hex(ByteView(key));
}

constexpr char kSpecKey[] = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
constexpr char kSpecKeyHex[] = "730ff4c7af3d46923e8ed451ee813c87f790b0a226bc96a92de49b5e9c05e1ee";

// decode_fernet_key result as hex, or "ERR".
std::string key_hex(std::string_view text) {
  SecretBytes out = to_secret("junk");
  if (!decode_fernet_key(text, out)) {
    CHECK(out.empty());
    return "ERR";
  }
  return to_hex(ByteView(out));
}

TEST_SUITE("crypto.key_material") {
  // Expected values: hashlib.pbkdf2_hmac('sha256', passphrase, salt, iterations, 32).hex()
  TEST_CASE("derive_passphrase_key: PBKDF2-HMAC-SHA256 known answers computed with Python") {
    CHECK(KdfParams{}.salt == "faithful_finances_salt_v1");
    CHECK(KdfParams{}.iterations == 100000);
    const KdfParams defaults;
    CHECK(to_hex(ByteView(derive_passphrase_key("correct horse battery staple"sv, defaults))) ==
          "71de739334676cabb2d3b75245d30a693f522cdd6a6fad6ba860628152b71a87");
    CHECK(derive_hex("", "faithful_finances_salt_v1", 100000) ==
          "c9ada5211fadc12dbd30fa0337a1c2c0ced77516170931b49ca3363d7f50bb54");
    CHECK(derive_hex(std::string(100, 'x'), "faithful_finances_salt_v1", 100000) ==
          "fe72f9f40bc36734765cf6572052219176f50b2c8eae3dba7926d8a511f8f428");
    CHECK(derive_hex("p\xc3\xa4ss", "faithful_finances_salt_v1", 1) ==
          "09789772c171049e5a4af6028caaa22bd50fe1beaea720ce84bc8fc68d9a1bb7");
    CHECK(derive_hex("password", "salt", 2) == "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
  }

  TEST_CASE("derive_passphrase_key output is a usable 32-byte Fernet key") {
    const SecretBytes key = derive_passphrase_key("some passphrase"sv, KdfParams{});
    CHECK(key.size() == Fernet::kKeySize);
    const auto f = Fernet::create(key);
    SecretBytes pt;
    CHECK(f->decrypt(f->encrypt("ok"sv, 1), pt) == TokenError::kNone);
  }

  // Expected values: base64.urlsafe_b64decode(text) as cryptography's Fernet(key) does it.
  TEST_CASE("decode_fernet_key accepts what Fernet(key) accepts, leniently") {
    CHECK(key_hex(kSpecKey) == kSpecKeyHex);
    CHECK(key_hex("cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=") == kSpecKeyHex);    // standard alphabet
    CHECK(key_hex(std::string(" ") + kSpecKey + "\n") == kSpecKeyHex);                // surrounding whitespace
    CHECK(key_hex("cw_0x689RpI-jtRR7oE8\nh_eQsKImvJapLeSbXpwF4e4=") == kSpecKeyHex);  // embedded newline
    CHECK(key_hex(std::string(kSpecKey) + "junk") == kSpecKeyHex);                    // junk after the padding
    CHECK(key_hex(std::string(kSpecKey) + "==") == kSpecKeyHex);
    CHECK(key_hex(std::string(kSpecKey) + "\x80") == kSpecKeyHex);                  // non-ASCII byte skipped
    CHECK(key_hex("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e5=") == kSpecKeyHex);  // non-canonical last bits
    CHECK(key_hex("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") == std::string(64, '0'));
  }

  TEST_CASE("decode_fernet_key rejects missing padding and keys that are not 32 bytes") {
    CHECK(key_hex("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4") == "ERR");   // Incorrect padding
    CHECK(key_hex("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4A") == "ERR");  // 33 bytes
    CHECK(key_hex("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF====") == "ERR");  // 30 bytes
    CHECK(key_hex("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==") == "ERR");  // 31 bytes
    CHECK(key_hex("") == "ERR");
    CHECK(key_hex("not a key") == "ERR");
    CHECK(key_hex(std::string(64, 'a')) == "ERR");  // a 64-character passphrase is 48 bytes
  }

  TEST_CASE("generate_passphrase: length, url-safe alphabet, uniqueness, bad lengths") {
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (const std::size_t chars : {4, 8, 32, 44, 64, 96, 128}) {
      std::set<std::string> seen;
      for (int i = 0; i < 50; ++i) {
        const SecretBytes p = generate_passphrase(chars);
        const std::string s = testing::string_of(p);
        CHECK(s.size() == chars);
        CHECK(s.find_first_not_of(alphabet) == std::string::npos);  // no '=' since chars % 4 == 0
        seen.insert(s);
      }
      CHECK(seen.size() == 50);
    }
    CHECK(generate_passphrase(64).size() >= kMinEncryptionKeyChars);
    CHECK(generate_passphrase(96).size() >= kMinSecretKeyChars);
    for (const std::size_t bad : {0, 1, 2, 3, 5, 30, 63}) {
      CHECK_THROWS_AS(generate_passphrase(bad), std::invalid_argument);
    }
  }

  TEST_CASE("generate_passphrase uses the whole alphabet") {
    std::set<char> used;
    for (int i = 0; i < 100; ++i) {
      for (const auto c : generate_passphrase(128)) used.insert(static_cast<char>(c));
    }
    CHECK(used.size() == 64);
  }

  TEST_CASE("generate_fernet_key: 44 characters that decode to 32 bytes, as Fernet.generate_key()") {
    std::set<std::string> seen;
    for (int i = 0; i < 50; ++i) {
      const SecretBytes text = generate_fernet_key();
      const std::string s = testing::string_of(text);
      CHECK(s.size() == 44);
      CHECK(s.back() == '=');
      CHECK(s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") ==
            std::string::npos);
      SecretBytes raw;
      REQUIRE(decode_fernet_key(s, raw));
      CHECK(raw.size() == 32);
      CHECK(testing::b64encode(Bytes(raw.begin(), raw.end())) == s);
      seen.insert(s);
    }
    CHECK(seen.size() == 50);
  }
}

}  // namespace
}  // namespace rekey::crypto
