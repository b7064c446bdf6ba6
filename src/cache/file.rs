//! File mode: one file per entry in `file_dir`, named `<sha256 hex>.fxc` (the key is
//! checked to be 64 hex digits, so no name can leave the directory). Files are
//! opened with `O_NOFOLLOW` (a symlink planted in the directory is never read or
//! written through), written to a fresh temporary file and renamed into place, and
//! the oldest are removed once there are more than `max_size` files or `max_bytes`
//! bytes. The directory itself must not be a symlink.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Blob, CacheError};

const SUFFIX: &str = ".fxc";

/// The file store.
pub struct FileStore {
    dir: PathBuf,
    max_size: usize,
    max_bytes: u64,
    counter: AtomicU64,
}

impl FileStore {
    /// A store in `dir` (created on first write) with these bounds.
    pub fn new(dir: &str, max_size: usize, max_bytes: u64) -> Self {
        FileStore { dir: PathBuf::from(dir), max_size, max_bytes, counter: AtomicU64::new(0) }
    }

    fn path(&self, key: &str) -> Result<PathBuf, CacheError> {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::other("not a cache key").into());
        }
        Ok(self.dir.join(format!("{key}{SUFFIX}")))
    }

    /// The bytes stored under `key` (at most `limit` and some framing).
    pub async fn get(&self, key: &str, limit: usize) -> Result<Option<Blob>, CacheError> {
        let path = self.path(key)?;
        let limit = (limit + super::entry::OVERHEAD) as u64;
        blocking(move || read(&path, limit)).await
    }

    /// Writes `bytes` under `key` atomically, then enforces the bounds.
    pub async fn set(&self, key: &str, bytes: Blob) -> Result<(), CacheError> {
        let path = self.path(key)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".tmp-{}-{n}-{key}", std::process::id()));
        let (dir, max_size, max_bytes) = (self.dir.clone(), self.max_size, self.max_bytes);
        blocking(move || {
            write(&dir, &tmp, &path, &bytes)?;
            evict(&dir, max_size, max_bytes)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, CacheError> {
    actix_web::web::block(f)
        .await
        .map_err(|e| CacheError::Io(std::io::Error::other(e.to_string())))?
}

fn read(path: &Path, limit: u64) -> Result<Option<Blob>, CacheError> {
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then(|| Blob::from(buf)))
}

fn write(dir: &Path, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    std::fs::create_dir_all(dir)?;
    if !std::fs::symlink_metadata(dir)?.is_dir() {
        return Err(std::io::Error::other("cache.file_dir is not a directory (or is a symlink)").into());
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    drop(file);
    // rename replaces a symlink at `path` itself, never what it points to.
    let renamed = written.and_then(|()| std::fs::rename(tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    Ok(renamed?)
}

/// Removes the oldest entries while there are more than `max_size` or `max_bytes`.
fn evict(dir: &Path, max_size: usize, max_bytes: u64) -> Result<(), CacheError> {
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        if !name.to_string_lossy().ends_with(SUFFIX) {
            continue;
        }
        let meta = item.path().symlink_metadata()?;
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        files.push((modified, meta.len(), item.path()));
    }
    files.sort();
    let mut count = files.len();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (_, len, path) in files {
        if count <= max_size && total <= max_bytes {
            break;
        }
        let _ = std::fs::remove_file(path);
        count -= 1;
        total -= len;
    }
    Ok(())
}
