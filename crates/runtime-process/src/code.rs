//! An action's code as the sandbox sees it. Source code (a plain `.js` or `.py` text) travels
//! in the init message; a zip is unpacked once per content hash into a folder that instances
//! see read-only at `/action`; a native executable is that folder's `exec`.
//!
//! **On disk (an invoker's cache of the store):** `<data-dir>/processes/code/<hash>.src` for
//! source, `<hash>/` for unpacked zips and executables (files 0644 or 0755; links become plain
//! files, never followed). The folder is emptied when the pool starts, and code that no
//! invocation asked for within the idle timeout and that no instance runs is deleted; the
//! next invocation fetches it from the store again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::kinds::Family;

/// Unpacked code may not grow past this (a zip bomb stops here).
pub const MAX_UNPACKED: u64 = 512 * 1024 * 1024;
/// Nor hold more files than this.
pub const MAX_FILES: usize = 100_000;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Whether the code is a zip archive.
pub fn is_zip(code: &[u8]) -> bool {
    code.starts_with(ZIP_MAGIC)
}

/// Checks code for a kind before it is stored: a zip must be readable, stay inside its
/// folder and hold the entry file; a native executable must be an x86-64 ELF (or a zip with
/// `exec`). Returns what is wrong, in a sentence.
pub fn check(family: Family, code: &[u8], binary: bool) -> Result<(), String> {
    if code.is_empty() {
        return Err("exec.code is empty.".into());
    }
    if is_zip(code) {
        let names = zip_names(code)?;
        let has = |n: &str| names.iter().any(|x| x == n);
        return match family {
            Family::Node if !has("package.json") && !has("index.js") => {
                Err("The zip holds neither package.json nor index.js at its top level.".into())
            }
            Family::Python if !has("__main__.py") => {
                Err("The zip holds no __main__.py at its top level.".into())
            }
            Family::Native if !has("exec") => {
                Err("The zip holds no executable named exec at its top level.".into())
            }
            _ => Ok(()),
        };
    }
    match family {
        Family::Native => {
            // ELF, 64-bit, little-endian, machine x86-64 (62).
            let elf = code.starts_with(ELF_MAGIC)
                && code.get(4) == Some(&2)
                && code.get(5) == Some(&1)
                && code.get(18..20) == Some(&[62, 0]);
            let script = code.starts_with(b"#!");
            if elf || script {
                Ok(())
            } else {
                Err("A native action is an x86-64 Linux executable (ELF or #! script), or a zip holding exec.".into())
            }
        }
        _ if binary => Err("exec.binary is set but exec.code is not a zip archive.".into()),
        _ => std::str::from_utf8(code)
            .map(|_| ())
            .map_err(|_| "exec.code is not UTF-8 source text.".into()),
    }
}

/// The names in a zip (folders without their `/`), once it is checked to stay in its
/// folder and within the limits of files and unpacked size.
pub fn zip_names(code: &[u8]) -> Result<Vec<String>, String> {
    let bad = |e: zip::result::ZipError| format!("The zip cannot be read: {e}.");
    let mut archive = zip::ZipArchive::new(io::Cursor::new(code)).map_err(bad)?;
    if archive.len() > MAX_FILES {
        return Err(format!("The zip holds more than {MAX_FILES} files."));
    }
    let mut total = 0u64;
    let mut names = Vec::new();
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(bad)?;
        if f.enclosed_name().is_none() {
            return Err(format!(
                "The zip names a path outside its folder: {:?}.",
                f.name()
            ));
        }
        total = total.saturating_add(f.size());
        names.push(f.name().trim_end_matches('/').to_string());
    }
    if total > MAX_UNPACKED {
        return Err(format!(
            "The zip unpacks to more than {MAX_UNPACKED} bytes."
        ));
    }
    Ok(names)
}

/// The folder holding the unpacked code `hash` under `cache`, made if missing.
pub fn unpack(cache: &Path, hash: &str, code: &[u8]) -> io::Result<PathBuf> {
    let dir = cache.join(hash);
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = cache.join(unique_temp(hash));
    fs::create_dir_all(&tmp)?;
    set_mode(&tmp, 0o755)?;
    let result = if is_zip(code) {
        unzip(code, &tmp)
    } else {
        fs::write(tmp.join("exec"), code).and_then(|_| set_mode(&tmp.join("exec"), 0o755))
    };
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another invocation unpacked it first.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

/// A temporary name no other writer (thread or process) uses.
pub fn unique_temp(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{name}.{}.{n}", std::process::id())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn unzip(code: &[u8], into: &Path) -> io::Result<()> {
    let invalid = |e: zip::result::ZipError| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut archive = zip::ZipArchive::new(io::Cursor::new(code)).map_err(invalid)?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(invalid)?;
        let Some(rel) = f.enclosed_name() else {
            continue;
        };
        let path = into.join(&rel);
        if f.is_dir() {
            fs::create_dir_all(&path)?;
            set_mode(&path, 0o755)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
            set_mode(parent, 0o755)?;
        }
        // Symbolic links are unpacked as the text they hold, never followed.
        let mut out = fs::File::create(&path)?;
        let copied = io::copy(&mut (&mut f).take(MAX_UNPACKED - total), &mut out)?;
        total += copied;
        if total >= MAX_UNPACKED {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the zip unpacks too large",
            ));
        }
        let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0) || rel == Path::new("exec");
        set_mode(&path, if executable { 0o755 } else { 0o644 })?;
    }
    Ok(())
}
