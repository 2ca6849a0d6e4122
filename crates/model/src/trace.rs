//! Trace context: W3C Trace Context level 1's `traceparent`
//! (`00-<trace id>-<parent id>-<flags>`), accepted from clients, carried on the bus in
//! [`crate::InvocationMessage::traceparent`] and stored in records as the `traceId`
//! annotation (decision 0026).
//!
//! Parsing is strict, as the recommendation asks of version `00`: 55 characters, lowercase
//! hex, neither id all zeros. A header that does not parse is ignored by its reader, which
//! starts a new trace instead.

use std::fmt;
use std::str::FromStr;

/// The only version this module writes and fully parses.
const VERSION: &str = "00";
/// The `sampled` bit of the flags.
const SAMPLED: u8 = 0x01;
/// Length of a version-`00` header: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
const LEN: usize = 55;

/// A W3C `traceparent`: the trace an operation belongs to and the span that is its parent
/// (the caller's, for a header received; this side's own, for one sent on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

/// Why a `traceparent` value was not accepted. Caused by the client that sent it; never an
/// error to answer, only a reason to start a new trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// not `version-traceid-parentid-flags` of 2, 32, 16 and 2 characters
    #[error("not version-traceid-parentid-flags of 2, 32, 16 and 2 characters")]
    Shape,
    /// a field is not lowercase hexadecimal
    #[error("a field is not lowercase hexadecimal")]
    NotHex,
    /// version `ff`, which the recommendation forbids
    #[error("version ff is forbidden")]
    ForbiddenVersion,
    /// the trace id or the parent id is all zeros
    #[error("the trace id or the parent id is all zeros")]
    ZeroId,
}

impl TraceParent {
    /// A new trace (random trace and span ids, sampled): for an invocation that came with
    /// no trace context, or with one that did not parse.
    pub fn new_root() -> TraceParent {
        TraceParent {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            flags: SAMPLED,
        }
    }

    /// A span inside this one's trace: same trace id and flags, a new span id. Its parent
    /// is `self.span_id()`.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_span_id(),
            ..*self
        }
    }

    /// The next span of an operation: a child of `incoming`, or the root of a new trace.
    pub fn continuing(incoming: Option<&TraceParent>) -> TraceParent {
        incoming.map_or_else(TraceParent::new_root, TraceParent::child)
    }

    /// Reads a header's value leniently: `None` when it is absent or malformed, so the
    /// caller starts a new trace (W3C: a malformed `traceparent` is ignored).
    pub fn from_header(value: Option<&str>) -> Option<TraceParent> {
        value.and_then(|v| v.parse().ok())
    }

    /// The trace id, as a number.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The span id (the `parent-id` field: the span this header's receiver is a child of).
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller records this trace (flag `sampled`): an unsampled trace is not
    /// exported, but its id is still stored.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as stored in the `traceId` annotation: 32 lowercase hex characters.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 lowercase hex characters.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

impl fmt::Display for TraceParent {
    /// The header's value, version `00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    /// Parses a header's value. Version `00` must be exactly 55 characters; a later version
    /// may add fields after the flags (a `-` and more), which are ignored, as the
    /// recommendation says; version `ff` is refused.
    fn from_str(s: &str) -> Result<TraceParent, TraceParentError> {
        let bytes = s.as_bytes();
        if bytes.len() < LEN {
            return Err(TraceParentError::Shape);
        }
        let (head, rest) = bytes.split_at(LEN);
        if [2, 35, 52].iter().any(|&i| head[i] != b'-') {
            return Err(TraceParentError::Shape);
        }
        let field = |from: usize, to: usize| -> Result<&str, TraceParentError> {
            let f = &head[from..to];
            if f.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                // ASCII hex digits only, so valid UTF-8.
                std::str::from_utf8(f).map_err(|_| TraceParentError::NotHex)
            } else {
                Err(TraceParentError::NotHex)
            }
        };
        let version = field(0, 2)?;
        if version == "ff" {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if version == VERSION && !rest.is_empty() {
            return Err(TraceParentError::Shape);
        }
        if version != VERSION && !rest.is_empty() && rest[0] != b'-' {
            return Err(TraceParentError::Shape);
        }
        let hex = |f: &str| u128::from_str_radix(f, 16).map_err(|_| TraceParentError::NotHex);
        let trace_id = hex(field(3, 35)?)?;
        let span_id = hex(field(36, 52)?)? as u64;
        let flags = hex(field(53, 55)?)? as u8;
        if trace_id == 0 || span_id == 0 {
            return Err(TraceParentError::ZeroId);
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

impl serde::Serialize for TraceParent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TraceParent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TraceParent, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A random trace id: a version-4 UUID's 122 random bits (never zero: its version bits are
/// set).
fn random_trace_id() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

/// A random span id: the low 64 bits of a version-4 UUID (62 random bits under its variant
/// bits, never zero).
fn random_span_id() -> u64 {
    uuid::Uuid::new_v4().as_u128() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example_parses_and_formats_back() {
        let p: TraceParent = VALID.parse().unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id_hex(), "00f067aa0ba902b7");
        assert!(p.sampled());
        assert_eq!(p.to_string(), VALID);
        let unsampled: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            .parse()
            .unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn malformed_values_are_refused() {
        use TraceParentError::*;
        for (value, why) in [
            ("", Shape),
            ("00", Shape),
            // Uppercase hex is not allowed.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                NotHex,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroId,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ForbiddenVersion,
            ),
            // Version 00 has nothing after the flags.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                Shape,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                NotHex,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                NotHex,
            ),
            // A multi-byte character where a hex digit belongs.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
                NotHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                Shape,
            ),
        ] {
            assert_eq!(value.parse::<TraceParent>(), Err(why), "{value:?}");
            assert_eq!(TraceParent::from_header(Some(value)), None);
        }
    }

    #[test]
    fn a_later_version_may_add_fields_after_the_flags() {
        let p: TraceParent = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"
            .parse()
            .unwrap();
        assert_eq!(p.to_string(), VALID);
        assert!(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"
                .parse::<TraceParent>()
                .is_err()
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let p: TraceParent = VALID.parse().unwrap();
        let c = p.child();
        assert_eq!((c.trace_id(), c.flags()), (p.trace_id(), p.flags()));
        assert_ne!(c.span_id(), p.span_id());
        assert_eq!(TraceParent::continuing(Some(&p)).trace_id(), p.trace_id());
    }

    #[test]
    fn a_new_root_is_a_valid_sampled_header_of_its_own() {
        let a = TraceParent::new_root();
        let b = TraceParent::continuing(None);
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(a.sampled());
        assert_eq!(a.to_string().parse::<TraceParent>().unwrap(), a);
        assert_eq!(a.trace_id_hex().len(), 32);
    }

    #[test]
    fn it_travels_as_its_header_value() {
        let p: TraceParent = VALID.parse().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{VALID}\""));
        assert_eq!(serde_json::from_str::<TraceParent>(&json).unwrap(), p);
        assert!(serde_json::from_str::<TraceParent>("\"00-zz\"").is_err());
    }
}
