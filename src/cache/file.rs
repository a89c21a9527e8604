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
//! TROUPEC3 | meta length (u32 LE) | meta (postcard) | policy (postcard) | body
//! ```
//!
//! The meta holds the key, the head, the `Vary` selection, the entry's
//! age clock and freshness lifetime, and the lengths of the policy and
//! the body with their CRC-32. A reader checks each of them, so a
//! truncated, torn or foreign file is refused ([`Bad`]), never served.
//! The RFC 9111 policy is a block of its own, so that a hit reads it as
//! bytes and decodes it only if a request needs it (`entry::Policy`).

use std::{
    fs,
    io::{self, Read, Write},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes as Raw;
use sha2::{Digest, Sha256};

use super::entry::{Policy, Selection, Stored, tags_of};

/// The format's mark; `TROUPEC2` files (the policy inside the meta) are
/// refused as foreign and removed, which costs a refill, not an error.
const MAGIC: &[u8; 8] = b"TROUPEC3";
/// Magic and meta length.
const PREFIX: usize = MAGIC.len() + 4;
/// A meta block larger than this is not one we wrote.
const MAX_META: usize = 1 << 20;

/// Why a file is not an entry.
#[derive(Debug, thiserror::Error)]
pub(super) enum Bad {
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    #[error("not a cache file (no TROUPEC3 magic)")]
    Magic,
    #[error("its meta block does not parse: {0}")]
    Meta(#[from] postcard::Error),
    #[error("it is {found} bytes long, its meta says {expected} (truncated or torn)")]
    Length { found: u64, expected: u64 },
    #[error("its policy's and body's CRC-32 does not match (corrupt)")]
    Checksum,
    #[error("it holds another key or variant than its name says")]
    Name,
}

/// What a file says about its entry, borrowed from the file's bytes.
#[derive(Debug, Serialize, Deserialize)]
struct Meta<'a> {
    key: &'a str,
    status: u16,
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a Raw)>,
    #[serde(borrow)]
    vary: Vec<(&'a str, Option<&'a Raw>)>,
    born: SystemTime,
    lifetime: Duration,
    policy_len: u64,
    body_len: u64,
    /// Of the policy and the body, in that order.
    crc: u32,
}

impl Meta<'_> {
    /// The head it stored.
    fn head(&self) -> Option<(StatusCode, HeaderMap)> {
        let status = StatusCode::from_u16(self.status).ok()?;
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| {
                Some((
                    HeaderName::try_from(*n).ok()?,
                    HeaderValue::from_bytes(v).ok()?,
                ))
            })
            .collect::<Option<HeaderMap>>()?;
        Some((status, headers))
    }

    /// The `Vary` selection it was stored for.
    fn selection(&self) -> Option<Selection> {
        self.vary
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Some(v) => Some(HeaderValue::from_bytes(v).ok()?),
                    None => None,
                };
                Some((HeaderName::try_from(*n).ok()?, v))
            })
            .collect()
    }

    /// Where the policy starts, if the meta is `len` bytes long; where
    /// the body starts; and where the file ends (saturated: a file of a
    /// hostile meta is then too short, never an overflow).
    fn bounds(&self, len: usize) -> (u64, u64, u64) {
        let policy = (PREFIX + len) as u64;
        let body = policy.saturating_add(self.policy_len);
        (policy, body, body.saturating_add(self.body_len))
    }
}

/// What the loader learns of a file.
#[derive(Debug)]
pub(super) struct Indexed {
    pub key: String,
    pub selection: Selection,
    pub tags: Box<[Box<str>]>,
    /// The file's size.
    pub bytes: u64,
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

/// A disk tier's directory, held open. Every file is opened, written,
/// renamed and removed relative to it: a hit walks the two levels below
/// it rather than the whole path from `/` (that walk was a sixth of a
/// disk hit's CPU), and a directory removed under a running server
/// leaves the tier failing its writes (memory only, logged) rather than
/// writing files its reads no longer see.
#[derive(Debug)]
pub(super) struct Root {
    path: PathBuf,
    dir: OwnedFd,
}

impl Root {
    /// Opens the directory at `path`, which exists.
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let dir = rfs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    /// Its path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file `name` lives (for logs, the loader and tests).
    pub(super) fn file(&self, name: &str) -> PathBuf {
        self.path.join(relative(name))
    }

