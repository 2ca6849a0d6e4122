//! The record log of the embedded store: activation records and journal entries are made
//! durable by appending them to a plain file (one copy into the file's shared mapping on the
//! caller's thread: no system call, no SQLite commit on its path; the pages belong to the
//! kernel's page cache the moment they are written, so a crash of the process loses nothing
//! appended); the writer thread inserts them into SQLite later, many per
//! transaction, and records in the same transaction how far into the log it got. At open,
//! frames past that point are inserted again, so every appended entry reaches SQLite exactly
//! once, across any crash of the process.
//!
//! **Format (hard to undo):** files `<db>-log.<seq>` (`seq` a 20-digit decimal, rising), each a
//! sequence of frames: `"GRL1"`, kind (`u8`: 1 record, 2 journal entry), payload length (`u32`
//! little endian), CRC-32 of kind, length and payload (`u32` LE), payload. A payload is a
//! sequence of fields, each a `u32` LE length and its bytes: a record is `id, namespace, name,
//! start (u64 LE), doc`; a journal entry is `id, accepted (u64 LE), message`. Frames are
//! appended under one lock, so only the last frame of a file can be torn (the process died
//! during its write, before its caller was answered); reading stops at the first frame that
//! does not check. A file is allocated whole when it is started, so it ends with zero bytes
//! past its last frame (no frame starts with a zero byte).
//!
//! **Files:** beside the database (`gust.db-log.<seq>` in the data directory), created 0600 and
//! allocated with `posix_fallocate` at 64 MiB, or at the frame's size if that is larger, so a
//! write into the mapping cannot hit a full disk; mapped whole. A new file is started when the
//! next frame does not fit; a file is deleted once a later file's frames are committed, and
//! every file is deleted after the replay at open. An entry whose file cannot be created or
//! allocated is committed through SQLite instead.
//!
//! **Position (hard to undo):** SQLite table `record_log(id = 0, segment, offset)` (migration
//! 6) holds the end of the last frame inserted, updated in the transaction that inserts the
//! frames. The replay at open inserts every frame past it (`INSERT OR IGNORE`, in one
//! transaction), so an entry is inserted once and a record deleted after its insertion
//! (namespace delete, retention) never comes back. Why the log exists:
//! `docs/decisions/0002-record-log.md`.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The size a file is allocated with (larger only for a larger frame); a new one is started
/// when the next frame does not fit, and a file is deleted once everything in it is in SQLite.
const SEGMENT_BYTES: usize = 64 << 20;
const MAGIC: &[u8; 4] = b"GRL1";
const HEADER: usize = 13;
const KIND_RECORD: u8 = 1;
const KIND_PENDING: u8 = 2;

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Record {
        id: String,
        namespace: String,
        name: String,
        start: u64,
        doc: String,
    },
    Pending {
        id: String,
        accepted: u64,
        message: Vec<u8>,
    },
}

/// Where a frame ends: file sequence number, then offset. Ordered as the log is.
pub(crate) type Position = (u64, u64);

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl Entry {
    /// The entry as one frame.
    pub(crate) fn frame(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let kind = match self {
            Entry::Record {
                id,
                namespace,
                name,
                start,
                doc,
            } => {
                payload.reserve(doc.len() + 96);
                field(&mut payload, id.as_bytes());
                field(&mut payload, namespace.as_bytes());
                field(&mut payload, name.as_bytes());
                field(&mut payload, &start.to_le_bytes());
                field(&mut payload, doc.as_bytes());
                KIND_RECORD
            }
            Entry::Pending {
                id,
                accepted,
                message,
            } => {
                payload.reserve(message.len() + 64);
                field(&mut payload, id.as_bytes());
                field(&mut payload, &accepted.to_le_bytes());
                field(&mut payload, message);
                KIND_PENDING
            }
        };
        let len = (payload.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(&len);
        crc.update(&payload);
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend_from_slice(MAGIC);
        frame.push(kind);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&crc.finalize().to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    /// The entry framed at the start of `bytes` and the frame's length, unless the frame is
    /// incomplete or does not check.
    fn parse(bytes: &[u8]) -> Option<(Entry, usize)> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return None;
        }
        let kind = bytes[4];
        let len = u32::from_le_bytes(bytes[5..9].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(bytes[9..13].try_into().ok()?);
        let payload = bytes.get(HEADER..HEADER + len)?;
        let mut check = crc32fast::Hasher::new();
        check.update(&bytes[4..9]);
        check.update(payload);
        if check.finalize() != crc {
            return None;
        }
        let mut fields = Fields(payload);
        let entry = match kind {
            KIND_RECORD => Entry::Record {
                id: fields.text()?,
                namespace: fields.text()?,
                name: fields.text()?,
                start: fields.number()?,
                doc: fields.text()?,
            },
            KIND_PENDING => Entry::Pending {
                id: fields.text()?,
                accepted: fields.number()?,
                message: fields.next()?.to_vec(),
            },
            _ => return None,
        };
        Some((entry, HEADER + len))
    }
}

/// Reads a payload's fields in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let bytes = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some(bytes)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.next()?.to_vec()).ok()
    }

    fn number(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.next()?.try_into().ok()?))
    }
}

/// Where the log files of the database `db` live and what they are called.
#[derive(Debug, Clone)]
pub(crate) struct LogFiles {
    dir: PathBuf,
    prefix: String,
}

impl LogFiles {
    pub(crate) fn of(db: &Path) -> Self {
        let dir = match db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = db.file_name().map(|n| n.to_string_lossy().into_owned());
        LogFiles {
            dir,
            prefix: format!("{}-log.", name.unwrap_or_else(|| "gust.db".into())),
        }
    }

