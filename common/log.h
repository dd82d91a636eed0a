// Operator-facing logging on stderr, as text or JSON lines; a message is one
// line in either (control characters escaped, see printable()).
//
// Messages must never contain a key, a derived key or a plaintext: callers
// pass fingerprints, table and column names and primary keys only. Safe to
// call from any thread; lines are written whole.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>

namespace rekey::log {

enum class Format { kText, kJson };
enum class Level { kDebug, kInfo, kWarn, kError };

void configure(Format format, Level min_level);
Format format();
bool enabled(Level level);

// `text` (a name from the database, a key from a row) fit for one line of a
// terminal or a log: control characters, backslashes and bytes that are not
// UTF-8 (a key in a SQL_ASCII database) escaped as \xNN, so no name can forge
// a line or move the cursor, and every byte can be told. For text printed
// directly (printf); a log message is escaped once by the logger itself, so
// its arguments (and a UsageError's text, which is logged) go in raw.
std::string printable(std::string_view text);

// Adds `secret` to the strings no message may show: from now on each
// occurrence in a message is replaced by ***. For secrets that text from
// elsewhere may quote: a database password that libpq's errors can echo with
// the connection string.
void hide(std::string secret);

// `text` with every secret given to hide() replaced by ***: for text that
// leaves through another door than a log line (a report, the state schema).
std::string without_hidden(std::string text);

// The length of the well-formed UTF-8 character starting at text[at] (1 for
// ASCII), or 0 when the bytes there are not one.
std::size_t utf8_char_length(std::string_view text, std::size_t at);

// True when `text` is well-formed UTF-8 (what JSON text must be).
bool is_utf8(std::string_view text);

// `text` itself when it is UTF-8, else printable(text): JSON text for a
// report, where a key of a SQL_ASCII database would otherwise lose bytes.
std::string json_text(std::string_view text);

void write(Level level, const std::string& message, const nlohmann::json& fields = nlohmann::json::object());

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kInfo)) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kWarn)) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kError)) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::kDebug)) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace rekey::log
