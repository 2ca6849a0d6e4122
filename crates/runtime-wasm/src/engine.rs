//! The one place where the wasmtime engine is configured.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Activations that may run at once in one runtime; the pooling allocator reserves slots for
/// this many, and the runtime queues the rest.
pub const MAX_CONCURRENT: u32 = 128;

/// How often the epoch advances. Timeouts are counted in these ticks, and a running guest
/// yields to the scheduler at every tick so that its timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

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

/// Builds the engine:
/// - Cranelift, optimizing for speed; code is compiled once at create or update.
/// - Pooling allocator: instances, memories, tables and fiber stacks come from pre-reserved
///   slots, so instantiation is a few microseconds and memory is returned with `madvise`.
/// - Epoch interruption: a ticker thread advances the epoch every [`EPOCH_TICK`]; each store
///   yields at every tick and is dropped when its timeout expires.
/// - Only the features wasmtime builds in by default that Gust compiled in (no threads, no GC).
pub fn build(limits: EngineLimits) -> wasmtime::Result<Engine> {
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

    let weak = engine.weak();
    std::thread::Builder::new()
        .name("gust-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    Ok(engine)
}
