//! Configuration (P3.1–P3.3): read, check and compile `config.ron`.
//!
//! [`load`] does all of it, so `troupe -t` and start-up share one path:
//! [`schema`] parses (syntax, unknown keys and types are caught by serde and
//! ron, with their position), then `compile.rs` checks meaning (static roots
//! exist, regexes compile, routes are unique) while building the snapshot
//! directly; `tls.rs` reads and checks the certificate files. Every error
//! names the file, line and column.

mod access;
mod access_schema;
mod admin;
mod backends;
mod cache_schema;
mod caches;
mod compile;
mod compress;
mod compress_schema;
mod health;
pub mod include;
mod limit_schema;
mod limits;
mod locate;
mod modules;
mod proxy_schema;
mod routing;
mod routing_schema;
pub mod schema;
mod tls;
mod upstream_tls;
mod upstreams;
mod ws_schema;

use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::{modules::ModuleEntry, pipeline::snapshot::Snapshot};
pub use access::htpasswd_files;
pub use admin::AdminSpec;
pub use routing::error_page_files;
pub use schema::Config;

/// A checked config and the snapshot compiled from it.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed file.
    pub config: Config,
    /// The request-path state built from it.
    pub snapshot: Snapshot,
    /// The modules it declares, each with the slot its routes read.
    pub modules: Vec<Arc<ModuleEntry>>,
    /// Where the routes and servers use modules, for `troupe -t`.
    pub uses: Vec<crate::modules::ModuleUse>,
    /// The file it came from.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub base: PathBuf,
    /// The admin API, if the config has one (with its token read).
    pub admin: Option<AdminSpec>,
    /// The servers' certificates, read and checked.
    pub certs: crate::tls::Certs,
    /// The upstream groups `Proxy` routes use.
    pub upstreams: Arc<crate::proxy::Upstreams>,
    /// The rate-limit zones in force, the next reload's to keep.
    pub zones: Arc<crate::limit::Zones>,
    /// The cache zones in force, the next reload's to keep.
    pub caches: Arc<crate::cache::CacheZones>,
    /// The files it includes and the directories its globs look in, which
    /// a watching config watches too.
    pub included: Vec<PathBuf>,
}

/// What a reload takes from the config in force: state that outlives one
/// config (upstream backends, rate-limit zones), reused where the new
/// config keeps it.
#[derive(Debug, Clone, Default)]
pub struct Carry {
    /// Upstream backends, with their health and pooled connections.
    pub upstreams: Arc<crate::proxy::Registry>,
    /// Rate-limit zones, with their clients' counts.
    pub zones: Arc<crate::limit::Zones>,
    /// Cache zones, with their entries.
    pub caches: Arc<crate::cache::CacheZones>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is wrong at a position.
    #[error("{file}:{line}:{col}: {message}")]
    At {
        /// The file, as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Reads, checks and compiles a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&src, path)
}

/// The pid file a config names, resolved against its directory; parses
/// the file without compiling it (no module is loaded).
pub fn pid_file(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config: Config = parse(&src, path)?;
    Ok(config.pid_file.map(|p| base_of(path).join(p)))
}

/// The admin API a config sets up (with its token read), without
/// compiling the rest: for `troupe module …`, which talks to it.
pub fn admin(path: &Path) -> Result<Option<AdminSpec>, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config: Config = parse(&src, path)?;
    let file = path.display().to_string();
    admin::compile_admin(&config, &base_of(path)).map_err(|e| positioned(&src, &file, e))
}

/// A compile error with the line and column its anchor points at.
fn positioned(src: &str, file: &str, e: locate::CompileError) -> ConfigError {
    let (line, col) = e.anchor.find(src).unwrap_or((1, 1));
    ConfigError::At {
        file: file.to_owned(),
        line,
        col,
        message: e.message,
    }
}

fn base_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn parse<T: serde::de::DeserializeOwned>(src: &str, path: &Path) -> Result<T, ConfigError> {
    let options = ron::Options::default().with_default_extension(
        ron::extensions::Extensions::IMPLICIT_SOME
            | ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES,
    );
    options.from_str(src).map_err(|e| ConfigError::At {
        file: path.display().to_string(),
        line: e.span.start.line,
        col: e.span.start.col,
        message: e.code.to_string(),
    })
}

/// Checks and compiles config text; `path` names it in errors and anchors
/// relative paths.
pub fn load_str(src: &str, path: &Path) -> Result<Loaded, ConfigError> {
    load_next(src, path, &[], &Carry::default())
}

/// Reads and checks a config file again for a reload: modules of the
/// running config (`previous`) whose declaration and file did not change
/// are reused as they are, with their running instances, and upstream
/// backends and rate-limit zones it keeps get their state from `carry`.
pub fn reload(
    path: &Path,
    previous: &[Arc<ModuleEntry>],
    carry: &Carry,
) -> Result<Loaded, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_next(&src, path, previous, carry)
}

fn load_next(
    src: &str,
    path: &Path,
    previous: &[Arc<ModuleEntry>],
    carry: &Carry,
) -> Result<Loaded, ConfigError> {
    let (mut config, sources) = include::read_str(src, path)?;
    let base = base_of(path);
    for listen in &mut config.listen {
        listen.anchor(&base);
    }
    let at = |e| sources.positioned(e);
    let admin = admin::compile_admin(&config, &base).map_err(at)?;
    let locate = |anchor: &locate::Anchor| {
        let (file, line, col) = sources.locate(anchor);
        format!("{file}:{line}:{col}")
    };
    let compile::Compiled {
        snapshot,
        modules,
        uses,
        certs,
        upstreams,
    } = compile::compile(&config, &base, previous, carry, &locate).map_err(at)?;
    let included = sources
        .included()
        .map(Path::to_owned)
        .chain(sources.dirs.iter().cloned())
        .collect();
    Ok(Loaded {
        config,
        snapshot,
        modules,
        uses,
        path: path.to_owned(),
        base,
        admin,
        certs,
        upstreams: Arc::new(upstreams),
        zones: carry.zones.clone(),
        caches: carry.caches.clone(),
        included,
    })
}
