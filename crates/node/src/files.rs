//! Files only their owner may read: the data directory, the store's database, keys.

use std::path::Path;

use anyhow::{Context, Result};

/// Makes `path` accessible to its owner only (`mode`), if it exists.
pub fn restrict(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot restrict {}", path.display()));
            }
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Creates the data directory, private to its owner, if it does not exist.
pub fn ensure_data_dir(data_dir: &Path) -> Result<()> {
    if !data_dir.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        restrict(data_dir, 0o700)?;
    }
    Ok(())
}

/// Writes `contents` to `path`, readable and writable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    gust_keyring::write_private(path, contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
