// Fernet tokens, byte-compatible with Python's cryptography.fernet.
//
// A token is base64url(0x80 | timestamp:be64 | iv:16 | AES-128-CBC(PKCS7) | HMAC-SHA256).
// Fernet objects are immutable after creation and safe to share between
// threads. They keep OpenSSL out of this header and wipe their key material
// when destroyed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret_bytes.h"

namespace rekey::crypto {

// Why a token could not be decrypted. Authentication failure is a single
// error whatever the cause, as in Python (InvalidToken).
enum class TokenError {
  kNone,
  kBadBase64,       // not base64 as Python's urlsafe_b64decode accepts it
  kBadVersion,      // decoded bytes do not start with 0x80
  kTooShort,        // too few bytes for header, one block and the HMAC
  kAuthentication,  // the HMAC does not verify under this key
  kBadCiphertext,   // authenticated, but the ciphertext or its padding is malformed
};

const char* to_string(TokenError error);

// The decoded bytes of one token. Parse once, then try several keys.
class ParsedToken {
 public:
  // Returns kNone on success; otherwise `out` is unspecified.
  static TokenError parse(std::string_view text, ParsedToken& out);
  // As parse(), from bytes already decoded.
  static TokenError from_bytes(std::vector<std::uint8_t>&& bytes, ParsedToken& out);

  std::uint64_t timestamp() const;
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class Fernet {
 public:
  static constexpr std::size_t kKeySize = 32;

  // Throws std::invalid_argument unless `key` is 32 bytes (signing key, then
  // encryption key). The key is copied into wiped storage.
  static std::unique_ptr<const Fernet> create(ByteView key);

  ~Fernet();
  Fernet(const Fernet&) = delete;
  Fernet& operator=(const Fernet&) = delete;

  // Returns the canonical token text for `plaintext` at `timestamp`, with a
  // fresh IV from OpenSSL's CSPRNG. Throws std::runtime_error only if the
  // CSPRNG or cipher fails.
  std::string encrypt(ByteView plaintext, std::uint64_t timestamp) const;

  // As encrypt(), with a caller-chosen IV. For known-answer tests only: an IV
  // must never be reused with one key.
  std::string encrypt_with_iv(ByteView plaintext, std::uint64_t timestamp, ByteView iv) const;

  // Verifies and decrypts. On success returns kNone and replaces `plaintext`;
  // on failure `plaintext` is left empty.
  TokenError decrypt(const ParsedToken& token, SecretBytes& plaintext) const;
  TokenError decrypt(std::string_view token, SecretBytes& plaintext) const;

  // 8 hex characters of SHA-256(key): safe to log, identifies the key.
  const std::string& fingerprint() const;

  // True if `other` holds the same 32-byte key (compared by full SHA-256).
  bool same_key(const Fernet& other) const;

 private:
  struct Impl;
  explicit Fernet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fills `size` bytes from OpenSSL's CSPRNG; throws std::runtime_error on failure.
void random_bytes(std::uint8_t* out, std::size_t size);

}  // namespace rekey::crypto
