#include "crypto/secret_bytes.h"

#include <openssl/crypto.h>

namespace rekey::crypto {

void wipe(void* data, std::size_t size) {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

bool ByteView::equals(ByteView other) const {
  if (size != other.size) return false;
  if (size == 0) return true;
  return CRYPTO_memcmp(data, other.data, size) == 0;
}

}  // namespace rekey::crypto
