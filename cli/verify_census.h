// `rekey verify`'s census: its options, what it counts (the plan) and what
// it counted, and the two ways it is shown (JSON, a table on stdout).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/db_options.h"
#include "cli/key_source.h"
#include "cli/scope.h"
#include "db/discovery_queries.h"
#include "db/state_schema_name.h"
#include "migrate/census_engine.h"

namespace rekey {

enum class OutputFormat { kTable, kJson };

struct VerifyOptions {
  DbOption db;
  std::vector<std::string> columns;
  bool discover = false;
  std::vector<std::string> exclude;
  KeyOptions keys;
  bool require_new = false;
  bool allow_no_tokens = false;
  std::string wait_for_transactions = "30s";
  std::int64_t sample = 0;
  std::string report;
  OutputFormat format = OutputFormat::kTable;
  std::string state_schema = db::kDefaultStateSchema;
  std::size_t batch_size = 5000;
  std::size_t batch_bytes = std::size_t{32} << 20;  // CensusSettings::batch_bytes
  std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
};

// One relation to count, and which of its values count.
struct CensusJob {
  db::ScopeRelation relation;
  ValuePolicy policy = ValuePolicy::kEveryValue;
};

struct RelationCensus {
  CensusJob job;
  TableShape shape;
  CensusOutcome outcome;
};

// Named columns count every value; with --discover, every other column of
// the database counts the values that hold a token.
struct Plan {
  std::vector<CensusJob> jobs;
  std::vector<Unchecked> unchecked;
  std::vector<std::string> excluded;
};

// True when the census counted no value at all: a gate that checked nothing
// (the wrong database?) proves nothing.
bool found_nothing(const std::vector<RelationCensus>& tables);

// The result as --format json and --report give it.
nlohmann::json verify_json(const std::vector<RelationCensus>& tables, const Plan& plan, const crypto::Keyring& keyring,
                           const VerifyOptions& o, int exit_code, bool complete, double seconds);

// The result as a table on stdout: counts per column, the first failures,
// what was not checked, and the verdict.
void print_verify_text(const std::vector<RelationCensus>& tables, const Plan& plan, const crypto::Keyring& keyring,
                       const VerifyOptions& o, int exit_code, double seconds);

}  // namespace rekey
