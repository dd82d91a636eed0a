#include "cli/config_file.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iterator>

#include "common/errors.h"

namespace rekey {
namespace {

class Parser {
 public:
  Parser(std::string_view text, const std::string& origin) : s_(text), origin_(origin) {}

  std::vector<ConfigEntry> entries() {
    std::vector<ConfigEntry> out;
    while (true) {
      skip_blank();
      if (at_end()) return out;
      if (peek() == '[') fail("sections ([...]) are not supported");
      ConfigEntry e;
      e.line = line_;
      e.key = key();
      skip_spaces();
      if (peek() != '=') fail("expected '=' after " + e.key);
      ++i_;
      skip_spaces();
      e.values = value();
      end_of_line();
      out.push_back(std::move(e));
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw UsageError(fmt::format("config file {}, line {}: {}", origin_, line_, why));
  }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void skip_spaces() {
    while (peek() == ' ' || peek() == '\t') ++i_;
  }
  void skip_comment() {
    if (peek() == '#') {
      while (!at_end() && s_[i_] != '\n') ++i_;
    }
  }
  // Spaces, comments and line breaks (between entries and inside arrays).
  void skip_blank() {
    while (true) {
      skip_spaces();
      skip_comment();
      if (peek() == '\r') {
        ++i_;
      } else if (peek() == '\n') {
        ++i_;
        ++line_;
      } else {
        return;
      }
    }
  }
  void end_of_line() {
    skip_spaces();
    skip_comment();
    if (peek() == '\r') ++i_;
    if (at_end()) return;
    if (peek() != '\n') fail("unexpected text after the value");
    ++i_;
    ++line_;
  }
  static bool bare_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  std::string key() {
    if (peek() == '"') return basic();
    if (peek() == '\'') return literal();
    const std::size_t start = i_;
    while (bare_char(peek())) ++i_;
    if (i_ == start) fail("expected an option name");
    return std::string(s_.substr(start, i_ - start));
  }
  static void append_utf8(std::string& out, unsigned long cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::string basic() {
    ++i_;
    std::string out;
    while (true) {
      if (at_end() || peek() == '\n') fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = peek();
      ++i_;
      switch (e) {
        case 'b':
          out += '\b';
          break;
        case 't':
          out += '\t';
          break;
        case 'n':
          out += '\n';
          break;
        case 'f':
          out += '\f';
          break;
        case 'r':
          out += '\r';
          break;
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case 'u':
        case 'U': {
          const std::size_t n = e == 'u' ? 4 : 8;
          if (i_ + n > s_.size()) fail("bad \\" + std::string(1, e) + " escape");
          const std::string hex(s_.substr(i_, n));
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) fail("bad \\u escape");
          append_utf8(out, std::stoul(hex, nullptr, 16));
          i_ += n;
          break;
        }
        default:
          fail("unknown escape \\" + std::string(1, e) + " in a \"...\" string");
      }
    }
  }
  std::string literal() {
    const std::size_t end = s_.find_first_of("'\n", i_ + 1);
    if (end == std::string_view::npos || s_[end] != '\'') fail("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  std::string scalar() {
    if (peek() == '"') return basic();
    if (peek() == '\'') return literal();
    if (peek() == '[') fail("nested arrays are not supported");
    const std::size_t start = i_;
    while (!at_end() && std::string_view(" \t\r\n,]#").find(peek()) == std::string_view::npos) ++i_;
    if (i_ == start) fail("expected a value");
    return std::string(s_.substr(start, i_ - start));
  }
  std::vector<std::string> value() {
    if (peek() != '[') return {scalar()};
    ++i_;
    std::vector<std::string> out;
    while (true) {
      skip_blank();
      if (peek() == ']') break;
      out.push_back(scalar());
      skip_blank();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ']') {
        fail("expected ',' or ']' in an array");
      }
    }
    ++i_;
    return out;
  }

  std::string_view s_;
  const std::string& origin_;
  std::size_t i_ = 0;
  int line_ = 1;
};

void apply_config_file(CLI::App& cmd) {
  CLI::Option* config = cmd.get_config_ptr();
  if (config == nullptr || config->count() == 0) return;
  const std::string path = config->as<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("config file " + path + " cannot be read");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const ConfigEntry& e : parse_config_text(text, path)) {
    CLI::Option* op = cmd.get_option_no_throw("--" + e.key);
    if (op == nullptr || op == config || !op->get_configurable()) {
      throw UsageError(
          fmt::format("config file {}, line {}: {} has no option --{}", path, e.line, cmd.get_name(), e.key));
    }
    if (op->count() > 0) continue;  // the command line wins
    if (op->get_expected_min() == 0) {
      for (const auto& v : e.values) op->add_result(op->get_flag_value(e.key, v));
    } else {
      op->add_result(e.values);
    }
    op->run_callback();
  }
}

}  // namespace

std::vector<ConfigEntry> parse_config_text(std::string_view text, const std::string& origin) {
  return Parser(text, origin).entries();
}

std::string config_string(std::string_view value) {
  bool literal = value.find('\'') == std::string_view::npos;
  for (unsigned char c : value) literal = literal && (c >= 0x20 || c == '\t') && c != 0x7F;
  if (literal) return "'" + std::string(value) + "'";
  std::string out = "\"";
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(c));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

void enable_subcommand_configs(CLI::App& root) {
  for (CLI::App* sub : root.get_subcommands([](CLI::App* s) { return s->get_config_ptr() != nullptr; })) {
    sub->parse_complete_callback([sub] { apply_config_file(*sub); });
  }
}

}  // namespace rekey
