//! The ACME state directory: where the account keys and the issued
//! certificates live, so a restart serves the certificate it has and
//! places no new order.
//!
//! ```text
//! <state_dir>/                      0700
//!   accounts/<directory URL>.json   the account's credentials (its key), 0600
//!   certs/<first name>/cert.pem     the chain, the server's certificate first
//!   certs/<first name>/key.pem      its private key, 0600
//! ```
//!
//! Files are written whole under a temporary name and renamed over the
//! old ones, so a reader (the certificate actor, a restart) never sees
//! half a file.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// One state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

/// A path made safe as one file name: what is not alphanumeric, `.` or
/// `-` becomes `_`.
fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl StateDir {
    /// Creates the directory (and `accounts/`, `certs/`) if missing, private
    /// to the server's user. `troupe -t` calls it too: a directory that
    /// cannot be made is a config error, not a failed order hours later.
    pub fn prepare(root: &Path) -> io::Result<Self> {
        for dir in [root.to_owned(), root.join("accounts"), root.join("certs")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        // An existing directory keeps its mode unless it is open to others.
        let meta = fs::metadata(root)?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The credentials of the account at a CA's directory URL.
    pub fn account(&self, directory: &str) -> PathBuf {
        self.root
            .join("accounts")
            .join(format!("{}.json", file_name(directory)))
    }

    /// The directory of a server's certificate, by its first name
    /// (created by [`StateDir::cert_files`]).
    fn cert_dir(&self, name: &str) -> PathBuf {
        self.root.join("certs").join(file_name(name))
    }

    /// The chain and key files of a server, by its first name; their
    /// directory is made, so the certificate actor can watch it before
    /// the first certificate arrives.
    pub fn cert_files(&self, name: &str) -> io::Result<(PathBuf, PathBuf)> {
        let dir = self.cert_dir(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok((dir.join("cert.pem"), dir.join("key.pem")))
    }
}

/// Writes `bytes` to `path` with `mode`: a temporary file in the same
/// directory, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    // `mode` applies only when the file is created: a leftover temporary
    // file keeps its own, so set it again.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_and_its_private_files_are_the_users_alone() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let state = StateDir::prepare(&tmp.path().join("acme")).expect("prepare");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(state.root()), 0o700);
        let (cert, key) = state.cert_files("*.a.test").expect("cert dir");
        assert!(
            cert.ends_with("certs/_.a.test/cert.pem"),
            "{}",
            cert.display()
        );
        write_atomic(&key, b"secret", 0o600).expect("write");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(fs::read(&key).expect("read"), b"secret");
        assert!(
            state
                .account("https://127.0.0.1:14000/dir")
                .ends_with("accounts/https___127.0.0.1_14000_dir.json")
        );
    }
}
