//! The one place where the wasmtime engine is configured.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Activations that may run at once in one runtime; the pooling allocator reserves slots for
/// this many, and the runtime queues the rest.
pub const MAX_CONCURRENT: u32 = 128;

/// How often the epoch advances. Timeouts are counted in these ticks, and a running guest
/// yields to the scheduler at every tick so that its timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long the epoch goes on advancing after the last activation ended; then the ticker
/// sleeps until the next one starts (an idle runtime does not wake a core every tick).
const TICK_WHILE_IDLE: Duration = Duration::from_secs(1);

/// Sizes that bound every instance, whatever its action's limits.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Largest linear memory any instance may have (the largest action memory limit).
    pub max_memory: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_memory: 512 << 20,
        }
    }
}

/// Builds the engine and the activation slots that drive its epoch:
/// - Cranelift, optimizing for speed; code is compiled once at create or update.
/// - Pooling allocator: instances, memories, tables and fiber stacks come from pre-reserved
///   slots, so instantiation is a few microseconds and memory is returned with `madvise`.
/// - Epoch interruption: a ticker thread advances the epoch every [`EPOCH_TICK`] while an
///   activation holds a slot (and for [`TICK_WHILE_IDLE`] after); each store yields at every
///   tick and is dropped when its timeout expires.
/// - Only the features wasmtime builds in by default that Gust compiled in (no threads, no GC).
pub fn build(limits: EngineLimits) -> wasmtime::Result<(Engine, Arc<Slots>)> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_CONCURRENT)
        .total_core_instances(MAX_CONCURRENT * 8)
        .total_memories(MAX_CONCURRENT * 2)
        .total_tables(MAX_CONCURRENT * 8)
        .total_stacks(MAX_CONCURRENT)
        // One activation may not take more than its share: a component (a Rust wasip2
        // command is one main module plus a few adapter shims) gets a handful of core
        // instances and tables, and at most two memories; the limiter caps their total size.
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(limits.max_memory)
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        .table_elements(100_000)
        // Reset a freed slot by rewriting only its dirty pages (PAGEMAP_SCAN, Linux 6.7+)
        // instead of unmapping them: no TLB shootdown across cores, no page faults on reuse.
        // Up to this much stays resident per slot.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(256 << 10)
        .async_stack_keep_resident(128 << 10);

    let mut config = Config::new();
    config
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;

    let ticker = Arc::new(Ticker::default());
    let weak = engine.weak();
    let ticking = ticker.clone();
    std::thread::Builder::new()
        .name("gust-epoch".into())
        .spawn(move || ticking.run(&weak))
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    let slots = Arc::new(Slots {
        permits: Semaphore::new(MAX_CONCURRENT as usize),
        ticker,
    });
    Ok((engine, slots))
}

/// The right to run one activation: at most [`MAX_CONCURRENT`] are held at once, and while
/// any is held the epoch advances.
pub(crate) struct Slots {
    permits: Semaphore,
    ticker: Arc<Ticker>,
}

/// One held slot; the activation's store must be dropped before it.
pub(crate) struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    ticker: &'a Ticker,
}

impl Slots {
    /// Slots held now: activations (and wasi:http requests) running.
    pub(crate) fn held(&self) -> usize {
        (MAX_CONCURRENT as usize).saturating_sub(self.permits.available_permits())
    }

    /// Waits for a free slot; `None` once the runtime is closed.
    pub(crate) async fn acquire(&self) -> Option<Slot<'_>> {
        let permit = self.permits.acquire().await.ok()?;
        self.ticker.started();
        Some(Slot {
            _permit: permit,
            ticker: &self.ticker,
        })
    }

    /// Whether the ticker sleeps, waiting for an activation.
    #[cfg(test)]
    pub(crate) fn parked(&self) -> bool {
        self.ticker.lock().parked
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.ticker.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // No activation can start any more: the ticker thread ends.
        let mut state = self.ticker.lock();
        state.stopped = true;
        self.ticker.wake.notify_one();
    }
}

#[derive(Default)]
struct Ticker {
    /// Activations holding a slot.
    running: AtomicUsize,
    state: Mutex<TickerState>,
    wake: Condvar,
}

#[derive(Default)]
struct TickerState {
    /// The ticker waits for an activation to start.
    parked: bool,
    stopped: bool,
}

impl Ticker {
    fn lock(&self) -> MutexGuard<'_, TickerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(&self) {
        if self.running.fetch_add(1, Ordering::SeqCst) == 0 {
            // The ticker re-checks `running` under the lock before it waits, so either it
            // sees this activation or it is waiting by the time the lock is ours.
            if self.lock().parked {
                self.wake.notify_one();
            }
        }
    }

    /// The ticker thread: advances the epoch every tick while activations run, sleeps when
    /// none has run for a while, ends when the engine or the slots are gone.
    fn run(&self, engine: &wasmtime::EngineWeak) {
        let idle_ticks = (TICK_WHILE_IDLE.as_millis() / EPOCH_TICK.as_millis().max(1)) as u32;
        let mut idle = 0u32;
        loop {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            engine.increment_epoch();
            drop(engine);
            if self.running.load(Ordering::SeqCst) > 0 {
                idle = 0;
            } else {
                idle += 1;
            }
            if idle >= idle_ticks {
                let mut state = self.lock();
                state.parked = true;
                while self.running.load(Ordering::SeqCst) == 0 && !state.stopped {
                    state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.parked = false;
                if state.stopped {
                    return;
                }
                idle = 0;
            }
            std::thread::sleep(EPOCH_TICK);
        }
    }
}
