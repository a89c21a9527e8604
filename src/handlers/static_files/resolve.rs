//! Maps a relative request path to a file under the root, on a blocking
//! thread: stat, index files, and the symlink check.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
    time::SystemTime,
};

use crate::{error::HttpError, sendfile::Stamp};

/// The root and its policy.
#[derive(Debug)]
pub(super) struct Resolver {
    /// Canonical root directory.
    pub root: PathBuf,
    pub index: Vec<String>,
    pub follow_symlinks_outside_root: bool,
}

/// A regular file to serve.
#[derive(Debug, Clone)]
pub(super) struct FileMeta {
    pub path: PathBuf,
    pub len: u64,
    pub modified: SystemTime,
    /// Device and inode number: which file the path named.
    pub inode: (u64, u64),
}

impl FileMeta {
    /// What the file looked like when it was resolved.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            len: self.len,
            modified: self.modified,
            inode: self.inode,
        }
    }

    /// The meta of `path` for a file that looks like `stamp`.
    pub fn new(path: PathBuf, stamp: Stamp) -> Self {
        Self {
            path,
            len: stamp.len,
            modified: stamp.modified,
            inode: stamp.inode,
        }
    }
}

/// What a relative path names.
#[derive(Debug)]
pub(super) enum Found {
    File(FileMeta),
    /// A directory asked for without its trailing slash.
    Directory,
}

impl Resolver {
    /// Resolves `rel` (already normalized: no `..`, NUL or backslash).
    pub fn resolve(&self, rel: &str) -> Result<Found, HttpError> {
        let path = self.root.join(rel);
        let meta = fs::metadata(&path).map_err(io_status)?;
        if meta.is_dir() {
            if !rel.is_empty() && !rel.ends_with('/') {
                return Ok(Found::Directory);
            }
            for name in &self.index {
                let candidate = path.join(name);
                if let Ok(m) = fs::metadata(&candidate)
                    && m.is_file()
                {
                    return self.file(candidate, &m).map(Found::File);
                }
            }
            // Directory listing is off: like nginx, 403.
            return Err(HttpError::Forbidden);
        }
        if !meta.is_file() {
            return Err(HttpError::NotFound);
        }
        self.file(path, &meta).map(Found::File)
    }

    fn file(&self, path: PathBuf, meta: &fs::Metadata) -> Result<FileMeta, HttpError> {
        if !self.follow_symlinks_outside_root && !self.inside_root(&path)? {
            // Answer as if it were not there: the link's target is not ours to name.
            tracing::debug!(path = %path.display(), "symlink leads outside the static root");
            return Err(HttpError::NotFound);
        }
        Ok(FileMeta::new(path, Stamp::from_meta(meta)))
    }

    fn inside_root(&self, path: &Path) -> Result<bool, HttpError> {
        let real = fs::canonicalize(path).map_err(io_status)?;
        Ok(real.starts_with(&self.root))
    }
}

/// The answer for a file that cannot be opened or read: gone (deleted
/// since it was found, or never there) is 404 and forbidden is 403, as
/// nginx answers a failed `open`; anything else is the server's 500.
pub(super) fn io_status(e: std::io::Error) -> HttpError {
    match e.kind() {
        ErrorKind::NotFound
        | ErrorKind::NotADirectory
        | ErrorKind::InvalidInput
        | ErrorKind::InvalidFilename => HttpError::NotFound,
        ErrorKind::PermissionDenied => HttpError::Forbidden,
        _ => HttpError::Internal(e.to_string()),
    }
}