    pub(crate) fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{}{seq:020}", self.prefix))
    }

    /// The log files there are, oldest first.
    pub(crate) fn list(&self) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&self.prefix))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((seq, entry.path()));
        }
        files.sort();
        Ok(files)
    }

    /// Deletes the files before `seq` (everything in them is in SQLite).
    pub(crate) fn delete_before(&self, seq: u64) {
        if let Ok(files) = self.list() {
            for (s, path) in files.into_iter().filter(|(s, _)| *s < seq) {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(seq = s, error = %e, "cannot delete a record log file");
                }
            }
        }
    }

    /// Every entry in the files, with where its frame ends, in log order. A file is read up to
    /// its first frame that does not check (a torn last write).
    pub(crate) fn read_all(&self) -> std::io::Result<Vec<(Position, Entry)>> {
        let mut entries = Vec::new();
        for (seq, path) in self.list()? {
            let bytes = std::fs::read(&path)?;
            let mut at = 0;
            while let Some((entry, len)) = Entry::parse(&bytes[at..]) {
                at += len;
                entries.push(((seq, at as u64), entry));
            }
            // Past the last frame: the file's unused space (zeros), or a torn last frame.
            if bytes[at..].iter().any(|&b| b != 0) {
                tracing::warn!(
                    file = %path.display(),
                    "the record log ends with an incomplete frame (a write interrupted by a crash); it is ignored"
                );
            }
        }
        Ok(entries)
    }
}

/// The file being appended to, mapped into memory whole.
struct Segment {
    seq: u64,
    map: memmap2::MmapMut,
    len: usize,
}

impl Segment {
    /// Creates file `seq` with room for `size` bytes, its blocks allocated now (a write into
    /// a mapped hole on a full disk would kill the process), and maps it.
    fn create(files: &LogFiles, seq: u64, size: usize) -> std::io::Result<Segment> {
        let path = files.path(seq);
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        let allocated = i64::try_from(size)
            .map_err(std::io::Error::other)
            .and_then(|size| {
                // SAFETY: a plain system call on a descriptor this function owns.
                match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) } {
                    0 => Ok(()),
                    e => Err(std::io::Error::from_raw_os_error(e)),
                }
            });
        // SAFETY: the file is Gust's own (created here, mode 0600) and is neither truncated
        // nor written otherwise while it is mapped; it is only read again after the mapping
        // is gone or, at the next open, by a new process.
        let mapped = allocated.and_then(|()| unsafe { memmap2::MmapMut::map_mut(&file) });
        match mapped {
            Ok(map) => Ok(Segment { seq, map, len: 0 }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn room(&self) -> usize {
        self.map.len() - self.len
    }
}

/// What the log appends to.
struct Appender {
    /// The file being appended to, if one is open.
    segment: Option<Segment>,
    /// The sequence number of the next file.
    next_seq: u64,
}

/// Appends frames; one file at a time.
pub(crate) struct RecordLog {
    files: LogFiles,
    appender: Mutex<Appender>,
}

impl RecordLog {
    /// A log whose first file will be `first_seq`.
    pub(crate) fn new(files: LogFiles, first_seq: u64) -> Self {
        RecordLog {
            files,
            appender: Mutex::new(Appender {
                segment: None,
                next_seq: first_seq,
            }),
        }
    }

    /// Appends a frame ([`Entry::frame`]), then calls `then` with where it ends while still
    /// holding the log (so whatever `then` queues is queued in log order).
    pub(crate) fn append<T>(
        &self,
        frame: &[u8],
        then: impl FnOnce(Position) -> T,
    ) -> std::io::Result<T> {
        let mut guard = self.appender.lock().unwrap_or_else(|e| e.into_inner());
        let a = &mut *guard;
        let segment = match &mut a.segment {
            Some(s) if s.room() >= frame.len() => s,
            slot => {
                // The full file is left as it is: its frames are whole, the rest zeros.
                *slot = None;
                let seq = a.next_seq;
                a.next_seq += 1;
                let size = frame.len().max(SEGMENT_BYTES);
                slot.insert(Segment::create(&self.files, seq, size)?)
            }
        };
        let end = segment.len + frame.len();
        segment.map[segment.len..end].copy_from_slice(frame);
        segment.len = end;
        Ok(then((segment.seq, end as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Entry {
        Entry::Record {
            id: id.into(),
            namespace: "guest".into(),
            name: "pkg/hello".into(),
            start: 1_700_000_000_123,
            doc: format!("{{\"activationId\":\"{id}\"}}"),
        }
    }

    #[test]
    fn frames_read_back_and_a_torn_end_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::of(&dir.path().join("gust.db"));
        let log = RecordLog::new(files.clone(), 7);
        let pending = Entry::Pending {
            id: "p1".into(),
            accepted: 42,
            message: vec![0, 1, 2, 255],
        };
        let first = log.append(&record("a1").frame(), |p| p).unwrap();
        let second = log.append(&pending.frame(), |p| p).unwrap();
        assert_eq!(first.0, 7);
        assert!(second > first);
        // A third frame cut short by a crash, then garbage.
        let torn = record("a3").frame();
        let path = files.path(7);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), SEGMENT_BYTES, "a file is allocated whole");
        let end = second.1 as usize;
        bytes[end..end + torn.len() - 3].copy_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&path, &bytes).unwrap();
        let read = files.read_all().unwrap();
        assert_eq!(read, vec![(first, record("a1")), (second, pending)]);
        // A flipped bit in the payload fails its check.
        let mut bad = record("a4").frame();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Entry::parse(&bad).is_none());
        files.delete_before(8);
        assert!(files.list().unwrap().is_empty());
    }
}
