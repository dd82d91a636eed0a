#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"

namespace rekey::log {
namespace {
std::atomic<Format> g_format{Format::kText};
std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mutex;
std::vector<std::string> g_hidden;  // guarded by g_mutex

const char* name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void configure(Format format, Level min_level) {
  g_format = format;
  g_level = min_level;
}

Format format() { return g_format; }
bool enabled(Level level) { return level >= g_level.load(); }

std::string json_text(std::string_view text) { return is_utf8(text) ? std::string(text) : printable(text); }

void hide(std::string secret) {
  if (secret.empty()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_hidden.push_back(std::move(secret));
}

namespace {
// `text` with every hidden secret replaced by ***. Needs g_mutex held.
std::string without_hidden_locked(std::string text) {
  for (const std::string& secret : g_hidden) {
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}
}  // namespace

std::string without_hidden(std::string text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return without_hidden_locked(std::move(text));
}

void write(Level level, const std::string& text, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  const std::string message = without_hidden_locked(text);
  std::string line;
  if (g_format == Format::kJson) {
    nlohmann::json j = fields;
    j["time"] = utc_now();
    j["level"] = name(level);
    j["message"] = message;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else {
    // A name from the database or a key of a row may hold a newline: one
    // message is one line, whatever it quotes.
    line = level == Level::kInfo ? fmt::format("rekey: {}\n", printable(message))
                                 : fmt::format("rekey: {}: {}\n", name(level), printable(message));
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

std::size_t utf8_char_length(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return i < text.size() ? static_cast<unsigned char>(text[i]) : 0u; };
  const unsigned lead = byte(at);
  if (lead < 0x80) return 1;
  // Second-byte ranges per RFC 3629: no overlong forms, surrogates or code points above U+10FFFF.
  std::size_t length = 0;
  unsigned low = 0x80, high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(at + i) < 0x80 || byte(at + i) > 0xbf) return 0;
  }
  return length;
}

bool is_utf8(std::string_view text) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8_char_length(text, at);
    if (length == 0) return false;
    at += length;
  }
  return true;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    const std::size_t length = utf8_char_length(text, at);
    if (c < 0x20 || c == 0x7f || c == '\\' || length == 0) {
      out += fmt::format("\\x{:02x}", c);
      ++at;
    } else {
      out.append(text, at, length);
      at += length;
    }
  }
  return out;
}

}  // namespace rekey::log
