//! Timestamps as Step Functions takes them: RFC 3339 with an uppercase `T` between date and
//! time and an uppercase `Z` or a numeric offset (`2024-05-06T07:08:09.5Z`,
//! `2024-05-06T07:08:09+02:00`).

/// The instant the text names, or `None` when it is not such a timestamp.
pub(crate) fn parse(text: &str) -> Option<jiff::Timestamp> {
    if !shape_ok(text) {
        return None;
    }
    text.parse::<jiff::Timestamp>().ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, digits where digits go.
fn shape_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b'T')
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let mut at = 19;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return false;
        }
    }
    match &bytes[at..] {
        b"Z" => true,
        [b'+' | b'-', ..] => {
            bytes.len() == at + 6
                && digits(at + 1..at + 3)
                && bytes[at + 3] == b':'
                && digits(at + 4..at + 6)
        }
        _ => false,
    }
}

/// Ms since the epoch (negative before 1970).
pub(crate) fn millis(timestamp: jiff::Timestamp) -> i64 {
    timestamp.as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_with_uppercase_t_and_z() {
        for good in [
            "2024-05-06T07:08:09Z",
            "2024-05-06T07:08:09.123456Z",
            "2024-05-06T07:08:09+02:00",
            "2024-05-06T07:08:09.5-05:30",
            "2016-03-14T01:59:00Z",
        ] {
            assert!(parse(good).is_some(), "{good}");
        }
        assert_eq!(parse("1970-01-01T00:00:01.5Z").map(millis), Some(1500));
        assert_eq!(parse("1970-01-01T01:00:00+01:00").map(millis), Some(0));
    }

    #[test]
    fn refuses_other_forms() {
        for bad in [
            "2024-05-06",
            "2024-05-06t07:08:09Z",
            "2024-05-06T07:08:09z",
            "2024-05-06 07:08:09Z",
            "2024-05-06T07:08Z",
            "2024-05-06T07:08:09",
            "2024-05-06T07:08:09.Z",
            "2024-05-06T07:08:09+0200",
            "2024-13-06T07:08:09Z",
            "2024-02-30T07:08:09Z",
            "2024-05-06T25:08:09Z",
            "",
            "yesterday",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
