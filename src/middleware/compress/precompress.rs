//! `troupe precompress DIR`: writes the `.zst`, `.br` and `.gz` siblings
//! that a `Static` route with `precompressed` serves, at the levels too
//! slow for the fly (brotli 11, zstd 19, gzip 9).
//!
//! Only files whose type is on the list and whose coding gains are
//! written; a sibling not older than its file is kept, so running it again
//! writes only what changed. Each sibling is written to a temporary file
//! beside it and renamed, so the server never serves half of one.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use async_compression::{
    Level,
    tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder},
};
use tokio::io::AsyncReadExt;

use super::{Encoding, TypeList};

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Siblings written.
    pub written: usize,
    /// Siblings already up to date.
    pub fresh: usize,
    /// Codings not written because the result was no smaller.
    pub no_gain: usize,
    /// Files skipped: type not on the list, or smaller than `min_length`.
    pub skipped: usize,
}

/// Writes the siblings of every file under `dir` whose type is in `types`
/// and whose size is at least `min_length`.
pub fn precompress(dir: &Path, types: &TypeList, min_length: u64) -> io::Result<Summary> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut summary = Summary::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && !is_sibling(&path) {
                rt.block_on(one_file(&path, types, min_length, &mut summary))?;
            }
        }
    }
    Ok(summary)
}

const CODINGS: [Encoding; 3] = [Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];

fn is_sibling(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    CODINGS.iter().any(|c| c.extension() == ext) || ext.starts_with("tmp-")
}

/// The sibling of `path` for `coding`: `page.html` → `page.html.br`.
pub(crate) fn sibling(path: &Path, coding: Encoding) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(coding.extension());
    PathBuf::from(name)
}

async fn one_file(
    path: &Path,
    types: &TypeList,
    min_length: u64,
    summary: &mut Summary,
) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let ct = http::HeaderValue::from_str(mime.as_ref()).ok();
    if meta.len() < min_length || !types.allows(ct.as_ref()) {
        summary.skipped += 1;
        return Ok(());
    }
    let modified = meta.modified()?;
    // Read once, and only when some sibling has to be written.
    let mut source: Option<Vec<u8>> = None;
    for coding in CODINGS {
        let target = sibling(path, coding);
        if let Ok(m) = fs::metadata(&target)
            && m.modified()? >= modified
        {
            summary.fresh += 1;
            continue;
        }
        if source.is_none() {
            source = Some(fs::read(path)?);
        }
        let Some(data) = source.as_deref() else {
            continue;
        };
        let encoded = encode(data, coding).await?;
        if encoded.len() >= data.len() {
            summary.no_gain += 1;
            continue;
        }
        let mut tmp = target.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        fs::write(&tmp, &encoded)?;
        fs::rename(&tmp, &target)?;
        summary.written += 1;
    }
    Ok(())
}

async fn encode(data: &[u8], coding: Encoding) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    match coding {
        Encoding::Gzip => {
            GzipEncoder::with_quality(data, Level::Precise(9))
                .read_to_end(&mut out)
                .await?
        }
        Encoding::Brotli => {
            BrotliEncoder::with_quality(data, Level::Precise(11))
                .read_to_end(&mut out)
                .await?
        }
        Encoding::Zstd => {
            ZstdEncoder::with_quality(data, Level::Precise(19))
                .read_to_end(&mut out)
                .await?
        }
    };
    Ok(out)
}
