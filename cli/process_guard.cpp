#include "cli/process_guard.h"

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "common/log.h"

namespace rekey {

void harden_process() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) log::warn("cannot make the process non-dumpable");
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) log::warn("cannot disable core files");
}

void bound_heap_growth() { ::mallopt(M_MMAP_THRESHOLD, 128 * 1024); }

}  // namespace rekey
