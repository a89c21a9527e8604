//! One entry's file in a disk tier: where it lives and what it holds.
//!
//! The layout is nginx's `levels=2:2`: a file is named by the SHA-256 of
//! its key and `Vary` selection, in hex, under two directory levels made of
//! the name's first four digits (`ab/cd/abcd…`), so no directory grows
//! past a few thousand files.
//!
//! A file is written to a temporary name in its directory, then renamed,
//! so a crash leaves a whole entry or none (and a stray `.tmp`, which the
//! loader removes). Its content:
//!
//! ```text
//! TROUPEC2 | meta length (u32 LE) | meta (postcard) | body
//! ```
//!
//! The meta holds the key, the head, the `Vary` selection, the RFC 9111
//! policy, and the body's length and CRC-32. A reader checks each of them,
//! so a truncated, torn or foreign file is refused ([`Bad`]), never served.

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::entry::{Selection, Stored};

const MAGIC: &[u8; 8] = b"TROUPEC2";
/// Magic and meta length.
const PREFIX: usize = MAGIC.len() + 4;
/// A meta block larger than this is not one we wrote.
const MAX_META: usize = 1 << 20;

/// Why a file is not an entry.
#[derive(Debug, thiserror::Error)]
pub(super) enum Bad {
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    #[error("not a cache file (no TROUPEC2 magic)")]
    Magic,
    #[error("its meta block does not parse: {0}")]
    Meta(#[from] postcard::Error),
    #[error("it is {found} bytes long, its meta says {expected} (truncated or torn)")]
    Length { found: u64, expected: u64 },
    #[error("its body's CRC-32 does not match (corrupt)")]
    Checksum,
    #[error("it holds another key or variant than its name says")]
    Name,
}

/// What a file says about its entry.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Meta {
    pub key: String,
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    pub policy: CachePolicy,
    pub body_len: u64,
    pub body_crc: u32,
}

impl Meta {
    /// The head it stored.
    pub fn head(&self) -> Option<(StatusCode, HeaderMap)> {
        let status = StatusCode::from_u16(self.status).ok()?;
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| {
                Some((
                    HeaderName::try_from(n).ok()?,
                    HeaderValue::from_bytes(v).ok()?,
                ))
            })
            .collect::<Option<HeaderMap>>()?;
        Some((status, headers))
    }

    /// The `Vary` selection it was stored for.
    pub fn selection(&self) -> Option<Selection> {
        self.vary
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Some(v) => Some(HeaderValue::from_bytes(v).ok()?),
                    None => None,
                };
                Some((HeaderName::try_from(n).ok()?, v))
            })
            .collect()
    }
}

/// The file name of `key`'s variant for `selection`.
pub(super) fn name(key: &str, selection: &Selection) -> String {
    let mut hash = Sha256::new();
    hash.update(key.as_bytes());
    for (n, v) in selection.iter() {
        hash.update(b"\n");
        hash.update(n.as_str().as_bytes());
        hash.update(b":");
        if let Some(v) = v {
            hash.update(v.as_bytes());
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `file_name` is one [`name`] makes.
pub(super) fn is_name(file_name: &str) -> bool {
    file_name.len() == 64 && file_name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the file `name` lives under `root`.
pub(super) fn path(root: &Path, name: &str) -> PathBuf {
    root.join(&name[..2]).join(&name[2..4]).join(name)
}

/// Writes `entry` as `key`'s file `name` under `root`: whole or not at
/// all. Returns its size.
pub(super) fn write(root: &Path, name: &str, key: &str, entry: &Stored) -> io::Result<u64> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let meta = Meta {
        key: key.to_owned(),
        status: entry.status.as_u16(),
        headers: entry
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        vary: entry
            .vary
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.as_ref().map(|v| v.as_bytes().to_vec()),
                )
            })
            .collect(),
        policy: entry.policy.clone(),
        body_len: entry.body.len() as u64,
        body_crc: crc32fast::hash(&entry.body),
    };
    let meta = postcard::to_allocvec(&meta).map_err(io::Error::other)?;
    let len = u32::try_from(meta.len()).map_err(io::Error::other)?;
    let dest = path(root, name);
    let dir = dest.parent().unwrap_or(root);
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = io::BufWriter::new(fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&len.to_le_bytes())?;
        f.write_all(&meta)?;
        f.write_all(&entry.body)?;
        f.into_inner().map_err(|e| e.into_error())?;
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((PREFIX + meta.len() + entry.body.len()) as u64)
}

