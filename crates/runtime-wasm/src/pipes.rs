//! In-memory stdout and stderr for one activation, bounded by its limits.
//!
//! The guest never sees a full pipe: bytes past a limit are counted and dropped, so a flood
//! costs the guest its own time budget and nothing else.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use gust_model::logs::LogLines;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Space the guest is told it may write at once.
const WRITE_BUDGET: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects stdout up to `cap` bytes and counts the rest.
#[derive(Clone, Debug)]
pub struct CappedPipe(Arc<Mutex<Capped>>);

#[derive(Debug)]
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl CappedPipe {
    pub fn new(cap: usize) -> Self {
        CappedPipe(Arc::new(Mutex::new(Capped {
            buf: Vec::new(),
            cap,
            total: 0,
        })))
    }

    /// The kept bytes and the number of bytes written in all.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut s = lock(&self.0);
        (std::mem::take(&mut s.buf), s.total)
    }

    fn push(&self, bytes: &[u8]) {
        let mut s = lock(&self.0);
        s.total += bytes.len() as u64;
        let room = s.cap.saturating_sub(s.buf.len());
        let n = room.min(bytes.len());
        s.buf.extend_from_slice(&bytes[..n]);
    }
}

/// Collects stderr as timestamped log lines (`"<ISO time> stderr: <line>"`), up to `limit`
/// bytes of stored lines (timestamp included); past it, one truncation line closes the log.
#[derive(Clone, Debug)]
pub struct LogPipe(Arc<Mutex<Logs>>);

#[derive(Debug)]
struct Logs {
    lines: LogLines,
    partial: Vec<u8>,
}

impl Logs {
    fn line(&mut self, raw: &[u8]) {
        self.lines.push("stderr", raw);
    }
}

impl LogPipe {
    pub fn new(limit: u64) -> Self {
        LogPipe(Arc::new(Mutex::new(Logs {
            lines: LogLines::new(limit),
            partial: Vec::new(),
        })))
    }

    fn push(&self, mut bytes: &[u8]) {
        let mut s = lock(&self.0);
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            if s.partial.is_empty() {
                s.line(&bytes[..i]);
            } else {
                let mut whole = std::mem::take(&mut s.partial);
                whole.extend_from_slice(&bytes[..i]);
                s.line(&whole);
            }
            bytes = &bytes[i + 1..];
        }
        if s.lines.is_truncated() || bytes.is_empty() {
            return;
        }
        // A line without its end yet; it cannot be kept whole past the limit.
        if s.lines.bytes() + (s.partial.len() + bytes.len()) as u64 > s.lines.limit() {
            s.partial.clear();
            s.lines.truncate();
        } else {
            s.partial.extend_from_slice(bytes);
        }
    }

    /// The log lines, with the last unterminated line and the truncation notice if any.
    pub fn finish(&self) -> (Vec<String>, bool) {
        let mut s = lock(&self.0);
        if !s.partial.is_empty() {
            let partial = std::mem::take(&mut s.partial);
            s.line(&partial);
        }
        s.lines.finish()
    }
}

macro_rules! output_stream {
    ($ty:ty) => {
        impl IsTerminal for $ty {
            fn is_terminal(&self) -> bool {
                false
            }
        }

        impl StdoutStream for $ty {
            fn p2_stream(&self) -> Box<dyn OutputStream> {
                Box::new(self.clone())
            }
            fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
                Box::new(self.clone())
            }
        }

        impl OutputStream for $ty {
            fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
                self.push(&bytes);
                Ok(())
            }
            fn flush(&mut self) -> StreamResult<()> {
                Ok(())
            }
            fn check_write(&mut self) -> StreamResult<usize> {
                Ok(WRITE_BUDGET)
            }
        }

        #[wasmtime_wasi::async_trait]
        impl Pollable for $ty {
            async fn ready(&mut self) {}
        }

        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.push(buf);
                std::task::Poll::Ready(Ok(buf.len()))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
    };
}

output_stream!(CappedPipe);
output_stream!(LogPipe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_split_lines_and_truncate() {
        // Each stored line is a 27-byte timestamp, " stderr: " and the text.
        let p = LogPipe::new(2 * 39);
        p.push(b"abc\nde");
        p.push(b"f\n");
        p.push(b"0123456789\n");
        let (lines, truncated) = p.finish();
        assert!(truncated);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(" stderr: abc"));
        assert!(lines[1].ends_with(" stderr: def"));
        assert!(lines[2].contains("limit of 78 bytes"));
    }

    #[test]
    fn empty_lines_count_against_the_limit() {
        let p = LogPipe::new(1000);
        p.push(&[b'\n'; 100_000]);
        let (lines, truncated) = p.finish();
        assert!(truncated);
        assert!(lines.len() <= 1000 / 33 + 1, "{} lines kept", lines.len());
    }

    #[test]
    fn unterminated_flood_is_bounded() {
        let p = LogPipe::new(100);
        for _ in 0..1000 {
            p.push(b"xxxxxxxxxx");
        }
        let (lines, truncated) = p.finish();
        assert!(truncated);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn stdout_is_capped_and_counted() {
        let p = CappedPipe::new(4);
        p.push(b"abcdef");
        assert_eq!(p.take(), (b"abcd".to_vec(), 6));
    }
}
