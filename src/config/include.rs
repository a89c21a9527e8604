//! Includes (issue 16): the main config's `include` patterns (paths and
//! globs, relative to the main config's directory, like nginx's
//! `include conf.d/*.conf`) name fragment files, each holding a
//! [`Fragment`]: servers, upstreams, zones and modules, merged after the
//! main file's own, in pattern order and, within a glob, in name order.
//!
//! Every file read is kept with its text ([`Sources`]), so that an error
//! found after the merge still names the file, line and column it is in.
//! A fragment may include more files; a file reached twice (a cycle, or
//! two patterns matching it) and a pattern matching nothing are errors.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    ConfigError,
    locate::{Anchor, CompileError},
    schema::{CacheZoneSpec, Config, ModuleSpec, RateZoneSpec, Server, UpstreamSpec},
};

/// What an included file may say: the named and listed parts of a config,
/// never the process-wide ones (listen addresses, limits, logs, admin).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    /// More files to include (relative to the main config's directory).
    #[serde(default)]
    pub include: Vec<String>,
    /// Virtual hosts, after those already read.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Upstream groups; a name may be defined once across all files.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// Rate-limit zones; a name may be defined once across all files.
    #[serde(default)]
    pub rate_zones: BTreeMap<String, RateZoneSpec>,
    /// Cache zones; a name may be defined once across all files.
    #[serde(default)]
    pub cache_zones: BTreeMap<String, CacheZoneSpec>,
    /// Modules, after those already declared.
    #[serde(default)]
    pub modules: Vec<ModuleSpec>,
}

/// One file of a config, as read.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file, as named in errors.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// The main file and every file it includes, in the order their contents
/// were merged.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The main file first.
    pub files: Vec<Source>,
    /// Directories a glob looked in: a file added there changes the config.
    pub dirs: Vec<PathBuf>,
}

impl Sources {
    /// The included files (not the main one).
    pub fn included(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().skip(1).map(|s| s.path.as_path())
    }

    /// `file:line:col` of an anchor, counting its occurrences through the
    /// files in merge order (the main file's first line when not found).
    pub(super) fn locate(&self, anchor: &Anchor) -> (String, usize, usize) {
        let texts: Vec<&str> = self.files.iter().map(|f| f.text.as_str()).collect();
        match anchor.find_in(&texts) {
            Some((i, line, col)) => (self.files[i].path.display().to_string(), line, col),
            None => (self.files[0].path.display().to_string(), 1, 1),
        }
    }

    /// A compile error at its file, line and column.
    pub(super) fn positioned(&self, e: CompileError) -> ConfigError {
        let (file, line, col) = self.locate(&e.anchor);
        ConfigError::At {
            file,
            line,
            col,
            message: e.message,
        }
    }
}

/// Reads `path`, then every file its `include` patterns name, and merges
/// them into one config.
pub fn read(path: &Path) -> Result<(Config, Sources), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_str(&text, path)
}

/// [`read`] for main config text already in hand.
pub fn read_str(text: &str, path: &Path) -> Result<(Config, Sources), ConfigError> {
    let mut config: Config = super::parse(text, path)?;
    let mut sources = Sources {
        files: vec![Source {
            path: path.to_owned(),
            text: text.to_owned(),
        }],
        dirs: Vec::new(),
    };
    let base = super::base_of(path);
    let mut seen = vec![identity(path)];
    let patterns = std::mem::take(&mut config.include);
    expand(&patterns, 0, &base, &mut config, &mut sources, &mut seen)?;
    config.include = patterns;
    Ok((config, sources))
}

/// Includes what `patterns` (written in file `from` of `sources`) match.
fn expand(
    patterns: &[String],
    from: usize,
    base: &Path,
    config: &mut Config,
    sources: &mut Sources,
    seen: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    for pattern in patterns {
        let at = |sources: &Sources, message: String| {
            let anchor = Anchor::str(pattern);
            let (line, col) = anchor.find(&sources.files[from].text).unwrap_or((1, 1));
            ConfigError::At {
                file: sources.files[from].path.display().to_string(),
                line,
                col,
                message,
            }
        };
        let full = base.join(pattern);
        let full_text = full.to_string_lossy();
        let is_glob = pattern.contains(['*', '?', '[']);
        let mut files: Vec<PathBuf> = if is_glob {
            let matches = glob::glob(&full_text)
                .map_err(|e| at(sources, format!("bad include pattern `{pattern}`: {e}")))?;
            let mut files = Vec::new();
            for m in matches {
                files.push(m.map_err(|e| at(sources, format!("include `{pattern}`: {e}")))?);
            }
            if let Some(dir) = full
                .parent()
                .filter(|d| !d.to_string_lossy().contains(['*', '?', '[']))
            {
                sources.dirs.push(dir.to_owned());
            }
            files
        } else {
            vec![full.clone()]
        };
        files.retain(|f| !f.is_dir());
        files.sort();
        if files.is_empty() {
            return Err(at(
                sources,
                format!(
                    "include `{pattern}` matches no file (a typo would drop servers unseen; remove the include while the directory is empty)"
                ),
            ));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                at(
                    sources,
                    format!("cannot read the included file {}: {e}", file.display()),
                )
            })?;
            let id = identity(&file);
            if let Some(first) = seen.iter().position(|s| *s == id) {
                let what = if first == 0 {
                    "the main config"
                } else {
                    "a file already included"
                };
                return Err(at(
                    sources,
                    format!(
                        "include `{pattern}` reaches {} again ({what}): an include cycle or a file included twice",
                        file.display()
                    ),
                ));
            }
            seen.push(id);
            let fragment: Fragment = super::parse(&text, &file)?;
            sources.files.push(Source {
                path: file.clone(),
                text,
            });
            let index = sources.files.len() - 1;
            let Fragment {
                include,
                servers,
                upstreams,
                rate_zones,
                cache_zones,
                modules,
            } = fragment;
            config.servers.extend(servers);
            config.modules.extend(modules);
            merge(&mut config.upstreams, upstreams, "upstream", sources, index)?;
            merge(
                &mut config.rate_zones,
                rate_zones,
                "rate zone",
                sources,
                index,
            )?;
            merge(
                &mut config.cache_zones,
                cache_zones,
                "cache zone",
                sources,
                index,
            )?;
            expand(&include, index, base, config, sources, seen)?;
        }
    }
    Ok(())
}

/// Adds a fragment's named entries; a name defined before is an error at
/// its place in the fragment.
fn merge<T>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    what: &str,
    sources: &Sources,
    index: usize,
) -> Result<(), ConfigError> {
    for (name, value) in from {
        if into.contains_key(&name) {
            let (line, col) = Anchor::str(&name)
                .find(&sources.files[index].text)
                .unwrap_or((1, 1));
            return Err(ConfigError::At {
                file: sources.files[index].path.display().to_string(),
                line,
                col,
                message: format!("{what} `{name}` is defined twice (once in an earlier file)"),
            });
        }
        into.insert(name, value);
    }
    Ok(())
}

/// What tells two names of one file apart from two files: the canonical
/// path when there is one.
fn identity(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}
