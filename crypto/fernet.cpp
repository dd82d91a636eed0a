// Low-level SHA-256 is used deliberately: precomputing the HMAC inner and
// outer states once per key makes each token's HMAC two compressions with no
// allocation, which the EVP_MAC interface cannot offer.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto/fernet.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "common/hex.h"
#include "crypto/base64.h"

namespace rekey::crypto {
namespace {

constexpr std::uint8_t kVersion = 0x80;
constexpr std::size_t kHeaderSize = 1 + 8;
constexpr std::size_t kIvSize = 16;
constexpr std::size_t kBlockSize = 16;
constexpr std::size_t kMacSize = 32;
constexpr std::size_t kMinTokenSize = kHeaderSize + kIvSize + kBlockSize + kMacSize;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

struct CipherDeleter {
  void operator()(EVP_CIPHER* c) const { EVP_CIPHER_free(c); }
};

const EVP_CIPHER* aes128cbc() {
  static const std::unique_ptr<EVP_CIPHER, CipherDeleter> cipher(EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr));
  if (!cipher) throw std::runtime_error("OpenSSL: AES-128-CBC is unavailable");
  return cipher.get();
}

// Wipes a SHA-256 state derived from a key when it goes out of scope.
struct ScopedSha {
  SHA256_CTX ctx;
  ~ScopedSha() { wipe(&ctx, sizeof ctx); }
};

// IVs come from a per-thread buffer of CSPRNG output, refilled 256 IVs at a
// time; a fork invalidates every buffer so a child never reuses its parent's.
std::atomic<std::uint64_t> g_fork_generation{0};
void on_fork_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

void next_iv(std::uint8_t iv[kIvSize]) {
  static const int registered = pthread_atfork(nullptr, nullptr, on_fork_child);
  (void)registered;
  struct Pool {
    std::uint8_t buf[256 * kIvSize];
    std::size_t pos = sizeof buf;
    std::uint64_t generation = 0;
    ~Pool() { wipe(buf, sizeof buf); }
  };
  thread_local Pool pool;
  const std::uint64_t gen = g_fork_generation.load(std::memory_order_relaxed);
  if (pool.pos + kIvSize > sizeof pool.buf || pool.generation != gen) {
    random_bytes(pool.buf, sizeof pool.buf);
    pool.pos = 0;
    pool.generation = gen;
  }
  std::memcpy(iv, pool.buf + pool.pos, kIvSize);
  wipe(pool.buf + pool.pos, kIvSize);
  pool.pos += kIvSize;
}

// AES contexts keyed once, owned by one Fernet and lent to one call at a
// time: a token then only sets its IV (no key schedule, no parameter lookups).
// Contexts are freed, and cleansed by OpenSSL, with the Fernet.
class CipherPool {
 public:
  CipherPool(const std::uint8_t* key, bool encrypt) : key_(key), encrypt_(encrypt) {}
  CipherPool(const CipherPool&) = delete;
  CipherPool& operator=(const CipherPool&) = delete;

  // A context on loan; back to the pool when the lease ends.
  class Lease {
   public:
    Lease(CipherPool& pool, CipherCtxPtr ctx) : pool_(pool), ctx_(std::move(ctx)) {}
    ~Lease() { pool_.give_back(std::move(ctx_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    EVP_CIPHER_CTX* get() const { return ctx_.get(); }

   private:
    CipherPool& pool_;
    CipherCtxPtr ctx_;
  };

  Lease take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        CipherCtxPtr ctx = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(ctx));
      }
    }
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    const bool ok = ctx && EVP_CipherInit_ex2(ctx.get(), aes128cbc(), key_, nullptr, encrypt_ ? 1 : 0, nullptr) == 1 &&
                    EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1;
    if (!ok) throw std::runtime_error("OpenSSL: cannot set up AES-128-CBC");
    return Lease(*this, std::move(ctx));
  }

 private:
  // Never throws: a context that cannot be kept is freed instead.
  void give_back(CipherCtxPtr ctx) noexcept {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(std::move(ctx));
    } catch (...) {
    }
  }
  const std::uint8_t* key_;  // owned by the Fernet, which outlives the pool
  bool encrypt_;
  std::mutex mu_;
  std::vector<CipherCtxPtr> free_;
};

}  // namespace

