// The errors of the ports (table_port.h) that the engine tells apart: to
// retry after a pause, to skip rows another transaction holds locked, or to
// give up. An adapter converts its own errors into these (db/ converts
// libpqxx's in one place: db::as_port_errors), so that the engine and its
// tests never see a driver's exceptions.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace rekey {

enum class PortFailure {
  kPermanent,       // retrying cannot help: a bad statement, a privilege, a constraint
  kTransient,       // worth retrying: a serialization failure, a deadlock
  kLockTimeout,     // a lock wait or a statement hit its timeout (transient)
  kLostConnection,  // the connection broke or the server is restarting (transient)
  kLeaseLost,       // the work unit being written passed to another worker: nothing was written
};

// The message is one line fit for a log (what failed, an SQLSTATE), never a
// value read from a table.
class PortError : public std::runtime_error {
 public:
  PortError(PortFailure failure, const std::string& message) : std::runtime_error(message), failure_(failure) {}
  PortFailure failure() const { return failure_; }

 private:
  PortFailure failure_;
};

// True for a PortError worth retrying after a pause (any failure but
// kPermanent and kLeaseLost).
inline bool is_transient(const std::exception& e) {
  const auto* port = dynamic_cast<const PortError*>(&e);
  return port != nullptr && port->failure() != PortFailure::kPermanent && port->failure() != PortFailure::kLeaseLost;
}

// True for a PortError of kLeaseLost.
inline bool is_lease_lost(const std::exception& e) {
  const auto* port = dynamic_cast<const PortError*>(&e);
  return port != nullptr && port->failure() == PortFailure::kLeaseLost;
}

// True for a PortError of kLockTimeout.
inline bool is_lock_timeout(const std::exception& e) {
  const auto* port = dynamic_cast<const PortError*>(&e);
  return port != nullptr && port->failure() == PortFailure::kLockTimeout;
}

}  // namespace rekey
