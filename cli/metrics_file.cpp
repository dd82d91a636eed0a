#include "cli/metrics_file.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/log.h"

namespace rekey {
namespace {

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// The pace (--pace auto): its rate now (+Inf: no limit; 0 while paused),
// time paused by cause, and the health probe's baseline and recent p95.
void pace_metrics(std::string& out, const std::string& base, const RunReport& r) {
  const PaceReport& p = r.pace;
  family(out, "rekey_pace_rows_per_second", "gauge", "The pace now: rows per second allowed (+Inf: no limit).");
  const double rate = p.now.paused ? 0 : p.now.rate;
  out += fmt::format("rekey_pace_rows_per_second{{{},mode=\"{}\"}} {}\n", base, to_string(p.mode),
                     std::isinf(rate) ? std::string("+Inf") : fmt::format("{:.1f}", rate));
  family(out, "rekey_paused_seconds_by_cause", "gauge", "Seconds paused, by cause (pause file, replica lag, pace).");
  for (const auto& [cause, seconds] : r.seconds_paused_by) {
    out += fmt::format("rekey_paused_seconds_by_cause{{{},cause=\"{}\"}} {:.3f}\n", base, label_value(cause), seconds);
  }
  family(out, "rekey_probe_baseline_seconds", "gauge", "The health probe's latency while rekey was quiet (p95).");
  out += fmt::format("rekey_probe_baseline_seconds{{{}}} {:.6f}\n", base, p.baseline_ms / 1000);
  family(out, "rekey_probe_p95_seconds", "gauge", "The health probe's recent latency (p95).");
  out += fmt::format("rekey_probe_p95_seconds{{{}}} {:.6f}\n", base, p.p95_ms / 1000);
}

// Per table: its values by column and outcome, its rows read and estimated.
void table_metrics(std::string& out, const std::string& base, const RunReport& r) {
  family(out, "rekey_values", "gauge", "Values by table, column and outcome in this run.");
  for (const auto& t : r.tables) {
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      const ColumnCounts& k = t.counts.at(c);
      const std::pair<const char*, std::int64_t> outcomes[] = {{"rotated", k.rotated},
                                                               {"already_new", k.already_new},
                                                               {"null", k.null},
                                                               {"undecryptable", k.undecryptable},
                                                               {"changed_concurrently", k.changed_concurrently}};
      for (const auto& [outcome, n] : outcomes) {
        out += fmt::format("rekey_values{{{},table=\"{}\",column=\"{}\",outcome=\"{}\"}} {}\n", base,
                           label_value(t.table), label_value(t.columns[c]), outcome, n);
      }
    }
  }
  family(out, "rekey_table_rows_seen", "gauge", "Rows read, by table (progress: over rekey_table_rows_estimated).");
  for (const auto& t : r.tables) {
    out += fmt::format("rekey_table_rows_seen{{{},table=\"{}\"}} {}\n", base, label_value(t.table), t.rows_seen);
  }
  family(out, "rekey_table_rows_estimated", "gauge", "Rows in the table, as the planner estimated them.");
  for (const auto& t : r.tables) {
    out +=
        fmt::format("rekey_table_rows_estimated{{{},table=\"{}\"}} {}\n", base, label_value(t.table), t.estimated_rows);
  }
}

}  // namespace

MetricsFile::MetricsFile(std::string path, std::string command)
    : path_(std::move(path)), command_(std::move(command)), started_unix_(unix_now()) {}

std::string render_metrics(const RunReport& r, const std::string& command, double started_unix, bool finished) {
  std::string old_keys;
  for (const auto& fp : r.old_key_fingerprints) old_keys += (old_keys.empty() ? "" : ",") + fp;
  const std::string base = fmt::format(R"(command="{}",run_id="{}",new_key="{}")", label_value(command), r.run_id,
                                       label_value(r.new_key_fingerprint));
  std::string out;
  family(out, "rekey_run_info", "gauge", "The run, its status and its keys (fingerprints).");
  out += fmt::format("rekey_run_info{{{},old_keys=\"{}\",status=\"{}\",dry_run=\"{}\"}} 1\n", base,
                     label_value(old_keys), label_value(db::to_string(r.status)), r.dry_run ? "true" : "false");
  table_metrics(out, base, r);
  std::int64_t rows = 0;
  std::int64_t batches = 0;
  std::int64_t retries = 0;
  for (const auto& t : r.tables) {
    rows += t.rows_seen;
    batches += t.batches;
    retries += t.retries;
  }
  family(out, "rekey_rows_seen", "gauge", "Rows read in this invocation.");
  out += fmt::format("rekey_rows_seen{{{}}} {}\n", base, rows);
  family(out, "rekey_batches", "gauge", "Batches committed in this invocation.");
  out += fmt::format("rekey_batches{{{}}} {}\n", base, batches);
  family(out, "rekey_retries", "gauge", "Database operations retried after a transient error.");
  out += fmt::format("rekey_retries{{{}}} {}\n", base, retries);
  family(out, "rekey_paused_seconds", "gauge", "Seconds paused (pause file, replica lag).");
  out += fmt::format("rekey_paused_seconds{{{}}} {:.3f}\n", base, r.seconds_paused);
  family(out, "rekey_throttled_seconds", "gauge", "Seconds held back by --max-rate or the pace.");
  out += fmt::format("rekey_throttled_seconds{{{}}} {:.3f}\n", base, r.seconds_throttled);
  pace_metrics(out, base, r);
  family(out, "rekey_rows_per_second", "gauge", "Rows per second in this invocation.");
  out += fmt::format("rekey_rows_per_second{{{}}} {:.1f}\n", base,
                     r.duration_seconds > 0 ? static_cast<double>(rows) / r.duration_seconds : 0.0);
  family(out, "rekey_run_start_timestamp_seconds", "gauge", "When this invocation started (Unix time).");
  out += fmt::format("rekey_run_start_timestamp_seconds{{{}}} {:.0f}\n", base, started_unix);
  if (finished) {
    family(out, "rekey_run_end_timestamp_seconds", "gauge", "When this invocation ended (Unix time).");
    out += fmt::format("rekey_run_end_timestamp_seconds{{{}}} {:.0f}\n", base, started_unix + r.duration_seconds);
    family(out, "rekey_exit_code", "gauge", "The invocation's exit code.");
    out += fmt::format("rekey_exit_code{{{}}} {}\n", base, r.exit_code);
  }
  return out;
}

void MetricsFile::update(const RunReport& report, bool force, std::chrono::seconds min_interval) {
  if (path_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < min_interval) return;
  last_ = now;
  try {
    write_file_atomically(path_, render_metrics(report, command_, started_unix_, force));
  } catch (const std::runtime_error& e) {
    if (!warned_) log::warn("metrics file: {}", e.what());
    warned_ = true;
  }
}

}  // namespace rekey
