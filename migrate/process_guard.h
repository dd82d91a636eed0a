// Process-wide protections for a program that holds keys and plaintext.
#pragma once

namespace rekey {

// Makes the process non-dumpable (no ptrace attach by other users, no
// /proc/PID/mem reads) and sets the core-file limit to zero. Best effort:
// failures are logged as warnings.
void harden_process();

}  // namespace rekey
