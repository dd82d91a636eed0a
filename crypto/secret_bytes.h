// Byte buffers for key material and plaintext.
//
// SecretBytes wipes every allocation it releases (including the old storage
// left behind by a reallocation), so key bytes and decrypted plaintext never
// linger in freed heap memory. It is a plain std::vector otherwise and has the
// same thread-safety as one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace rekey::crypto {

// Overwrites `size` bytes at `data` in a way the compiler cannot elide.
void wipe(void* data, std::size_t size);

template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>& /*other*/) noexcept {}

  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>& /*other*/) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const WipingAllocator<U>& /*other*/) const noexcept {
    return false;
  }
};

using SecretBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

// A non-owning view of bytes; the caller keeps the storage alive.
struct ByteView {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;

  ByteView() = default;
  ByteView(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
  ByteView(const SecretBytes& b) : data(b.data()), size(b.size()) {}  // NOLINT(google-explicit-constructor)
  ByteView(const std::vector<std::uint8_t>& b) : data(b.data()), size(b.size()) {}  // NOLINT
  ByteView(std::string_view s)  // NOLINT(google-explicit-constructor)
      : data(reinterpret_cast<const std::uint8_t*>(s.data())), size(s.size()) {}

  bool equals(ByteView other) const;  // constant time in the shorter length
};

inline SecretBytes to_secret(std::string_view s) { return SecretBytes(s.begin(), s.end()); }

}  // namespace rekey::crypto
