// URL-safe base64 as Python's base64 module does it.
//
// Encoding is canonical (alphabet '-' '_', '=' padding). Decoding mirrors
// base64.urlsafe_b64decode on bytes, i.e. binascii.a2b_base64 in non-strict
// mode after mapping '-'->'+' and '_'->'/': both alphabets are accepted,
// bytes outside the alphabet are skipped, decoding stops at the padding that
// completes a quantum, and input whose data characters do not end on a
// quantum boundary is rejected ("Incorrect padding"). All functions are pure
// and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rekey::crypto {

std::string base64url_encode(const std::uint8_t* data, std::size_t size);

// Appends the decoded bytes to `out`; returns false (leaving `out` with
// unspecified extra bytes) where Python would raise binascii.Error.
bool base64url_decode_lenient(std::string_view text, std::vector<std::uint8_t>& out);

}  // namespace rekey::crypto
