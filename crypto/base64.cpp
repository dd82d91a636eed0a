#include "crypto/base64.h"

#include <array>

namespace rekey::crypto {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  for (auto& v : table) v = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = i;
  table['+'] = 62;
  table['/'] = 63;
  return table;
}

constexpr auto kDecode = make_decode_table();

}  // namespace

std::string base64url_encode(const std::uint8_t* data, std::size_t size) {
  std::string out;
  out.resize((size + 2) / 3 * 4);
  char* o = out.data();
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = kAlphabet[(v >> 6) & 63];
    *o++ = kAlphabet[v & 63];
  }
  if (i < size) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    const bool two = i + 1 < size;
    if (two) v |= std::uint32_t{data[i + 1]} << 8;
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = two ? kAlphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  return out;
}

namespace {
// Canonical text (whole quanta of alphabet characters, '=' only as the final
// padding): decodes 4 characters at a time into pre-sized output. Returns false,
// leaving `out` as it was, for anything else.
bool decode_canonical(std::string_view text, std::vector<std::uint8_t>& out) {
  const std::size_t n = text.size();
  if (n % 4 != 0) return false;
  std::size_t data = n;
  if (data > 0 && text[data - 1] == '=') --data;
  if (data > 0 && text[data - 1] == '=') --data;
  const std::size_t old = out.size();
  const std::size_t full = data / 4;
  const std::size_t tail = data % 4;  // 0, 2 or 3 here
  out.resize(old + full * 3 + (tail == 0 ? 0 : tail - 1));
  std::uint8_t* o = out.data() + old;
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  std::uint32_t bad = 0;
  for (std::size_t q = 0; q < full; ++q, in += 4, o += 3) {
    const std::uint32_t a = kDecode[in[0]], b = kDecode[in[1]], c = kDecode[in[2]], d = kDecode[in[3]];
    bad |= a | b | c | d;
    const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = static_cast<std::uint8_t>(v >> 16);
    o[1] = static_cast<std::uint8_t>(v >> 8);
    o[2] = static_cast<std::uint8_t>(v);
  }
  if (tail >= 2) {
    const std::uint32_t a = kDecode[in[0]], b = kDecode[in[1]], c = tail == 3 ? kDecode[in[2]] : 0;
    bad |= a | b | c;
    o[0] = static_cast<std::uint8_t>((a << 2) | (b >> 4));
    if (tail == 3) o[1] = static_cast<std::uint8_t>((b << 4) | (c >> 2));
  }
  if (tail == 1 || (bad & 0xc0) != 0) {
    out.resize(old);
    return false;
  }
  return true;
}
}  // namespace

bool base64url_decode_lenient(std::string_view text, std::vector<std::uint8_t>& out) {
  if (decode_canonical(text, out)) return true;
  out.reserve(out.size() + text.size() / 4 * 3 + 3);
  int quad_pos = 0;
  int pads = 0;
  std::uint32_t left = 0;
  for (const char ch : text) {
    if (ch == '=') {
      // Python: a pad completes the quantum only after two data characters;
      // once it does, everything after it is ignored.
      if (quad_pos >= 2 && quad_pos + ++pads >= 4) return true;
      continue;
    }
    const std::uint8_t v = kDecode[static_cast<unsigned char>(ch)];
    if (v == kInvalid) continue;
    pads = 0;
    switch (quad_pos) {
      case 0:
        left = v;
        quad_pos = 1;
        break;
      case 1:
        out.push_back(static_cast<std::uint8_t>((left << 2) | (v >> 4)));
        left = v & 0x0f;
        quad_pos = 2;
        break;
      case 2:
        out.push_back(static_cast<std::uint8_t>((left << 4) | (v >> 2)));
        left = v & 0x03;
        quad_pos = 3;
        break;
      default:
        out.push_back(static_cast<std::uint8_t>((left << 6) | v));
        quad_pos = 0;
        break;
    }
  }
  return quad_pos == 0;
}

}  // namespace rekey::crypto
