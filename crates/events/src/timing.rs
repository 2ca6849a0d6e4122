//! When a schedule's ticks fall: cron expressions (5 fields, or 6 with seconds first) in an
//! IANA time zone (croner over jiff), fixed intervals, and single dates.
//!
//! Daylight saving time, as croner resolves it: in a gap (spring forward) a tick at a fixed
//! local time that does not exist fires right after the gap, and wildcard ticks inside the
//! gap are skipped; in an overlap (fall back) a fixed-time tick fires once, at its first
//! occurrence, and wildcard ticks fire for each real instant.

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use gust_model::{ScheduleSpec, Timing};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Parses a cron expression of 5 or 6 fields; `None` if croner refuses it.
pub fn parse_cron(cron: &str) -> Option<Cron> {
    if cron.len() > 256 {
        return None;
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(cron)
        .ok()
}

/// The time zone an IANA name names; `None` for an unknown one.
pub fn time_zone(name: Option<&str>) -> Option<TimeZone> {
    match name {
        None | Some("") => Some(TimeZone::UTC),
        Some(n) => TimeZone::get(n).ok(),
    }
}

/// The first tick of `timing` strictly after `after_ms`, if any.
pub fn tick_after(timing: &Timing, after_ms: u64) -> Option<u64> {
    match timing {
        Timing::Cron { cron, timezone } => {
            let cron = parse_cron(cron)?;
            let tz = time_zone(timezone.as_deref())?;
            let at = Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
            let next = cron.find_next_occurrence(&at.to_zoned(tz), false).ok()?;
            u64::try_from(next.timestamp().as_millisecond()).ok()
        }
        Timing::Interval { minutes, origin_ms } => {
            let period = minutes.checked_mul(60_000).filter(|p| *p > 0)?;
            if after_ms < *origin_ms {
                return Some(*origin_ms);
            }
            let k = (after_ms - origin_ms) / period + 1;
            origin_ms.checked_add(k.checked_mul(period)?)
        }
        Timing::Once { at_ms, .. } => (*at_ms > after_ms).then_some(*at_ms),
    }
}

/// The `n`th tick of `spec` counting back from the last one at or before `at_ms` (`n` = 1:
/// that last one), within its start date; `None` when it has fewer than `n` such ticks (a
/// `once` schedule has one).
pub fn tick_back(spec: &ScheduleSpec, at_ms: u64, n: u64) -> Option<u64> {
    let n = n.max(1);
    let start = spec.start_ms.unwrap_or(0);
    let tick = match &spec.timing {
        Timing::Cron { cron, timezone } => {
            let cron = parse_cron(cron)?;
            let tz = time_zone(timezone.as_deref())?;
            let at = Timestamp::from_millisecond(i64::try_from(at_ms).ok()?).ok()?;
            let mut t = cron.find_previous_occurrence(&at.to_zoned(tz), true).ok()?;
            for _ in 1..n {
                t = cron.find_previous_occurrence(&t, false).ok()?;
            }
            u64::try_from(t.timestamp().as_millisecond()).ok()?
        }
        Timing::Interval { minutes, origin_ms } => {
            let period = minutes.checked_mul(60_000).filter(|p| *p > 0)?;
            let last = origin_ms + at_ms.checked_sub(*origin_ms)? / period * period;
            last.checked_sub((n - 1).checked_mul(period)?)
                .filter(|t| t >= origin_ms)?
        }
        Timing::Once { .. } => return None,
    };
    (tick >= start).then_some(tick)
}

/// The first tick of `spec` strictly after `after_ms`, within its start and stop dates.
pub fn next_tick(spec: &ScheduleSpec, after_ms: u64) -> Option<u64> {
    if spec.paused {
        return None;
    }
    let after = match spec.start_ms {
        Some(start) => after_ms.max(start.saturating_sub(1)),
        None => after_ms,
    };
    let next = tick_after(&spec.timing, after)?;
    match spec.stop_ms {
        Some(stop) if next > stop => None,
        _ => Some(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    fn cron(c: &str, tz: &str) -> Timing {
        Timing::Cron {
            cron: c.into(),
            timezone: Some(tz.into()),
        }
    }

    #[test]
    fn five_and_six_field_crons() {
        let t = cron("*/8 * * * * *", "UTC");
        assert_eq!(
            tick_after(&t, ms("2026-01-01T00:00:01Z")),
            Some(ms("2026-01-01T00:00:08Z"))
        );
        let t = cron("30 2 * * *", "UTC");
        assert_eq!(
            tick_after(&t, ms("2026-01-01T03:00:00Z")),
            Some(ms("2026-01-02T02:30:00Z"))
        );
        assert!(parse_cron("***").is_none());
        assert!(parse_cron("1234").is_none());
        assert!(parse_cron("* * * * * * * *").is_none());
        assert!(parse_cron("61 * * * *").is_none());
        assert!(time_zone(Some("America/RTP")).is_none());
        assert!(time_zone(Some("Europe/Berlin")).is_some());
    }

    #[test]
    fn dst_gaps_and_overlaps_follow_croner() {
        // Berlin springs forward at 02:00 local on 2026-03-29 (to 03:00): 02:30 does not
        // exist that day and fires right after the gap, at 03:00 local (01:00 UTC).
        let t = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            tick_after(&t, ms("2026-03-28T23:00:00Z")),
            Some(ms("2026-03-29T01:00:00Z"))
        );
        // Berlin falls back at 03:00 local on 2026-10-25: 02:30 happens twice, fires once.
        let first = tick_after(&t, ms("2026-10-24T23:00:00Z")).unwrap();
        assert_eq!(first, ms("2026-10-25T00:30:00Z"));
        let next = tick_after(&t, first).unwrap();
        assert_eq!(next, ms("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn intervals_count_from_their_origin_and_stop_at_the_stop_date() {
        let origin = ms("2026-01-01T00:00:00Z");
        let t = Timing::Interval {
            minutes: 5,
            origin_ms: origin,
        };
        assert_eq!(tick_after(&t, origin - 1), Some(origin));
        assert_eq!(tick_after(&t, origin), Some(origin + 300_000));
        assert_eq!(tick_after(&t, origin + 299_999), Some(origin + 300_000));
        let spec = ScheduleSpec {
            timing: t,
            payload: Default::default(),
            start_ms: None,
            stop_ms: Some(origin + 400_000),
            feed: String::new(),
            config: Default::default(),
            paused: false,
            changed_ms: 0,
        };
        assert_eq!(next_tick(&spec, origin), Some(origin + 300_000));
        assert_eq!(next_tick(&spec, origin + 300_000), None);
    }

    #[test]
    fn ticks_count_back_from_a_time() {
        let spec = |timing| ScheduleSpec {
            timing,
            payload: Default::default(),
            start_ms: None,
            stop_ms: None,
            feed: String::new(),
            config: Default::default(),
            paused: false,
            changed_ms: 0,
        };
        let every_second = spec(cron("* * * * * *", "UTC"));
        let at = ms("2026-01-01T00:00:10.500Z");
        assert_eq!(
            tick_back(&every_second, at, 1),
            Some(ms("2026-01-01T00:00:10Z"))
        );
        assert_eq!(
            tick_back(&every_second, at, 3),
            Some(ms("2026-01-01T00:00:08Z"))
        );
        let origin = ms("2026-01-01T00:00:00Z");
        let every_minute = spec(Timing::Interval {
            minutes: 1,
            origin_ms: origin,
        });
        assert_eq!(
            tick_back(&every_minute, origin + 150_000, 2),
            Some(origin + 60_000)
        );
        assert_eq!(tick_back(&every_minute, origin + 150_000, 4), None);
        let once = spec(Timing::Once {
            at_ms: origin,
            delete_after_fire: Default::default(),
        });
        assert_eq!(tick_back(&once, origin, 1), None);
    }

    #[test]
    fn once_fires_only_in_the_future() {
        let t = Timing::Once {
            at_ms: 1000,
            delete_after_fire: Default::default(),
        };
        assert_eq!(tick_after(&t, 999), Some(1000));
        assert_eq!(tick_after(&t, 1000), None);
    }
}