    /// Opens `name`'s file for reading (a hit; the tier may hold it).
    pub(super) fn open_entry(&self, name: &str) -> io::Result<fs::File> {
        self.open_file(&relative(name), OFlags::RDONLY)
    }

    fn open_file(&self, relative: &str, flags: OFlags) -> io::Result<fs::File> {
        let fd = rfs::openat(&self.dir, relative, flags | OFlags::CLOEXEC, FILE_MODE)?;
        Ok(fs::File::from(fd))
    }

    /// Makes the two levels `name`'s file lives in.
    fn make_levels(&self, name: &str) -> io::Result<()> {
        let (first, second) = (&name[..2], &name[2..4]);
        for level in [first.to_owned(), format!("{first}/{second}")] {
            match rfs::mkdirat(&self.dir, level.as_str(), DIR_MODE) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes `name`'s file; whether it was there.
    pub(super) fn remove(&self, name: &str) -> io::Result<bool> {
        match rfs::unlinkat(&self.dir, relative(name), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

const FILE_MODE: Mode = Mode::from_raw_mode(0o644);
const DIR_MODE: Mode = Mode::from_raw_mode(0o755);

/// Where the file `name` lives under its root: `ab/cd/abcd…`.
fn relative(name: &str) -> String {
    format!("{}/{}/{name}", &name[..2], &name[2..4])
}

/// Writes `entry` as `key`'s file `name` under `root`: whole or not at
/// all. Returns its size.
pub(super) fn write(root: &Root, name: &str, key: &str, entry: &Stored) -> io::Result<u64> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let policy = entry.policy.encode().map_err(io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&policy);
    crc.update(&entry.body);
    let meta = Meta {
        key,
        status: entry.status.as_u16(),
        headers: entry
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), Raw::new(v.as_bytes())))
            .collect(),
        vary: entry
            .vary
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref().map(|v| Raw::new(v.as_bytes()))))
            .collect(),
        born: entry.born,
        lifetime: entry.lifetime,
        policy_len: policy.len() as u64,
        body_len: entry.body.len() as u64,
        crc: crc.finalize(),
    };
    let meta = postcard::to_allocvec(&meta).map_err(io::Error::other)?;
    let len = u32::try_from(meta.len()).map_err(io::Error::other)?;
    let dest = relative(name);
    root.make_levels(name)?;
    let tmp = format!(
        "{}/{}/.{name}.{}.{}.tmp",
        &name[..2],
        &name[2..4],
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let written = (|| {
        let f = root.open_file(&tmp, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)?;
        let mut f = io::BufWriter::new(f);
        f.write_all(MAGIC)?;
        f.write_all(&len.to_le_bytes())?;
        f.write_all(&meta)?;
        f.write_all(&policy)?;
        f.write_all(&entry.body)?;
        f.into_inner().map_err(|e| e.into_error())?;
        rfs::renameat(&root.dir, tmp.as_str(), &root.dir, dest.as_str())?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = rfs::unlinkat(&root.dir, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    Ok((PREFIX + meta.len() + policy.len() + entry.body.len()) as u64)
}

/// Reads a file's meta (not its policy or body), checking that the file
/// is as long as the meta says and that `name` is its name: what the
/// loader needs.
pub(super) fn read_meta(path: &Path, name: &str) -> Result<Indexed, Bad> {
    let mut f = fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut prefix = [0u8; PREFIX];
    f.read_exact(&mut prefix).map_err(|_| Bad::Magic)?;
    let len = meta_len(&prefix)?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Bad::Length {
            found: size,
            expected: (PREFIX + len) as u64,
        },
        _ => Bad::Io(e),
    })?;
    let meta: Meta = postcard::from_bytes(&buf)?;
    let (_, _, expected) = meta.bounds(len);
    if size != expected {
        return Err(Bad::Length {
            found: size,
            expected,
        });
    }
    let selection = meta.selection().ok_or(Bad::Name)?;
    if self::name(meta.key, &selection) != name {
        return Err(Bad::Name);
    }
    let tags = meta.head().map(|(_, h)| tags_of(&h)).unwrap_or_default();
    Ok(Indexed {
        key: meta.key.to_owned(),
        selection,
        tags,
        bytes: size,
    })
}

/// Reads `key`'s whole file, checking everything: what a hit needs.
/// `size` is what the index says the file weighs.
///
/// One positional read of the whole file into one buffer, the policy
/// and the body slices of it, and the policy left encoded. `f` may be
/// shared (the tier holds its hot files open, [`Root::open_entry`]):
/// reads never move its position. nginx's cache hit also makes an
/// `fstat`; the index's size makes it needless here (a file rewritten
/// since, at another size, is read on until its meta's length).
pub(super) fn read(f: &fs::File, key: &str, size: u64) -> Result<Stored, Bad> {
    let mut buf = Vec::with_capacity(usize::try_from(size).map_err(io::Error::other)?);
    read_to(f, &mut buf, size.max(PREFIX as u64))?;
    let (prefix, _) = buf.split_first_chunk::<PREFIX>().ok_or(Bad::Magic)?;
    let len = meta_len(prefix)?;
    read_to(f, &mut buf, (PREFIX + len) as u64)?;
    let meta: Meta = postcard::from_bytes(buf.get(PREFIX..PREFIX + len).ok_or(Bad::Length {
        found: buf.len() as u64,
        expected: (PREFIX + len) as u64,
    })?)?;
    let (policy_at, body_at, expected) = meta.bounds(len);
    if meta.key != key {
        return Err(Bad::Name);
    }
    let (status, headers) = meta.head().ok_or(Bad::Name)?;
    let selection = meta.selection().ok_or(Bad::Name)?;
    let (born, lifetime, crc) = (meta.born, meta.lifetime, meta.crc);
    read_to(f, &mut buf, expected)?;
    if (buf.len() as u64) < expected {
        return Err(Bad::Length {
            found: buf.len() as u64,
            expected,
        });
    }
    // `expected` is at most the buffer's length, a `usize`.
    buf.truncate(expected as usize);
    // Both within `expected`, which is the buffer's length.
    let (policy_at, body_at) = (policy_at as usize, body_at as usize);
    let all = Bytes::from(buf);
    if crc32fast::hash(&all[policy_at..]) != crc {
        return Err(Bad::Checksum);
    }
    Ok(Stored::restored(
        Policy::encoded(all.slice(policy_at..body_at)),
        status,
        headers,
        all.slice(body_at..),
        selection,
        born,
        lifetime,
    ))
}

/// Reads on (from the offset `buf`'s length) until `buf` holds `upto`
/// bytes or the file ends; a `buf` already that long costs no system
/// call, and neither does learning that one read filled it.
fn read_to(f: &fs::File, buf: &mut Vec<u8>, upto: u64) -> io::Result<()> {
    while (buf.len() as u64) < upto {
        let want = usize::try_from(upto - buf.len() as u64).map_err(io::Error::other)?;
        buf.reserve(want);
        let offset = buf.len() as u64;
        // Into the spare capacity, which may hold more than `want`: the
        // caller cuts what lies past the entry's end.
        match rustix::io::pread(f, rustix::buffer::spare_capacity(buf), offset) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::header;

    use super::*;

    /// An entry whose response came with `Age: 10` and `max-age=60`.
    fn entry(body: &'static [u8]) -> Stored {
        let mut head = HeaderMap::new();
        head.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        head.insert(header::AGE, HeaderValue::from_static("10"));
        head.append(header::LINK, HeaderValue::from_static("</a>"));
        head.append(header::LINK, HeaderValue::from_static("</b>"));
        crate::cache::entry::for_test(head, body)
    }

    /// A hit that opens the file afresh.
    fn read_back(root: &Root, name: &str, key: &str, size: u64) -> Result<Stored, Bad> {
        read(&root.open_entry(name)?, key, size)
    }

    fn written(body: &'static [u8]) -> (tempfile::TempDir, Root, String, u64) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let name = name("k", &Selection::default());
        let size = write(&root, &name, "k", &entry(body)).unwrap();
        assert_eq!(fs::metadata(root.file(&name)).unwrap().len(), size);
        (dir, root, name, size)
    }

    #[test]
    fn an_entry_reads_back_whole_with_its_clock_and_its_policy_encoded() {
        let (_dir, root, name, size) = written(b"hello");
        let back = read_back(&root, &name, "k", size).unwrap();
        let now = SystemTime::now();
        let original = entry(b"hello");
        assert_eq!(back.body, "hello");
        assert_eq!(back.headers, original.headers);
        assert_eq!(back.headers.get_all(header::LINK).iter().count(), 2);
        assert_eq!(back.lifetime, Duration::from_secs(60));
        assert_eq!(back.age(now).as_secs(), 10);
        // Left encoded by the read; decoded, it agrees with the clock.
        let policy = back.policy.get().expect("the policy decodes");
        assert_eq!(policy.age(now).as_secs(), 10);
        assert_eq!(policy.is_stale(now), back.is_stale(now));
        // Written again from the read entry: the same bytes.
        let again = write(&root, &name, "k", &back).unwrap();
        assert_eq!(again, size);
        assert!(read_meta(&root.file(&name), &name).is_ok());
    }

    #[test]
    fn a_size_the_index_has_wrong_still_reads_the_whole_file() {
        let (_dir, root, name, size) = written(b"a body of some length");
        for hint in [0, 3, PREFIX as u64 + 1, size - 1, size + 100] {
            let back = read_back(&root, &name, "k", hint).unwrap();
            assert_eq!(back.body, "a body of some length", "hint {hint}");
        }
    }

    #[test]
    fn a_held_file_reads_the_same_each_time_and_sees_a_cut_in_place() {
        let (_dir, root, name, size) = written(b"hello");
        let held = root.open_entry(&name).unwrap();
        for _ in 0..3 {
            assert_eq!(read(&held, "k", size).unwrap().body, "hello");
        }
        let len = fs::metadata(root.file(&name)).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(root.file(&name))
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        assert!(matches!(read(&held, "k", size), Err(Bad::Length { .. })));
    }

    #[test]
    fn torn_corrupt_foreign_and_misnamed_files_are_refused() {
        let (_dir, root, name, size) = written(b"hello");
        let path = root.file(&name);
        let good = fs::read(&path).unwrap();
        let check = |bytes: &[u8], want: fn(&Bad) -> bool| {
            fs::write(&path, bytes).unwrap();
            match read_back(&root, &name, "k", size) {
                Err(e) => assert!(want(&e), "{e}"),
                Ok(_) => panic!("served a bad file"),
            }
        };
        check(&good[..good.len() - 1], |e| matches!(e, Bad::Length { .. }));
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        check(&flipped, |e| matches!(e, Bad::Checksum));
        // A byte of the policy block is covered too.
        let mut policy = good.clone();
        let at = good.len() - 5 - 1;
        policy[at] ^= 0x40;
        check(&policy, |e| matches!(e, Bad::Checksum));
        let mut old = good.clone();
        old[..8].copy_from_slice(b"TROUPEC2");
        check(&old, |e| matches!(e, Bad::Magic));
        check(b"", |e| matches!(e, Bad::Magic));
        fs::write(&path, &good).unwrap();
        assert!(matches!(
            read_back(&root, &name, "other", size),
            Err(Bad::Name)
        ));
        assert!(read_back(&root, &name, "k", size).is_ok());
    }
}
