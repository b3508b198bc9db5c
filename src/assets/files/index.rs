//! The files Rust answers for, indexed at prepare: each `/_next/static` file with its
//! validators, prepared headers and (within a memory budget) its bytes; each `public/`
//! file with the bytes last read; the `public/` symlinks that lead out of the folder. A
//! request path finds its file as Next's file-system router finds it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
    time::SystemTime,
};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderMap;

use super::serve::whole_headers;
use crate::assets::{
    Settings,
    rules::{HeaderRules, RuleHeaders},
    semantics::{self, encode_uri_path},
};

/// Files above this size are streamed from disk, not held in memory.
pub(super) const MAX_MEMORY_FILE: u64 = 2 * 1024 * 1024;
/// The most bytes of files held in memory.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

/// Size and modification time, and the validators `send` derives from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Validators {
    pub(super) len: u64,
    modified: SystemTime,
    pub(super) etag: String,
    pub(super) last_modified: String,
}

impl Validators {
    pub(super) fn of(metadata: &std::fs::Metadata) -> Option<Validators> {
        let modified = metadata.modified().ok()?;
        Some(Validators {
            len: metadata.len(),
            modified,
            etag: semantics::file_etag(metadata.len(), modified),
            last_modified: semantics::http_date(modified),
        })
    }
}

/// What a file's answers share, whatever its content.
pub(super) struct Shape {
    /// Headers of next.config `headers()` rules for the file's path.
    pub(super) rules: HeaderMap,
    pub(super) content_type: &'static str,
    /// `Cache-Control` when no rule sets one.
    pub(super) cache_control: &'static str,
}

/// One file of `/_next/static`.
pub(in crate::assets) struct StaticFile {
    pub(super) path: PathBuf,
    pub(super) shape: Shape,
    pub(super) validators: Validators,
    pub(super) bytes: Option<Bytes>,
    /// The complete headers of a `200` to a plain GET (the common case, prepared once).
    pub(super) whole: HeaderMap,
}

/// One file of `public/`.
pub(in crate::assets) struct PublicFile {
    pub(super) path: PathBuf,
    pub(super) shape: Shape,
    pub(super) memory: ArcSwapOption<Snapshot>,
    /// A re-read of a changed file is under way.
    pub(super) refreshing: AtomicBool,
}

/// A public file's bytes as read at a given size and mtime.
pub(super) struct Snapshot {
    pub(super) validators: Validators,
    pub(super) bytes: Bytes,
}

/// The files Rust answers for.
#[derive(Default)]
pub(in crate::assets) struct FileIndex {
    statics: HashMap<String, Arc<StaticFile>>,
    public: HashMap<String, Arc<PublicFile>>,
    /// URL paths (and folder prefixes ending in `/`) of `public/` symlinks that lead out of
    /// the folder: refused, whoever would answer.
    refused: Vec<String>,
}

