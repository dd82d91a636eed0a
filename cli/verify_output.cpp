#include <cstdio>

#include "cli/verify_census.h"
#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

// A column worth showing: named, or holding a token.
bool shown(const RelationCensus& t, std::size_t c) {
  return t.job.policy == ValuePolicy::kEveryValue || t.outcome.counts[c].total > 0;
}

nlohmann::json column_json(const RelationCensus& t, std::size_t c, const crypto::Keyring& keyring) {
  const CensusCounts& k = t.outcome.counts[c];
  nlohmann::json old = nlohmann::json::object();
  for (std::size_t i = 0; i < k.under_old.size(); ++i) old[keyring.old_key(i).fingerprint()] = k.under_old[i];
  nlohmann::json examples = nlohmann::json::array();
  for (const auto& f : t.outcome.examples) {
    if (f.column == c) examples.push_back({{"primary_key", log::json_text(key_display(f.key))}, {"reason", f.reason}});
  }
  nlohmann::json j{{"schema", t.shape.schema},
                   {"table", t.shape.table},
                   {"column", t.shape.columns[c]},
                   {"display", t.shape.column_display(c)},
                   {"counted", t.job.policy == ValuePolicy::kEveryValue ? "every value" : "values holding a token"},
                   {"total", k.total},
                   {"null", k.null},
                   {"new_key", k.under_new},
                   {"old_keys", old},
                   {"undecryptable", k.undecryptable},
                   {"not_token", k.not_token},
                   {"not_new", k.not_new()},
                   {"complete", t.outcome.completed},
                   {"examples", examples}};
  if (auto why = why_not_rotatable(t.job.relation, t.job.relation.columns[c])) j["not_rotatable"] = *why;
  return j;
}

}  // namespace

nlohmann::json verify_json(const std::vector<RelationCensus>& tables, const Plan& plan, const crypto::Keyring& keyring,
                           const VerifyOptions& o, int exit_code, bool complete, double seconds) {
  nlohmann::json columns = nlohmann::json::array();
  std::int64_t checked = 0;
  for (const auto& t : tables) {
    for (std::size_t c = 0; c < t.shape.columns.size(); ++c) {
      ++checked;
      if (shown(t, c)) columns.push_back(column_json(t, c, keyring));
    }
  }
  nlohmann::json olds = nlohmann::json::array();
  for (std::size_t i = 0; i < keyring.old_key_count(); ++i) olds.push_back(keyring.old_key(i).fingerprint());
  return {{"new_key_fingerprint", keyring.new_key().fingerprint()},
          {"old_key_fingerprints", olds},
          {"require_new", o.require_new},
          {"sample", o.sample > 0 ? nlohmann::json(o.sample) : nlohmann::json(nullptr)},
          {"complete", complete},
          {"duration_seconds", seconds},
          {"exit_code", exit_code},
          {"columns_checked", checked},
          {"columns", columns},
          {"unchecked", plan.unchecked},
          {"excluded", plan.excluded}};
}

// True when the census counted no value at all: a gate that checked nothing
// (the wrong database?) proves nothing.
bool found_nothing(const std::vector<RelationCensus>& tables) {
  for (const auto& t : tables) {
    for (const auto& k : t.outcome.counts) {
      if (k.total > k.null) return false;
    }
  }
  return true;
}

namespace {

void print_column(const RelationCensus& t, std::size_t c, const crypto::Keyring& keyring) {
  const CensusCounts& k = t.outcome.counts[c];
  std::string old;
  for (std::size_t i = 0; i < k.under_old.size(); ++i) {
    old += fmt::format(", old key {} {}", keyring.old_key(i).fingerprint(), k.under_old[i]);
  }
  const char* counted = t.job.policy == ValuePolicy::kEveryValue ? "rows" : "values holding a token";
  std::printf("  %s: %lld %s, NULL %lld, new key %lld%s, undecryptable %lld, not a token %lld%s\n",
              log::printable(t.shape.column_display(c)).c_str(), static_cast<long long>(k.total), counted,
              static_cast<long long>(k.null), static_cast<long long>(k.under_new), old.c_str(),
              static_cast<long long>(k.undecryptable), static_cast<long long>(k.not_token),
              t.outcome.completed ? "" : " (incomplete)");
  if (k.not_new() > k.null) {
    if (auto why = why_not_rotatable(t.job.relation, t.job.relation.columns[c])) {
      std::printf("    rekey rotate cannot rewrite it: %s\n", log::printable(*why).c_str());
    }
  }
}

}  // namespace

void print_verify_text(const std::vector<RelationCensus>& tables, const Plan& plan, const crypto::Keyring& keyring,
                       const VerifyOptions& o, int exit_code, double seconds) {
  std::printf("verify (read-only%s): new key %s\n",
              o.sample > 0 ? (", first " + std::to_string(o.sample) + " rows per table").c_str() : "",
              keyring.new_key().fingerprint().c_str());
  std::int64_t rows = 0;
  std::int64_t checked = 0;
  for (const auto& t : tables) {
    rows += t.outcome.rows_seen;
    for (std::size_t c = 0; c < t.shape.columns.size(); ++c) {
      ++checked;
      if (shown(t, c)) print_column(t, c, keyring);
    }
    // The first few per column; --format json and --report hold up to CensusSettings::examples.
    std::vector<std::size_t> listed(t.shape.columns.size(), 0);
    for (const auto& f : t.outcome.examples) {
      if (++listed[f.column] > 5) continue;
      std::printf("    %s primary key %s: %s\n", log::printable(t.shape.column_display(f.column)).c_str(),
                  log::printable(key_display(f.key)).c_str(), f.reason.c_str());
    }
  }
  for (const auto& u : plan.unchecked) {
    std::printf("  NOT CHECKED %s: %s\n", log::printable(u.object).c_str(), u.reason.c_str());
  }
  for (const auto& e : plan.excluded) std::printf("  excluded: %s\n", log::printable(e).c_str());
  const char* verdict = exit_code == to_int(ExitCode::kOk)        ? "ok"
                        : exit_code == to_int(ExitCode::kStopped) ? "stopped before the end"
                        : !plan.unchecked.empty()                 ? "some objects could not be checked"
                        : found_nothing(tables) ? "no value holding a token was found: is this the right database? "
                                                  "(--allow-no-tokens if it is)"
                        : o.require_new         ? "some values are not under the new key"
                                                : "some values cannot be decrypted";
  std::printf("  %lld column(s) checked, %lld rows read in %.1fs: %s (exit %d)\n", static_cast<long long>(checked),
              static_cast<long long>(rows), seconds, verdict, exit_code);
  std::fflush(stdout);
}

}  // namespace rekey
