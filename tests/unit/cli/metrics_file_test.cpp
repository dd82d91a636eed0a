// The Prometheus metrics rekey writes (cli/metrics_file.h), and the Grafana
// dashboard made for them (contrib/grafana/rekey.json): every metric and
// label the dashboard queries is one rekey writes.
#include "cli/metrics_file.h"

#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using Families = std::map<std::string, std::set<std::string>>;  // metric -> its label names

// A report with every part the metrics show: a table, pauses, the pace.
rekey::RunReport full_report() {
  rekey::RunReport r;
  r.run_id = 7;
  r.status = rekey::db::RunStatus::kFinished;
  r.new_key_fingerprint = "1a2b3c4d";
  r.old_key_fingerprints = {"5e6f7a8b"};
  rekey::TableReport t{"public.users", {"phone_enc"}, {rekey::ColumnCounts{}}};
  t.rows_seen = 10;
  t.estimated_rows = 20;
  r.tables.push_back(t);
  r.seconds_paused_by = {{"pace", 1.5}, {"replica lag", 2}};
  r.duration_seconds = 3;
  return r;
}

// The metric families in a text exposition, with the label names of their samples.
Families families_in(const std::string& text) {
  Families out;
  std::istringstream in(text);
  const std::regex sample(R"(^([a-z0-9_]+)\{([^}]*)\} )");
  const std::regex label(R"(([a-z_]+)=")");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) out[line.substr(7, line.find(' ', 7) - 7)];
    std::smatch m;
    if (!std::regex_search(line, m, sample)) continue;
    const std::string labels = m[2];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label); it != std::sregex_iterator(); ++it) {
      out[m[1]].insert((*it)[1]);
    }
  }
  return out;
}

// Every PromQL expression of the dashboard: its panels' targets and its variables' queries.
std::vector<std::string> expressions(const json& dashboard) {
  std::vector<std::string> out;
  for (const auto& panel : dashboard.at("panels")) {
    REQUIRE_MESSAGE(!panel.at("targets").empty(), panel.at("title"));
    for (const auto& target : panel.at("targets")) out.push_back(target.at("expr"));
  }
  for (const auto& variable : dashboard.at("templating").at("list")) {
    if (variable.contains("definition")) out.push_back(variable.at("definition"));
  }
  return out;
}

}  // namespace

TEST_SUITE("cli.metrics_file") {
  TEST_CASE("every metric and label the Grafana dashboard queries is one rekey writes") {
    const Families written = families_in(rekey::render_metrics(full_report(), "rotate", 1.7e9, true));
    REQUIRE(written.count("rekey_table_rows_seen") == 1);
    const json dashboard = json::parse(rekey::it::read_file(rekey::it::source_path("contrib/grafana/rekey.json")));
    const std::regex metric(R"(\b(rekey_[a-z0-9_]+)(\{([^}]*)\})?)");
    const std::regex label(R"(([a-z_]+)\s*(=~|!=|=|!~))");
    const std::regex by(R"(\bby \(([^)]*)\))");
    std::set<std::string> queried;
    for (const std::string& expr : expressions(dashboard)) {
      CAPTURE(expr);
      std::set<std::string> labels_here;
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), metric); it != std::sregex_iterator(); ++it) {
        const std::string name = (*it)[1];
        queried.insert(name);
        REQUIRE_MESSAGE(written.count(name) == 1, "the dashboard queries " << name << ", which rekey does not write");
        labels_here.insert(written.at(name).begin(), written.at(name).end());
        const std::string selector = (*it)[3];
        for (auto l = std::sregex_iterator(selector.begin(), selector.end(), label); l != std::sregex_iterator(); ++l) {
          CHECK_MESSAGE(written.at(name).count((*l)[1]) == 1, name << " has no label " << (*l)[1]);
        }
      }
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), by); it != std::sregex_iterator(); ++it) {
        std::istringstream names((*it)[1].str());
        for (std::string name; std::getline(names, name, ',');) {
          name.erase(0, name.find_first_not_of(' '));
          CHECK_MESSAGE(labels_here.count(name) == 1, "grouped by " << name << ", a label none of its metrics has");
        }
      }
    }
    // What the issue asks the dashboard to show: rows/s, progress per table, failures, pace, time paused.
    for (const char* shown : {"rekey_rows_seen", "rekey_table_rows_seen", "rekey_table_rows_estimated", "rekey_values",
                              "rekey_pace_rows_per_second", "rekey_paused_seconds_by_cause", "rekey_exit_code"}) {
      CHECK_MESSAGE(queried.count(shown) == 1, shown);
    }
    std::set<int> ids;
    for (const auto& panel : dashboard.at("panels")) CHECK(ids.insert(panel.at("id").get<int>()).second);
  }
}