/// Where a path leads among the files.
pub(in crate::assets) enum FileMatch<'a> {
    Static(&'a Arc<StaticFile>),
    Public(&'a Arc<PublicFile>),
    Refused,
    None,
}

impl FileIndex {
    /// Indexes `{dist_dir}/static` and `{dir}/public`. `claimed` says whether a URL path
    /// (with basePath) is taken by a middleware matcher or a redirect/rewrite rule: such
    /// files stay Node's.
    pub(in crate::assets) fn load(
        dir: &Path,
        dist_dir: &Path,
        settings: &Settings,
        rules: &HeaderRules,
        claimed: &dyn Fn(&str) -> bool,
    ) -> FileIndex {
        let mut index = FileIndex::default();
        let mut budget = MEMORY_BUDGET;
        index.load_statics(dist_dir, settings, rules, claimed, &mut budget);
        index.load_public(dir, settings, rules, claimed, &mut budget);
        tracing::debug!(
            statics = index.statics.len(),
            public = index.public.len(),
            refused = index.refused.len(),
            memory_bytes = MEMORY_BUDGET - budget,
            "native file index"
        );
        index
    }

    /// Indexes `{dist_dir}/static`, holding the bytes of each file that fits in `budget`.
    fn load_statics(
        &mut self,
        dist_dir: &Path,
        settings: &Settings,
        rules: &HeaderRules,
        claimed: &dyn Fn(&str) -> bool,
        budget: &mut u64,
    ) {
        let mut statics = Vec::new();
        walk(
            &dist_dir.join("static"),
            "/_next/static",
            &mut statics,
            &mut Vec::new(),
        );
        for (url, path, metadata) in statics {
            let Some(shape) = shape(&url, settings, rules, claimed, true) else {
                continue;
            };
            let Some(validators) = Validators::of(&metadata) else {
                continue;
            };
            let bytes = (validators.len <= MAX_MEMORY_FILE && validators.len <= *budget)
                .then(|| std::fs::read(&path).ok())
                .flatten()
                .filter(|bytes| bytes.len() as u64 == validators.len)
                .map(|bytes| {
                    *budget -= validators.len;
                    Bytes::from(bytes)
                });
            let whole = whole_headers(&shape, &validators, settings);
            self.statics.insert(
                encode_uri_path(&url),
                Arc::new(StaticFile {
                    path,
                    shape,
                    validators,
                    bytes,
                    whole,
                }),
            );
        }
    }

    /// Indexes `{dir}/public` (after the statics, which Next checks first), holding the
    /// bytes of each file that fits in `budget`, and records the symlinks it refuses.
    fn load_public(
        &mut self,
        dir: &Path,
        settings: &Settings,
        rules: &HeaderRules,
        claimed: &dyn Fn(&str) -> bool,
        budget: &mut u64,
    ) {
        let public_dir = dir.join("public");
        let mut public = Vec::new();
        walk(&public_dir, "", &mut public, &mut self.refused);
        for (url, path, metadata) in public {
            if self.statics.contains_key(&encode_uri_path(&url)) || url.starts_with("/_next/") {
                continue; // Next checks its own folders first.
            }
            let Some(shape) = shape(&url, settings, rules, claimed, false) else {
                continue;
            };
            let memory = Validators::of(&metadata)
                .filter(|v| v.len <= MAX_MEMORY_FILE && v.len <= *budget)
                .and_then(|validators| {
                    let bytes = std::fs::read(&path).ok()?;
                    (bytes.len() as u64 == validators.len).then(|| {
                        *budget -= validators.len;
                        Arc::new(Snapshot {
                            validators,
                            bytes: Bytes::from(bytes),
                        })
                    })
                });
            self.public.insert(
                encode_uri_path(&url),
                Arc::new(PublicFile {
                    path,
                    shape,
                    memory: ArcSwapOption::new(memory),
                    refreshing: AtomicBool::new(false),
                }),
            );
        }
    }

    /// The file for a request path (after basePath, as sent), matched as Next's
    /// file-system router matches it: the path as sent, decoded, or encoded once more,
    /// against each file's name in Next's encoded form (`encodeURIComponent` per
    /// segment). So `/files/c%2B%2B.txt` and `/files/c++.txt` find `public/files/c++.txt`,
    /// where `/files/c%2b%2b.txt` and `/files/%63++.txt` do not, as with `next start`.
    /// Membership in the index is the whole test: no spelling reaches another file.
    pub(in crate::assets) fn find(&self, raw: &str) -> FileMatch<'_> {
        if raw.starts_with("/_next/static/") {
            return match next_lookup(&self.statics, raw) {
                Some(file) => FileMatch::Static(file),
                None => FileMatch::None,
            };
        }
        if let Some(file) = next_lookup(&self.public, raw) {
            return FileMatch::Public(file);
        }
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        if self.refused.iter().any(|prefix| {
            decoded == prefix.trim_end_matches('/')
                || (prefix.ends_with('/') && decoded.starts_with(prefix.as_str()))
        }) {
            return FileMatch::Refused;
        }
        FileMatch::None
    }
}

