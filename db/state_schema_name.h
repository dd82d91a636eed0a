// The schema of rekey's own state tables unless --state-schema names another.
#pragma once

namespace rekey::db {

inline constexpr const char* kDefaultStateSchema = "rekey";

}  // namespace rekey::db