/// Reads a file's meta (not its body), checking that the file is as long
/// as the meta says and that `name` is its name: what the loader needs.
pub(super) fn read_meta(path: &Path, name: &str) -> Result<(Meta, u64), Bad> {
    let (meta, size) = open(path)?;
    let selection = meta.selection().ok_or(Bad::Name)?;
    if self::name(&meta.key, &selection) != name {
        return Err(Bad::Name);
    }
    Ok((meta, size))
}

/// Reads `key`'s whole file, checking everything: what a hit needs.
///
/// One `read` of the whole file (its size from `fstat`) into one buffer,
/// the body a slice of it: `open`, `fstat`, `read`, `close`, as nginx
/// reads a cache hit, where reading the prefix, the meta and the body
/// apart cost three more `read`s and a copy.
pub(super) fn read(path: &Path, key: &str) -> Result<(Meta, Bytes), Bad> {
    let mut f = fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut buf = Vec::with_capacity(usize::try_from(size).map_err(io::Error::other)?);
    // `take`: at the size, the next read is answered without a syscall.
    (&mut f).take(size).read_to_end(&mut buf)?;
    drop(f);
    let (prefix, rest) = buf.split_first_chunk::<PREFIX>().ok_or(Bad::Magic)?;
    let meta_len = meta_len(prefix)?;
    let meta: Meta = postcard::from_bytes(rest.get(..meta_len).ok_or(Bad::Length {
        found: size,
        expected: (PREFIX + meta_len) as u64,
    })?)?;
    let start = PREFIX + meta_len;
    let expected = start as u64 + meta.body_len;
    if buf.len() as u64 != expected || size != expected {
        return Err(Bad::Length {
            found: buf.len() as u64,
            expected,
        });
    }
    if meta.key != key {
        return Err(Bad::Name);
    }
    let body = Bytes::from(buf).slice(start..);
    if crc32fast::hash(&body) != meta.body_crc {
        return Err(Bad::Checksum);
    }
    Ok((meta, body))
}

/// The meta block's length, from the prefix: magic, then length.
fn meta_len(prefix: &[u8; PREFIX]) -> Result<usize, Bad> {
    let (magic, len) = prefix.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(Bad::Magic);
    }
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_META {
        return Err(Bad::Magic);
    }
    Ok(len)
}

/// Opens a file and reads its meta, checking that the file is as long as
/// the meta says: the meta and the file's size.
fn open(path: &Path) -> Result<(Meta, u64), Bad> {
    let mut f = fs::File::open(path)?;
    let size = f.metadata()?.len();
    let (meta, start) = meta_of(&mut f)?;
    let expected = start + meta.body_len;
    if size != expected {
        return Err(Bad::Length {
            found: size,
            expected,
        });
    }
    Ok((meta, size))
}

/// The meta block, and where the body starts.
fn meta_of(f: &mut fs::File) -> Result<(Meta, u64), Bad> {
    let mut prefix = [0u8; PREFIX];
    f.read_exact(&mut prefix).map_err(|_| Bad::Magic)?;
    let len = meta_len(&prefix)?;
    let mut meta = vec![0u8; len];
    f.read_exact(&mut meta).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Bad::Length {
            found: 0,
            expected: (PREFIX + len) as u64,
        },
        _ => Bad::Io(e),
    })?;
    Ok((postcard::from_bytes(&meta)?, (PREFIX + len) as u64))
}
