//! What a page is made from ([`Source`]): read from the build's prerendered entries, from
//! the runtime cache entries an earlier run of the same build wrote (which Next.js
//! prefers), or from a cache entry a worker reports. Names follow Next's file-system
//! cache (`normalizePagePath`, `route-cache/APP_PAGE`).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;

use super::{Context, PageIndex, index::Slot};
use crate::{assets::semantics, build::Manifests, cache::CachedEntry};

/// Which handler serves a page in Next.js.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// App Router page (`.html` + `.rsc` + `.meta`).
    App,
    /// Pages Router page without data (Automatic Static Optimization, `.html` only).
    PagesStatic,
    /// Pages Router page with `getStaticProps` (`.html` + `.json`).
    PagesProps,
}

/// `revalidate` of a cache entry: seconds, or never (`false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheLife {
    pub(super) revalidate: Option<u64>,
    pub(super) expire: Option<u64>,
}

impl CacheLife {
    /// A lifetime as Next stores it: `revalidate` in seconds or `false` (never), and
    /// `expire` in seconds.
    fn stored(revalidate: &serde_json::Value, expire: Option<u64>) -> Option<CacheLife> {
        let revalidate = match revalidate {
            serde_json::Value::Number(n) => Some(n.as_u64()?),
            serde_json::Value::Bool(false) => None,
            _ => return None,
        };
        Some(CacheLife { revalidate, expire })
    }
}

/// Everything a page is made from.
pub(crate) struct Source {
    pub kind: Kind,
    pub html: String,
    pub rsc: Option<Bytes>,
    pub data: Option<String>,
    pub entry_headers: serde_json::Map<String, serde_json::Value>,
    pub status: Option<u16>,
    pub life: Option<CacheLife>,
    pub last_modified: u64,
    /// Cache Components: a static shell with postponed parts; Rust sends the shell and a
    /// worker resumes the render from `postponed_state`.
    pub postponed: bool,
    pub postponed_state: Option<String>,
    /// Next 16: the entry's segment prefetch payloads, by segment path (`/_tree`), as
    /// its `.meta` lists them (`segmentPaths`); `None` when it lists none.
    pub segments: Option<Vec<(String, Bytes)>>,
}

impl PageIndex {
    /// Reads the prerendered pages of the build in `dist_dir`, as its manifests list them.
    pub(crate) fn load(dist_dir: &Path, build: &Manifests, cx: &Context<'_>) -> PageIndex {
        let mut index = PageIndex::default();
        let server = dist_dir.join("server");
        load_prerendered(&mut index, &server, build, cx);
        load_runtime_entries(&mut index, &server, cx);
        load_static_pages(&mut index, &server, build, cx);
        index
    }
}

/// The pages the prerender manifest lists (App Router, and Pages Router with
/// `getStaticProps`), each as Next's file-system cache reads it.
fn load_prerendered(index: &mut PageIndex, server: &Path, build: &Manifests, cx: &Context<'_>) {
    for (path, route) in &build.prerender.routes {
        let kind = match route.data_route.as_deref() {
            Some(data) if data.ends_with(".rsc") => Kind::App,
            Some(data) if data.ends_with(".json") => Kind::PagesProps,
            _ => continue, // route handlers, or unknown
        };
        let life = CacheLife {
            revalidate: match route.initial_revalidate_seconds {
                serde_json::Value::Number(ref n) => n.as_u64(),
                _ => None,
            },
            expire: route.initial_expire_seconds,
        };
        if life.revalidate == Some(0) {
            continue;
        }
        let folder = server.join(if kind == Kind::App { "app" } else { "pages" });
        let slot = Slot::of(path, read_entry(server, &folder, path, kind, life, cx), cx);
        index.insert(path.clone(), slot, cx);
    }
}

/// App Router pages rendered on demand by an earlier process of this build. Next 16
/// stores such an entry's lifetime in its `.meta` and answers it from disk as a HIT
/// without writing it again, so no worker would report it. (Next 15 keeps the
/// lifetime in memory and answers the entry STALE once, which reports it.)
fn load_runtime_entries(index: &mut PageIndex, server: &Path, cx: &Context<'_>) {
    for (path, stem) in runtime_entries(&server.join("route-cache/APP_PAGE")) {
        if index.contains(&path) {
            continue;
        }
        let Some(meta) = read_json::<Meta>(&with_suffix(&stem, "meta")) else {
            continue;
        };
        let Some(life) = meta
            .cache_control
            .as_ref()
            .and_then(|stored| CacheLife::stored(&stored.revalidate, stored.expire))
        else {
            continue;
        };
        if life.revalidate == Some(0) {
            continue;
        }
        let slot = Slot::of(&path, read_stem(&stem, meta, Kind::App, life, cx), cx);
        index.insert(path, slot, cx);
    }
}

