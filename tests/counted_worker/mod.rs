//! A worker loop on a thread of the test process whose heap allocations on
//! that thread are counted (`engine_alloc`, `engine_alloc_starved`): a
//! counting global allocator counts those made on a worker's event-loop
//! thread only, each worker's in its own counter.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use ringmaster_engine::{EngineConfig, Handler, Sources, StatsBlock};

use crate::in_process::InProcessWorker;

struct CountingAllocator;

thread_local! {
    /// The counter of the worker running on this thread, if it is one. Each
    /// worker has its own: the tests run in parallel, and one worker's
    /// start-up must not count in another's window.
    static THIS_THREAD_COUNTER: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

fn note_allocation() {
    if let Some(counter) = THIS_THREAD_COUNTER.try_with(Cell::get).ok().flatten() {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged; counting
// touches only an atomic and a const thread-local (neither allocates).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A worker on its own thread, counting that thread's allocations.
pub struct CountedWorker {
    worker: InProcessWorker,
    allocations: &'static AtomicU64,
}

impl CountedWorker {
    /// A worker with `config` taking connections from `listener` (accepted)
    /// or `channel` (handed over), answering with the handler `make_handler`
    /// makes on its thread (counted among its start-up allocations).
    pub fn start<H: Handler>(
        config: EngineConfig,
        listener: Option<OwnedFd>,
        channel: Option<OwnedFd>,
        make_handler: impl FnOnce() -> H + Send + 'static,
    ) -> CountedWorker {
        // Leaked on purpose: one small counter per test worker, read after it ends.
        let allocations: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let worker = InProcessWorker::spawn(move |shutdown| {
            let stats = StatsBlock::private(1)?;
            let counters = stats.slot(0).expect("slot 0");
            THIS_THREAD_COUNTER.with(|c| c.set(Some(allocations)));
            let sources =
                Sources { listener, own_listener: false, channel, shutdown: Some(shutdown), accept_tally: None };
            let result = ringmaster_engine::run(&config, sources, counters, &mut make_handler());
            THIS_THREAD_COUNTER.with(|c| c.set(None));
            result
        });
        CountedWorker { worker, allocations }
    }

    /// Its thread's allocations so far.
    pub fn allocated(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Drains and stops it: its thread's allocations, all of them.
    pub fn stop(self) -> u64 {
        let CountedWorker { worker, allocations } = self;
        worker.stop();
        allocations.load(Ordering::Relaxed)
    }
}
