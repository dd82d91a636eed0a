// Process-wide settings for a program that holds keys and plaintext and
// reads batches of large values.
#pragma once

namespace rekey {

// Makes the process non-dumpable (no ptrace attach by other users, no
// /proc/PID/mem reads) and sets the core-file limit to zero. Best effort:
// failures are logged as warnings.
void harden_process();

// Keeps buffers of 128 KiB and more (the batches of large values) mapped on
// their own and given back when freed. Left to itself, glibc raises this
// threshold after the first such frees, and a table of 1 MB values then
// leaves its batches behind in the heap: twice the peak RSS.
void bound_heap_growth();

}  // namespace rekey
