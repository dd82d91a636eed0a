// The threads a pipeline's task arena asks TBB for.
#pragma once

#include <tbb/info.h>

#include <algorithm>
#include <cstddef>

namespace rekey {

// `wanted`, at most what TBB runs by default (the machine's cores): asking
// for more changes nothing but makes TBB print a warning on stderr. Thread-safe.
inline int arena_concurrency(std::size_t wanted) {
  return std::max(1, std::min(static_cast<int>(wanted), tbb::info::default_concurrency()));
}

}  // namespace rekey
