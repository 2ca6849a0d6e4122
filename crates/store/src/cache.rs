//! A short-lived cache of entities read from the store (actions, packages, namespaces,
//! sites), so a hot request path does not read the store per request.
//!
//! **Invariant:** a write made through the process that holds the cache is seen by its next
//! read: writers call [`EntityCache::forget`], and a read that raced a write does not cache
//! its (maybe old) answer. Writes made through other processes are seen within [`CACHE_TTL`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a cached answer is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Most entries a cache holds (unknown keys are cached too: a flood of made-up ones must not
/// grow it forever). When it is full, expired entries are dropped; only if none has expired
/// does it start over. (It once started over at 10,000: 10,000 actions used at random emptied
/// it again and again.)
const MAX_CACHED: usize = 100_000;

/// An answer (absent ones included) and when it was read.
type Entry<V> = (Instant, Option<Arc<V>>);

/// Cached answers by key.
pub struct EntityCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    /// Bumped by every write, so a read that raced it does not cache its old answer.
    generation: AtomicU64,
    /// How long an answer is trusted ([`CACHE_TTL`] unless set).
    ttl: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Eq + Hash + Clone, V> Default for EntityCache<K, V> {
    fn default() -> Self {
        EntityCache {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ttl: CACHE_TTL,
        }
    }
}

impl<K: Eq + Hash + Clone, V> EntityCache<K, V> {
    /// A cache whose answers are trusted for `ttl`: for entities only the process holding
    /// the cache writes (a single node), a long one spares the store a read per entity per
    /// second (10,000 actions used at random: most reads missed with one second).
    pub fn with_ttl(ttl: Duration) -> Self {
        EntityCache {
            ttl,
            ..EntityCache::default()
        }
    }

    /// The cached answer for `key`, or `fetch`'s (then cached).
    pub async fn get_or_fetch<F, E>(&self, key: &K, fetch: F) -> Result<Option<Arc<V>>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        if let Some((at, v)) = lock(&self.entries).get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(v.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let v = fetch.await?.map(Arc::new);
        let mut entries = lock(&self.entries);
        if self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= MAX_CACHED {
                entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            }
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
            entries.insert(key.clone(), (Instant::now(), v.clone()));
        }
        Ok(v)
    }

    /// Drops `key` after a write.
    pub fn forget(&self, key: &K) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }

    /// Drops every entry (a write that touched many keys).
    pub fn forget_all(&self) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}
