// Bytes as lowercase hexadecimal text: for bytea literals, keys that are not
// UTF-8, fingerprints. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace rekey {

// Two lowercase hex digits per byte of `bytes`.
std::string to_hex(std::string_view bytes);

}  // namespace rekey