const char* to_string(TokenError error) {
  switch (error) {
    case TokenError::kNone:
      return "ok";
    case TokenError::kBadBase64:
      return "bad_base64";
    case TokenError::kBadVersion:
      return "bad_version";
    case TokenError::kTooShort:
      return "too_short";
    case TokenError::kAuthentication:
      return "hmac_mismatch";
    case TokenError::kBadCiphertext:
      return "bad_padding";
  }
  return "unknown";
}

TokenError ParsedToken::parse(std::string_view text, ParsedToken& out) {
  out.bytes_.clear();
  if (!base64url_decode_lenient(text, out.bytes_)) return TokenError::kBadBase64;
  if (out.bytes_.empty() || out.bytes_[0] != kVersion) return TokenError::kBadVersion;
  if (out.bytes_.size() < kMinTokenSize) return TokenError::kTooShort;
  return TokenError::kNone;
}

TokenError ParsedToken::from_bytes(std::vector<std::uint8_t>&& bytes, ParsedToken& out) {
  out.bytes_ = std::move(bytes);
  if (out.bytes_.empty() || out.bytes_[0] != kVersion) return TokenError::kBadVersion;
  if (out.bytes_.size() < kMinTokenSize) return TokenError::kTooShort;
  return TokenError::kNone;
}

std::uint64_t ParsedToken::timestamp() const {
  std::uint64_t ts = 0;
  for (std::size_t i = 1; i < kHeaderSize && i < bytes_.size(); ++i) ts = (ts << 8) | bytes_[i];
  return ts;
}

struct Fernet::Impl {
  SHA256_CTX inner;  // state after absorbing signing_key ^ ipad
  SHA256_CTX outer;  // state after absorbing signing_key ^ opad
  std::uint8_t aes_key[16];
  std::uint8_t key_digest[SHA256_DIGEST_LENGTH];  // SHA-256(key): identity, not secret material
  std::string fingerprint;
  mutable CipherPool encryptors{aes_key, true};
  mutable CipherPool decryptors{aes_key, false};

  ~Impl() {
    wipe(&inner, sizeof inner);
    wipe(&outer, sizeof outer);
    wipe(aes_key, sizeof aes_key);
  }

  void mac(const std::uint8_t* data, std::size_t size, std::uint8_t out[kMacSize]) const {
    ScopedSha s{inner};
    SHA256_Update(&s.ctx, data, size);
    SHA256_Final(out, &s.ctx);
    s.ctx = outer;
    SHA256_Update(&s.ctx, out, kMacSize);
    SHA256_Final(out, &s.ctx);
  }
};

Fernet::Fernet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Fernet::~Fernet() = default;

std::unique_ptr<const Fernet> Fernet::create(ByteView key) {
  if (key.size != kKeySize) throw std::invalid_argument("a Fernet key must be exactly 32 bytes");
  auto impl = std::make_unique<Impl>();
  std::uint8_t pad[SHA256_CBLOCK];
  std::memset(pad, 0x36, sizeof pad);
  for (std::size_t i = 0; i < 16; ++i) pad[i] ^= key.data[i];
  SHA256_Init(&impl->inner);
  SHA256_Update(&impl->inner, pad, sizeof pad);
  std::memset(pad, 0x5c, sizeof pad);
  for (std::size_t i = 0; i < 16; ++i) pad[i] ^= key.data[i];
  SHA256_Init(&impl->outer);
  SHA256_Update(&impl->outer, pad, sizeof pad);
  wipe(pad, sizeof pad);
  std::memcpy(impl->aes_key, key.data + 16, 16);

  std::uint8_t* digest = impl->key_digest;
  SHA256(key.data, key.size, digest);
  impl->fingerprint = to_hex(std::string_view(reinterpret_cast<const char*>(digest), 4));
  return std::unique_ptr<const Fernet>(new Fernet(std::move(impl)));
}

const std::string& Fernet::fingerprint() const { return impl_->fingerprint; }

bool Fernet::same_key(const Fernet& other) const {
  return ByteView(impl_->key_digest, sizeof impl_->key_digest)
      .equals(ByteView(other.impl_->key_digest, sizeof other.impl_->key_digest));
}

std::string Fernet::encrypt(ByteView plaintext, std::uint64_t timestamp) const {
  std::uint8_t iv[kIvSize];
  next_iv(iv);
  return encrypt_with_iv(plaintext, timestamp, ByteView(iv, sizeof iv));
}

