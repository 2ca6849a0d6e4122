//! An activation's log lines as OpenWhisk stores them (`"<ISO time> <stream>: <line>"`),
//! capped at the action's log limit: past it, one truncation line closes the log.

use std::time::SystemTime;

use crate::time::iso8601;

#[derive(Debug)]
pub struct LogLines {
    lines: Vec<String>,
    bytes: u64,
    limit: u64,
    truncated: bool,
}

impl LogLines {
    pub fn new(limit: u64) -> Self {
        LogLines {
            lines: Vec::new(),
            bytes: 0,
            limit,
            truncated: false,
        }
    }

    /// Stored bytes so far (timestamps and stream names included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Marks the log truncated (a line too long to keep whole).
    pub fn truncate(&mut self) {
        self.truncated = true;
    }

    /// Adds one line (without its `\n`; a trailing `\r` is dropped). The whole stored line
    /// counts against the limit, so a flood of empty lines is bounded too.
    pub fn push(&mut self, stream: &str, raw: &[u8]) {
        if self.truncated {
            return;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = format!(
            "{} {stream}: {}",
            iso8601(SystemTime::now()),
            String::from_utf8_lossy(raw)
        );
        if self.bytes + line.len() as u64 > self.limit {
            self.truncated = true;
            return;
        }
        self.bytes += line.len() as u64;
        self.lines.push(line);
    }

    /// The lines, with the truncation notice last if the limit was reached.
    pub fn finish(&mut self) -> (Vec<String>, bool) {
        let mut lines = std::mem::take(&mut self.lines);
        if self.truncated {
            lines.push(format!(
                "{} stderr: Logs were truncated because the total bytes size exceeds the limit of {} bytes.",
                iso8601(SystemTime::now()),
                self.limit
            ));
        }
        self.bytes = 0;
        (lines, self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_whole_lines_and_notes_truncation() {
        let mut logs = LogLines::new(100);
        logs.push("stdout", b"hello\r");
        assert!(logs.lines[0].ends_with(" stdout: hello"));
        for _ in 0..10 {
            logs.push("stderr", b"0123456789");
        }
        let (lines, truncated) = logs.finish();
        assert!(truncated);
        assert!(lines.last().unwrap().contains("Logs were truncated"));
        assert!(lines.len() < 10);
    }
}