/// Pages Router pages without data (Automatic Static Optimization): the build's `.html`.
fn load_static_pages(index: &mut PageIndex, server: &Path, build: &Manifests, cx: &Context<'_>) {
    for (path, file) in &build.pages {
        if !file.ends_with(".html") || ["/404", "/500", "/_error"].contains(&path.as_str()) {
            continue;
        }
        if index.contains(path) {
            continue;
        }
        let Some(html) = read_html(&server.join(file)) else {
            continue;
        };
        let source = Source {
            kind: Kind::PagesStatic,
            html,
            rsc: None,
            data: None,
            entry_headers: Default::default(),
            status: None,
            life: None,
            last_modified: 0,
            postponed: false,
            postponed_state: None,
            segments: None,
        };
        let slot = Slot::of(path, Some(source), cx);
        index.insert(path.clone(), slot, cx);
    }
}

/// A page of `kind` from a cache entry a worker reported, or `None` when Rust cannot
/// answer it as Next would (a fallback entry, a postponed one outside Cache Components,
/// no HTML or lifetime, a lifetime of 0, a payload that is not base64). With Cache
/// Components a postponed entry answers its segments only.
pub(super) fn reported(entry: CachedEntry, kind: Kind, cx: &Context<'_>) -> Option<Source> {
    let cache_components = cx.settings.cache_components && kind == Kind::App;
    if entry.fallback || (entry.postponed && !cache_components) {
        return None;
    }
    let life = entry.life();
    let (Some(html), Some(life)) = (entry.html, life) else {
        return None;
    };
    if life.revalidate == Some(0) {
        return None;
    }
    let rsc = match (&entry.rsc, kind) {
        (Some(encoded), Kind::App) if !entry.postponed => match BASE64.decode(encoded) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(_) => return None,
        },
        _ => None,
    };
    if cache_components && !entry.postponed && rsc.is_none() {
        return None;
    }
    let segments = match entry.segments.filter(|_| cache_components) {
        Some(encoded) => {
            let mut segments = Vec::with_capacity(encoded.len());
            for (segment, payload) in encoded {
                segments.push((segment, Bytes::from(BASE64.decode(payload).ok()?)));
            }
            Some(segments)
        }
        None => None,
    };
    Some(Source {
        kind,
        html,
        rsc,
        data: entry.page_data,
        entry_headers: entry.headers.unwrap_or_default(),
        status: entry.status,
        life: Some(life),
        last_modified: entry.at,
        postponed: entry.postponed,
        postponed_state: entry.postponed_state.filter(|_| entry.postponed),
        segments,
    })
}

fn file_stem(path: &str) -> String {
    if path == "/" {
        "/index".into()
    } else if path == "/index" || path.starts_with("/index/") {
        format!("/index{path}")
    } else {
        path.to_owned()
    }
}

/// The page path a cache file stem stands for: the inverse of [`file_stem`].
fn page_path(stem: &str) -> String {
    match stem.strip_prefix("/index") {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.into(),
        _ => stem.into(),
    }
}

/// The runtime entries under `route-cache/APP_PAGE` (`<owner>/$<stem>.html`), as
/// (page path, file stem).
fn runtime_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    fn visit(dir: &Path, rel: &str, found: &mut Vec<(String, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                // `.segments` folders hold the prefetch segments of the entry beside them.
                if !name.ends_with(".segments") {
                    visit(&path, &format!("{rel}/{name}"), found);
                }
            } else if let Some(stem) = name.strip_suffix(".html") {
                found.push((page_path(&format!("{rel}/{stem}")), path.with_extension("")));
            }
        }
    }
    let mut found = Vec::new();
    for owner in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        visit(&owner.path().join("$"), "", &mut found);
    }
    found
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    postponed: Option<serde_json::Value>,
    #[serde(default)]
    route_cache: Option<RouteCache>,
    #[serde(default)]
    route_cache_last_modified: Option<u64>,
    /// The entry's lifetime, which Next 16 writes into a runtime entry's `.meta`.
    #[serde(default)]
    cache_control: Option<StoredCacheControl>,
    #[serde(default)]
    segment_paths: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RouteCache {
    key: String,
}

#[derive(Deserialize)]
struct StoredCacheControl {
    /// Seconds, or `false` for never.
    revalidate: serde_json::Value,
    #[serde(default)]
    expire: Option<u64>,
}