/// Next's lookup of a request path among file names kept in its encoded form
/// (`filesystem.js`): as sent, then `decodeURIComponent` of it, then `encodeURIPath` of it.
fn next_lookup<'a, T>(files: &'a HashMap<String, T>, raw: &str) -> Option<&'a T> {
    if let Some(file) = files.get(raw) {
        return Some(file);
    }
    // Most paths are plain: decoding or encoding them gives them back, so nothing is
    // allocated for them (every page request looks for a file first).
    if raw.contains('%')
        && let Some(decoded) = decode_uri_component(raw)
        && let Some(file) = files.get(decoded.as_str())
    {
        return Some(file);
    }
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()/".contains(&b));
    if plain {
        return None;
    }
    files.get(encode_uri_path(raw).as_str())
}

/// JavaScript's `decodeURIComponent`: `None` where it throws (a `%` not followed by two
/// hex digits, or bytes that are not UTF-8).
fn decode_uri_component(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// The rules, type and default `Cache-Control` of a file, or `None` when it stays Node's.
fn shape(
    url: &str,
    settings: &Settings,
    rules: &HeaderRules,
    claimed: &dyn Fn(&str) -> bool,
    immutable: bool,
) -> Option<Shape> {
    let full = format!("{}{url}", settings.base_path);
    if claimed(&full) {
        return None;
    }
    let RuleHeaders::Known(rules) = rules.for_path(&full) else {
        return None;
    };
    Some(Shape {
        rules,
        content_type: semantics::content_type(url)?,
        cache_control: if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=0"
        },
    })
}

/// Collects the regular files under `folder` as (URL path, file path, metadata). Symlinks
/// are followed only when they stay inside `folder`; those leading out are recorded in
/// `refused` (as decoded URL paths).
fn walk(
    folder: &Path,
    prefix: &str,
    files: &mut Vec<(String, PathBuf, std::fs::Metadata)>,
    refused: &mut Vec<String>,
) {
    let Ok(root) = std::fs::canonicalize(folder) else {
        return;
    };
    let mut stack = vec![(root.clone(), prefix.to_owned())];
    while let Some((folder, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let url = format!("{prefix}/{name}");
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                let inside =
                    std::fs::canonicalize(&path).is_ok_and(|target| target.starts_with(&root));
                if !inside {
                    let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
                    refused.push(if is_dir { format!("{url}/") } else { url });
                    continue;
                }
                // A link inside the folder to a file is served as that file; linked
                // folders are left to Node.
                match std::fs::metadata(&path) {
                    Ok(metadata) if metadata.is_file() && url_safe(name) => {
                        files.push((url, path, metadata))
                    }
                    _ => {}
                }
            } else if kind.is_dir() {
                stack.push((path, url));
            } else if kind.is_file()
                && url_safe(name)
                && let Ok(metadata) = entry.metadata()
            {
                files.push((url, path, metadata));
            }
        }
    }
}

/// Whether a file name can be served (any name but the dot segments; the index keeps it
/// in Next's encoded form).
fn url_safe(name: &str) -> bool {
    name != "." && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_as_nexts_file_system_router_matches_them() {
        let files: HashMap<String, u8> = [
            "/files/c++.txt",
            "/hello.txt",
            "/_next/static/chunks/app/blog/[slug]/page-1.js",
            "/images/dot.svg",
        ]
        .iter()
        .map(|url| (encode_uri_path(url), 0))
        .collect();
        let found = |raw: &str| next_lookup(&files, raw).is_some();
        for raw in [
            "/files/c++.txt",
            "/files/c%2B%2B.txt",
            "/hello.txt",
            "/hello%2Etxt",
            "/%68ello.txt",
            "/images%2Fdot.svg",
            "/_next/static/chunks/app/blog/%5Bslug%5D/page-1.js",
            "/_next/static/chunks/app/blog/[slug]/page-1.js",
        ] {
            assert!(found(raw), "{raw}");
        }
        for raw in [
            "/files/c%2b%2b.txt",
            "/files/%63++.txt",
            "/_next/static/chunks/app/blog/%5bslug%5d/page-1.js",
            "/_next/static/chunks/app/blog/%5Bslug]/page-1.js",
            "/hello.txt%",
            "/files/../hello.txt",
        ] {
            assert!(!found(raw), "{raw}");
        }
    }
}
