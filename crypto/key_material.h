// Turning operator-supplied key text into 32-byte Fernet keys, and making new
// keys. Pure functions over wiped buffers; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/secret_bytes.h"

namespace rekey::crypto {

enum class KeyFormat { kPassphrase, kFernet };

struct KdfParams {
  std::string salt = "faithful_finances_salt_v1";
  std::uint32_t iterations = 100000;
};

// Minimum lengths of the service's secrets.
constexpr std::size_t kMinEncryptionKeyChars = 32;
constexpr std::size_t kMinSecretKeyChars = 64;

// PBKDF2-HMAC-SHA256(passphrase, salt, iterations) -> 32 bytes, exactly as the
// service derives its Fernet key. Throws std::runtime_error on OpenSSL failure.
SecretBytes derive_passphrase_key(ByteView passphrase, const KdfParams& params);

// Decodes a Fernet key as Fernet(key) does (lenient url-safe base64 of 32
// bytes). Returns false, leaving `out` empty, if it is not one.
bool decode_fernet_key(std::string_view text, SecretBytes& out);

// A new random secret of `chars` url-safe base64 characters (`chars` must be a
// multiple of 4), as the service's .env expects.
SecretBytes generate_passphrase(std::size_t chars);

// A new random Fernet key in Fernet.generate_key() form.
SecretBytes generate_fernet_key();

}  // namespace rekey::crypto
