// Prometheus text-format metrics for node_exporter's textfile collector
// (--metrics-file). Labels carry table, column, outcome and key
// fingerprints; never a key or a value. Each write replaces the file through
// an AtomicFile (mode 0600, never through a link).
#pragma once

#include <chrono>
#include <string>

#include "cli/run_report.h"

namespace rekey {

class MetricsFile {
 public:
  // `command` is the subcommand ("rotate" or "verify"); empty `path` disables.
  MetricsFile(std::string path, std::string command);

  // Writes `report` now if at least `min_interval` passed since the last
  // write (or `force`). Failures are logged once as warnings, never thrown:
  // metrics must not stop a rotation.
  void update(const RunReport& report, bool force, std::chrono::seconds min_interval = std::chrono::seconds(5));

 private:
  std::string path_;
  std::string command_;
  std::chrono::steady_clock::time_point last_{};
  bool warned_ = false;
  double started_unix_;
};

// The metrics text itself (exposed for tests).
std::string render_metrics(const RunReport& report, const std::string& command, double started_unix, bool finished);

}  // namespace rekey