/// Reads a prerendered entry as Next's file-system cache would: the runtime entry
/// (`server/route-cache/...`, Next 15.5) when an earlier run wrote one, else the build's.
fn read_entry(
    server: &Path,
    folder: &Path,
    path: &str,
    kind: Kind,
    life: CacheLife,
    cx: &Context<'_>,
) -> Option<Source> {
    let stem = folder.join(file_stem(path).trim_start_matches('/'));
    let seed_meta: Meta = match kind {
        Kind::App => read_json(&stem.with_extension("meta"))?,
        _ => read_json(&stem.with_extension("meta")).unwrap_or_default(),
    };
    // A runtime entry is complete once its `.html` exists (Next writes it last).
    let runtime = seed_meta
        .route_cache
        .as_ref()
        .map(|cache| server.join(cache.key.trim_start_matches('/')))
        .filter(|stem| with_suffix(stem, "html").is_file());
    let (stem, meta) = match runtime {
        Some(runtime) => {
            let meta: Meta = read_json(&with_suffix(&runtime, "meta"))?;
            (runtime, meta)
        }
        None => (stem, seed_meta),
    };
    read_stem(&stem, meta, kind, life, cx)
}

/// The entry at `stem` (`.html`, and `.rsc` or `.json`) with its `.meta`.
fn read_stem(
    stem: &Path,
    meta: Meta,
    kind: Kind,
    life: CacheLife,
    cx: &Context<'_>,
) -> Option<Source> {
    let cache_components = cx.settings.cache_components && kind == Kind::App;
    let postponed = meta.postponed.as_ref().is_some_and(|p| !p.is_null());
    let postponed_state = match &meta.postponed {
        Some(serde_json::Value::String(state)) => Some(state.clone()),
        _ => None,
    };
    if postponed && !cache_components {
        return None;
    }
    let html_path = with_suffix(stem, "html");
    let html = read_html(&html_path)?;
    let modified = std::fs::metadata(&html_path).ok()?.modified().ok()?;
    let last_modified = meta
        .route_cache_last_modified
        .unwrap_or_else(|| semantics::millis(modified));
    let (rsc, data) = match kind {
        // With Cache Components Next reads the payload of every entry that is not
        // postponed, and renders again when it is missing (`FileSystemCache.get`; its
        // runtime entries have none).
        Kind::App if cache_components && !postponed => (
            Some(Bytes::from(std::fs::read(with_suffix(stem, "rsc")).ok()?)),
            None,
        ),
        Kind::App => (
            std::fs::read(with_suffix(stem, "rsc"))
                .ok()
                .filter(|_| !postponed)
                .map(Bytes::from),
            None,
        ),
        _ => (
            None,
            Some(std::fs::read_to_string(with_suffix(stem, "json")).ok()?),
        ),
    };
    Some(Source {
        kind,
        html,
        rsc,
        data,
        entry_headers: meta.headers,
        status: meta.status,
        life: Some(life),
        last_modified,
        postponed,
        postponed_state,
        segments: meta
            .segment_paths
            .filter(|_| cache_components)
            .map(|paths| read_segments(stem, &paths)),
    })
}

/// The segment payloads `<stem>.segments<path>.segment.rsc`; one that cannot be read is
/// left out, as Next leaves it out.
fn read_segments(stem: &Path, paths: &[String]) -> Vec<(String, Bytes)> {
    paths
        .iter()
        .filter(|path| path.starts_with('/') && !path.split('/').any(|part| part == ".."))
        .filter_map(|path| {
            let file = with_suffix(stem, &format!("segments{path}.segment.rsc"));
            Some((path.clone(), Bytes::from(std::fs::read(file).ok()?)))
        })
        .collect()
}

/// `stem` + `.suffix` (the stem may contain dots, e.g. `/blog/v1.2`).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut path = stem.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    path.into()
}

/// An HTML file Next reads as UTF-8; other bytes would be altered by Node, so such a page
/// stays Node's.
fn read_html(path: &Path) -> Option<String> {
    String::from_utf8(std::fs::read(path).ok()?).ok()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

impl CachedEntry {
    /// The entry's lifetime, when the worker said.
    fn life(&self) -> Option<CacheLife> {
        CacheLife::stored(self.revalidate.as_ref()?, self.expire)
    }
}

#[cfg(test)]
mod tests {
    use super::{super::answers::data_path, *};

    #[test]
    fn page_file_names_follow_normalize_page_path() {
        assert_eq!(file_stem("/"), "/index");
        assert_eq!(file_stem("/about"), "/about");
        assert_eq!(file_stem("/index"), "/index/index");
        for path in [
            "/",
            "/about",
            "/index",
            "/index/x",
            "/blog/v1.2",
            "/indexes",
        ] {
            assert_eq!(page_path(&file_stem(path)), path);
        }
        assert_eq!(data_path("B", "/"), "/_next/data/B/index.json");
    }
}
