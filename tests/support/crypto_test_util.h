// Helpers shared by the crypto unit and interop tests (header only).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/base64.h"
#include "crypto/fernet.h"
#include "crypto/secret_bytes.h"

namespace rekey::crypto::testing {

using Bytes = std::vector<std::uint8_t>;

inline Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string string_of(const Bytes& b) { return std::string(b.begin(), b.end()); }
inline std::string string_of(const SecretBytes& b) { return std::string(b.begin(), b.end()); }

inline std::string to_hex(const std::uint8_t* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}
inline std::string to_hex(ByteView b) { return to_hex(b.data, b.size); }

inline Bytes from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::invalid_argument("bad hex digit");
  };
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd hex length");
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return out;
}

inline Bytes b64decode(std::string_view text) {
  Bytes out;
  if (!base64url_decode_lenient(text, out)) throw std::invalid_argument("test input is not base64");
  return out;
}
inline std::string b64encode(const Bytes& b) { return base64url_encode(b.data(), b.size()); }
inline std::string b64encode(std::string_view s) {
  return base64url_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// A deterministic 32-byte key: bytes seed, seed+1, ...
inline Bytes seeded_key(std::uint8_t seed) {
  Bytes k(32);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

inline std::unique_ptr<const Fernet> fernet_of(const Bytes& key) { return Fernet::create(ByteView(key)); }

inline Bytes random_bytes_of(std::mt19937_64& rng, std::size_t n) {
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

// Builds token bytes 0x80|ts|iv|ciphertext|HMAC with an arbitrary (not
// necessarily padded) ciphertext: `padded` is encrypted with AES-128-CBC and no
// padding, so its length must be a multiple of 16 (or anything if `raw` is
// true, in which case it is used as the ciphertext verbatim). The HMAC is valid
// under `key`.
inline Bytes build_token(const Bytes& key, std::uint64_t timestamp, const Bytes& iv, const Bytes& padded,
                         bool raw = false) {
  Bytes token;
  token.push_back(0x80);
  for (int i = 0; i < 8; ++i) token.push_back(static_cast<std::uint8_t>(timestamp >> (56 - 8 * i)));
  token.insert(token.end(), iv.begin(), iv.end());
  if (raw) {
    token.insert(token.end(), padded.begin(), padded.end());
  } else {
    Bytes ct(padded.size() + 16);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    int fin = 0;
    const bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), nullptr, key.data() + 16, iv.data()) == 1 &&
                    EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
                    EVP_EncryptUpdate(ctx, ct.data(), &len, padded.data(), static_cast<int>(padded.size())) == 1 &&
                    EVP_EncryptFinal_ex(ctx, ct.data() + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) throw std::runtime_error("test AES failed");
    ct.resize(static_cast<std::size_t>(len + fin));
    token.insert(token.end(), ct.begin(), ct.end());
  }
  unsigned char mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), 16, token.data(), token.size(), mac, &mac_len);
  token.insert(token.end(), mac, mac + mac_len);
  return token;
}

// Seconds since the epoch of an ISO 8601 time "YYYY-MM-DDTHH:MM:SS" followed
// by "Z" or "+HH:MM"/"-HH:MM".
inline std::int64_t parse_iso8601(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6) {
    throw std::invalid_argument("bad ISO 8601 time: " + text);
  }
  std::int64_t offset = 0;
  const std::string zone = text.substr(static_cast<std::size_t>(n));
  if (zone != "Z") {
    int oh = 0, om = 0;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') ||
        std::sscanf(zone.c_str() + 1, "%2d:%2d", &oh, &om) != 2) {
      throw std::invalid_argument("bad ISO 8601 zone: " + text);
    }
    offset = (zone[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  // Days from civil (Howard Hinnant's algorithm).
  const std::int64_t yy = mo <= 2 ? y - 1 : y;
  const std::int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  const std::int64_t yoe = yy - era * 400;
  const std::int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + h * 3600 + mi * 60 + s - offset;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace rekey::crypto::testing
