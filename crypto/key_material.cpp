#include "crypto/key_material.h"

#include <openssl/evp.h>

#include <stdexcept>
#include <vector>

#include "crypto/base64.h"
#include "crypto/fernet.h"

namespace rekey::crypto {

SecretBytes derive_passphrase_key(ByteView passphrase, const KdfParams& params) {
  SecretBytes key(Fernet::kKeySize);
  const int ok = PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(passphrase.data), static_cast<int>(passphrase.size),
                                   reinterpret_cast<const unsigned char*>(params.salt.data()),
                                   static_cast<int>(params.salt.size()), static_cast<int>(params.iterations),
                                   EVP_sha256(), static_cast<int>(key.size()), key.data());
  if (ok != 1) throw std::runtime_error("OpenSSL: PBKDF2 failed");
  return key;
}

bool decode_fernet_key(std::string_view text, SecretBytes& out) {
  out.clear();
  std::vector<std::uint8_t> decoded;
  const bool ok = base64url_decode_lenient(text, decoded) && decoded.size() == Fernet::kKeySize;
  if (ok) out.assign(decoded.begin(), decoded.end());
  wipe(decoded.data(), decoded.size());
  return ok;
}

namespace {
SecretBytes random_base64(std::size_t raw_size) {
  SecretBytes raw(raw_size);
  random_bytes(raw.data(), raw.size());
  std::string text = base64url_encode(raw.data(), raw.size());
  SecretBytes out(text.begin(), text.end());
  wipe(text.data(), text.size());
  return out;
}
}  // namespace

SecretBytes generate_passphrase(std::size_t chars) {
  if (chars == 0 || chars % 4 != 0) throw std::invalid_argument("passphrase length must be a multiple of 4");
  return random_base64(chars / 4 * 3);
}

SecretBytes generate_fernet_key() { return random_base64(Fernet::kKeySize); }

}  // namespace rekey::crypto
