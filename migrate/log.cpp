#include "migrate/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

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

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
}  // namespace

void configure(Format format, Level min_level) {
  g_format = format;
  g_level = min_level;
}

Format format() { return g_format; }
bool enabled(Level level) { return level >= g_level.load(); }

void hide(std::string secret) {
  if (secret.empty()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_hidden.push_back(std::move(secret));
}

void write(Level level, const std::string& text, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::string message = text;
  for (const std::string& secret : g_hidden) {
    for (std::size_t at = message.find(secret); at != std::string::npos; at = message.find(secret, at + 3)) {
      message.replace(at, secret.size(), "***");
    }
  }
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

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace rekey::log
