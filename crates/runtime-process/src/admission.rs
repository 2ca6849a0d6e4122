//! Admission by real use (decision 0029): what an instance is counted at against the pool's
//! budget, when the host is short of memory, and which instances go when it is.
//!
//! An instance's declared memory stays its hard cgroup limit; the budget counts what instances
//! really use. An idle (or frozen) instance counts what its group uses; a busy one what it was
//! admitted with (what it used when it was taken, plus a headroom for its growth, at most its
//! limit) or more if it grew past that; one being started counts its kind's usual footprint
//! plus the headroom. Under pressure (the pool's use over its budget, the host's available
//! memory under the reserve, or the kernel's memory pressure stall) idle instances go first,
//! least recently used first; a busy instance is stopped only when it grew past its admission,
//! the furthest past first: one that stays within what it was admitted with is never stopped
//! for another's growth.

use std::time::Instant;

/// What a busy instance may grow by beyond what it used when it was taken, by default.
pub const DEFAULT_HEADROOM: u64 = 64 * 1024 * 1024;
/// A kind's footprint before any instance of it has been measured.
pub const FIRST_FOOTPRINT: u64 = 32 * 1024 * 1024;
/// The kernel's `full avg10` memory stall (percent of the last 10 s in which every task
/// waited for memory) from which idle instances are stopped, one per round.
const STALL_PERCENT: f64 = 5.0;

/// What an instance taken now is admitted with: what it used (`None`: not measured, or no
/// cgroup) plus `headroom`, within its `limit`.
pub fn admission(used: Option<u64>, headroom: u64, limit: u64) -> u64 {
    used.map_or(limit, |u| u.saturating_add(headroom).min(limit))
}

/// The next footprint estimate of a kind, given its last estimate and a new idle measure.
pub fn learn(estimate: u64, measured: u64) -> u64 {
    (estimate.saturating_mul(3) / 4).saturating_add(measured / 4)
}

/// One instance the pressure policy may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub busy: bool,
    pub last_used: Instant,
    /// Bytes it uses now (as last measured).
    pub used: u64,
    /// Bytes it was admitted with (busy ones).
    pub admitted: u64,
}

/// Which of `candidates` to stop to free `deficit` bytes: idle ones, least recently used
/// first; then, only if that is not enough, busy ones that use more than they were admitted
/// with, the furthest past their admission first. Indices into `candidates`.
pub fn victims(candidates: &[Candidate], deficit: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| !candidates[i].busy)
        .collect();
    order.sort_by_key(|&i| candidates[i].last_used);
    let mut grown: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].busy && candidates[i].used > candidates[i].admitted)
        .collect();
    grown.sort_by_key(|&i| std::cmp::Reverse(candidates[i].used - candidates[i].admitted));
    order.extend(grown);
    let mut freed = 0u64;
    let mut chosen = Vec::new();
    for i in order {
        if freed >= deficit {
            break;
        }
        freed = freed.saturating_add(candidates[i].used);
        chosen.push(i);
    }
    chosen
}

/// The host's memory as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostMemory {
    pub total: u64,
    pub available: u64,
    /// `full avg10` of `/proc/pressure/memory` where the kernel has PSI.
    pub stall: Option<f64>,
}

impl HostMemory {
    /// Reads `/proc/meminfo` (and `/proc/pressure/memory`); `None` if it cannot be read.
    pub fn read() -> Option<HostMemory> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |key: &str| -> Option<u64> {
            let line = info.lines().find(|l| l.starts_with(key))?;
            let kb: u64 = line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024)
        };
        let stall = std::fs::read_to_string("/proc/pressure/memory")
            .ok()
            .and_then(|t| psi_full_avg10(&t));
        Some(HostMemory {
            total: field("MemTotal:")?,
            available: field("MemAvailable:")?,
            stall,
        })
    }

    /// The reserve kept free when none is configured: a twentieth of the host, within
    /// 128 MiB..1 GiB.
    pub fn default_reserve(&self) -> u64 {
        (self.total / 20).clamp(128 << 20, 1 << 30)
    }

    /// Bytes to free now so that `reserve` stays available (a stalled host asks for at least
    /// one instance: `one`).
    pub fn deficit(&self, reserve: u64, one: u64) -> u64 {
        let short = reserve.saturating_sub(self.available);
        match self.stall {
            Some(s) if s >= STALL_PERCENT => short.max(one),
            _ => short,
        }
    }
}

/// `full avg10=` of a PSI file's text.
fn psi_full_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("full "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MB: u64 = 1 << 20;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn idle_instances_go_first_least_recently_used_first() {
        let t = Instant::now();
        let c = [
            Candidate {
                busy: false,
                last_used: at(t, 30),
                used: 10 * MB,
                admitted: 0,
            },
            Candidate {
                busy: true,
                last_used: at(t, 0),
                used: 200 * MB,
                admitted: 50 * MB,
            },
            Candidate {
                busy: false,
                last_used: at(t, 10),
                used: 10 * MB,
                admitted: 0,
            },
        ];
        assert_eq!(victims(&c, 15 * MB), vec![2, 0]);
        assert_eq!(victims(&c, 5 * MB), vec![2]);
        assert!(victims(&c, 0).is_empty());
    }

    #[test]
    fn a_busy_instance_within_its_admission_is_never_chosen() {
        let t = Instant::now();
        let c = [
            // Another namespace's busy instance, large but within what it was admitted with.
            Candidate {
                busy: true,
                last_used: at(t, 0),
                used: 120 * MB,
                admitted: 128 * MB,
            },
            // The one that grew past its admission.
            Candidate {
                busy: true,
                last_used: at(t, 5),
                used: 300 * MB,
                admitted: 80 * MB,
            },
            Candidate {
                busy: true,
                last_used: at(t, 5),
                used: 90 * MB,
                admitted: 80 * MB,
            },
            Candidate {
                busy: false,
                last_used: at(t, 9),
                used: 8 * MB,
                admitted: 0,
            },
        ];
        assert_eq!(victims(&c, 100 * MB), vec![3, 1]);
        // However large the deficit, only those past their admission are stopped.
        assert_eq!(victims(&c, 10_000 * MB), vec![3, 1, 2]);
    }

    #[test]
    fn admission_is_use_plus_headroom_within_the_limit() {
        assert_eq!(admission(Some(10 * MB), 64 * MB, 256 * MB), 74 * MB);
        assert_eq!(admission(Some(200 * MB), 64 * MB, 256 * MB), 256 * MB);
        assert_eq!(admission(None, 64 * MB, 256 * MB), 256 * MB);
        assert_eq!(learn(32 * MB, 8 * MB), 26 * MB);
    }

    #[test]
    fn host_pressure_is_the_reserve_short_or_a_stall() {
        let h = HostMemory {
            total: 24 << 30,
            available: 900 * MB,
            stall: Some(0.0),
        };
        assert_eq!(h.default_reserve(), 1 << 30);
        assert_eq!(h.deficit(1 << 30, 10 * MB), 124 * MB);
        let calm = HostMemory {
            available: 2 << 30,
            ..h
        };
        assert_eq!(calm.deficit(1 << 30, 10 * MB), 0);
        let stalled = HostMemory {
            stall: Some(12.5),
            ..calm
        };
        assert_eq!(stalled.deficit(1 << 30, 10 * MB), 10 * MB);
        let psi = "some avg10=1.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=7.25 avg60=0.00 avg300=0.00 total=2\n";
        assert_eq!(psi_full_avg10(psi), Some(7.25));
        assert!(HostMemory::read().is_some_and(|h| h.total > 0));
    }
}
