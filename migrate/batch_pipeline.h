// The one pipeline shape both engines run: batches read by a serial stage,
// transformed in parallel, consumed by a serial stage in read order.
#pragma once

#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define REKEY_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define REKEY_THREAD_SANITIZER 1
#endif
#endif
#if defined(REKEY_THREAD_SANITIZER)
#include <sanitizer/tsan_interface.h>
#endif

namespace rekey {

// `wanted`, at most what TBB runs by default (the machine's cores): asking
// for more changes nothing but makes TBB print a warning on stderr. Thread-safe.
inline int arena_concurrency(std::size_t wanted) {
  return std::max(1, std::min(static_cast<int>(wanted), tbb::info::default_concurrency()));
}

namespace pipeline_detail {

// What libtbb guarantees, told to ThreadSanitizer (scripts/test.sh --tsan),
// which cannot see it because Debian's libtbb is not built with it: a batch
// handed on by one stage is taken over by the next after everything the
// first did to it, and the runs of a serial stage follow one another. Every
// other ordering between stages is left for ThreadSanitizer to check. Outside
// a ThreadSanitizer build these compile to nothing.
inline void handed_on([[maybe_unused]] const void* object) {
#if defined(REKEY_THREAD_SANITIZER)
  if (object != nullptr) __tsan_release(const_cast<void*>(object));
#endif
}

inline void taken_over([[maybe_unused]] const void* object) {
#if defined(REKEY_THREAD_SANITIZER)
  if (object != nullptr) __tsan_acquire(const_cast<void*>(object));
#endif
}

// The points of one pipeline run that its stages' runs are ordered against.
struct RunOrder {
  char started = 0;    // the caller's work before the run, seen by every stage
  char finished = 0;   // every stage's work, seen by the caller afterwards
  char reading = 0;    // one run of the serial read stage after another
  char consuming = 0;  // one run of the serial consume stage after another
};

// Brackets one run of a stage; `serial_stage` is null for the parallel one.
class StageRun {
 public:
  StageRun(const RunOrder& order, const char* serial_stage) : order_(order), serial_stage_(serial_stage) {
    taken_over(&order_.started);
    if (serial_stage_ != nullptr) taken_over(serial_stage_);
  }
  ~StageRun() {
    if (serial_stage_ != nullptr) handed_on(serial_stage_);
    handed_on(&order_.finished);
  }
  StageRun(const StageRun&) = delete;
  StageRun& operator=(const StageRun&) = delete;

 private:
  const RunOrder& order_;
  const char* serial_stage_;
};

// Brackets the whole run on the calling thread.
class CallerRun {
 public:
  explicit CallerRun(const RunOrder& order) : order_(order) { handed_on(&order_.started); }
  ~CallerRun() { taken_over(&order_.finished); }
  CallerRun(const CallerRun&) = delete;
  CallerRun& operator=(const CallerRun&) = delete;

 private:
  const RunOrder& order_;
};

// Owns the batches between the read stage and the consume stage. libtbb
// passes a batch from stage to stage as a bare pointer, and frees nothing it
// holds when a stage throws: here every batch has an owner until consumed, or
// until the pipeline ends. Slot n % size holds batch n: TBB starts reading
// batch n only after n - size + 1 batches have left the pipeline, and the
// consume stage takes them in read order, so batch n - size is gone.
// Thread safety: keep() is called by the read stage only, consumed() by the
// consume stage only; the slot they share is handed over as TBB orders them.
template <class Batch>
class InFlightBatches {
 public:
  explicit InFlightBatches(std::size_t size) : slots_(size) {}

  Batch* keep(std::unique_ptr<Batch> batch) {
    std::unique_ptr<Batch>& slot = slots_[kept_++ % slots_.size()];
    taken_over(&slot);
    if (slot) throw std::logic_error("batch pipeline: more batches in flight than tokens");
    slot = std::move(batch);
    return slot.get();
  }

  void consumed(const Batch* batch) {
    std::unique_ptr<Batch>& slot = slots_[consumed_++ % slots_.size()];
    if (slot.get() != batch) throw std::logic_error("batch pipeline: batches consumed out of order");
    slot.reset();
    handed_on(&slot);
  }

 private:
  std::vector<std::unique_ptr<Batch>> slots_;
  std::size_t kept_ = 0;      // read stage only
  std::size_t consumed_ = 0;  // consume stage only
};

}  // namespace pipeline_detail

// Runs read → transform → consume over batches of type Batch, at most
// `in_flight` at once, on an arena of at most `threads` threads, and returns
// when `read` has returned null and every batch read has been consumed.
//   read:      () -> std::unique_ptr<Batch>, serial; null ends the pipeline.
//   transform: (Batch&) -> void, parallel.
//   consume:   (Batch&) -> void, serial, in the order the batches were read.
// Thread safety: `read` and `consume` may run at the same time on different
// threads, each never concurrently with itself; `transform` runs concurrently
// with everything. An exception thrown by a stage cancels the pipeline and
// propagates to the caller; every batch is freed by then.
template <class Batch, class Read, class Transform, class Consume>
void run_batch_pipeline(std::size_t threads, std::size_t in_flight, Read read, Transform transform, Consume consume) {
  using pipeline_detail::handed_on;
  using pipeline_detail::StageRun;
  using pipeline_detail::taken_over;
  in_flight = std::max<std::size_t>(1, in_flight);
  const pipeline_detail::RunOrder order;
  pipeline_detail::InFlightBatches<Batch> batches(in_flight);
  const pipeline_detail::CallerRun caller(order);  // before `batches` are freed
  const auto read_stage = [&](tbb::flow_control& fc) -> Batch* {
    const StageRun run(order, &order.reading);
    std::unique_ptr<Batch> batch = read();
    if (!batch) {
      fc.stop();
      return nullptr;
    }
    Batch* kept = batches.keep(std::move(batch));
    handed_on(kept);
    return kept;
  };
  const auto transform_stage = [&](Batch* batch) {
    const StageRun run(order, nullptr);
    taken_over(batch);
    transform(*batch);
    handed_on(batch);
    return batch;
  };
  const auto consume_stage = [&](Batch* batch) {
    const StageRun run(order, &order.consuming);
    taken_over(batch);
    consume(*batch);
    batches.consumed(batch);
  };
  tbb::task_arena arena(arena_concurrency(threads));
  arena.execute([&] {
    tbb::parallel_pipeline(in_flight,
                           tbb::make_filter<void, Batch*>(tbb::filter_mode::serial_in_order, read_stage) &
                               tbb::make_filter<Batch*, Batch*>(tbb::filter_mode::parallel, transform_stage) &
                               tbb::make_filter<Batch*, void>(tbb::filter_mode::serial_in_order, consume_stage));
  });
}

}  // namespace rekey
