#include "migrate/discovery.h"

#include "migrate/errors.h"

namespace rekey {

std::vector<DiscoveredColumn> discover_columns(const std::string& /*conninfo*/, const DiscoveryOptions& /*options*/,
                                               const crypto::Keyring* /*keyring*/) {
  throw UsageError("discovery is not available yet");
}

}  // namespace rekey
