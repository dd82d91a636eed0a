#include <malloc.h>

#include "migrate/cli.h"

int main(int argc, char** argv) {
  // Buffers of 128 KiB and more (the batches of large values) are mapped on
  // their own and given back when freed. Left to itself, glibc raises this
  // threshold after the first such frees, and a table of 1 MB values then
  // leaves its batches behind in the heap: twice the peak RSS.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  return rekey::run_cli(argc, argv);
}