std::string Fernet::encrypt_with_iv(ByteView plaintext, std::uint64_t timestamp, ByteView iv) const {
  if (iv.size != kIvSize) throw std::invalid_argument("a Fernet IV must be 16 bytes");
  const std::size_t ct_size = (plaintext.size / kBlockSize + 1) * kBlockSize;
  std::vector<std::uint8_t> token(kHeaderSize + kIvSize + ct_size + kMacSize);
  std::uint8_t* p = token.data();
  p[0] = kVersion;
  for (int i = 0; i < 8; ++i) p[1 + i] = static_cast<std::uint8_t>(timestamp >> (56 - 8 * i));
  std::memcpy(p + kHeaderSize, iv.data, kIvSize);

  // Pad in place: the ciphertext region holds the padded plaintext first.
  std::uint8_t* ct = p + kHeaderSize + kIvSize;
  if (plaintext.size > 0) std::memcpy(ct, plaintext.data, plaintext.size);
  std::memset(ct + plaintext.size, static_cast<int>(ct_size - plaintext.size), ct_size - plaintext.size);

  const CipherPool::Lease lease = impl_->encryptors.take();
  EVP_CIPHER_CTX* ctx = lease.get();
  int out_len = 0;
  const bool ok = EVP_EncryptInit_ex2(ctx, nullptr, nullptr, iv.data, nullptr) == 1 &&
                  EVP_EncryptUpdate(ctx, ct, &out_len, ct, static_cast<int>(ct_size)) == 1 &&
                  static_cast<std::size_t>(out_len) == ct_size;
  if (!ok) {
    wipe(ct, ct_size);
    throw std::runtime_error("OpenSSL: AES-128-CBC encryption failed");
  }
  impl_->mac(p, kHeaderSize + kIvSize + ct_size, p + kHeaderSize + kIvSize + ct_size);
  return base64url_encode(token.data(), token.size());
}

TokenError Fernet::decrypt(std::string_view token, SecretBytes& plaintext) const {
  ParsedToken parsed;
  plaintext.clear();
  const TokenError error = ParsedToken::parse(token, parsed);
  return error != TokenError::kNone ? error : decrypt(parsed, plaintext);
}

TokenError Fernet::decrypt(const ParsedToken& token, SecretBytes& plaintext) const {
  plaintext.clear();
  const auto& b = token.bytes();
  if (b.size() < kMinTokenSize) return TokenError::kTooShort;
  const std::size_t signed_size = b.size() - kMacSize;
  std::uint8_t tag[kMacSize];
  impl_->mac(b.data(), signed_size, tag);
  if (!ByteView(tag, kMacSize).equals(ByteView(b.data() + signed_size, kMacSize))) {
    return TokenError::kAuthentication;
  }
  const std::size_t ct_size = signed_size - kHeaderSize - kIvSize;
  if (ct_size % kBlockSize != 0) return TokenError::kBadCiphertext;

  plaintext.resize(ct_size);
  const CipherPool::Lease lease = impl_->decryptors.take();
  EVP_CIPHER_CTX* ctx = lease.get();
  int out_len = 0;
  const bool ok = EVP_DecryptInit_ex2(ctx, nullptr, nullptr, b.data() + kHeaderSize, nullptr) == 1 &&
                  EVP_DecryptUpdate(ctx, plaintext.data(), &out_len, b.data() + kHeaderSize + kIvSize,
                                    static_cast<int>(ct_size)) == 1 &&
                  static_cast<std::size_t>(out_len) == ct_size;
  if (!ok) {
    plaintext.clear();
    throw std::runtime_error("OpenSSL: AES-128-CBC decryption failed");
  }
  // PKCS7, checked without branching on the padding bytes' values.
  const std::uint8_t pad = plaintext[ct_size - 1];
  unsigned bad = static_cast<unsigned>(pad == 0) | static_cast<unsigned>(pad > kBlockSize);
  for (std::size_t i = 0; i < kBlockSize; ++i) {
    const unsigned in_pad = static_cast<unsigned>(i < pad);
    bad |= in_pad & static_cast<unsigned>(plaintext[ct_size - 1 - i] != pad);
  }
  if (bad != 0) {
    plaintext.clear();
    return TokenError::kBadCiphertext;
  }
  plaintext.resize(ct_size - pad);
  return TokenError::kNone;
}

void random_bytes(std::uint8_t* out, std::size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) != 1) throw std::runtime_error("OpenSSL: CSPRNG failure");
}

}  // namespace rekey::crypto
