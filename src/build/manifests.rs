//! The manifests of a production build, each read once when the app is prepared and typed
//! as far as tower-next uses them. What they mean for ownership and native answers is
//! decided where it is used: `routes` (which paths Next serves) and `assets` (header rules,
//! prerendered pages).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, de::DeserializeOwned};

use crate::Error;

/// The manifests of one production build (`distDir`, `.next` by default).
pub(crate) struct Manifests {
    dist_dir: PathBuf,
    /// `routes-manifest.json`: pages by kind, redirects, rewrites, header rules.
    pub routes: RoutesManifest,
    /// `server/pages-manifest.json`: each Pages Router page (Next's own ones included) and
    /// its file under `server/`.
    pub pages: HashMap<String, String>,
    /// `app-path-routes-manifest.json`: each App Router entry (`/about/page`) and its
    /// route (`/about`).
    pub app_paths: HashMap<String, String>,
    /// `prerender-manifest.json`: the pages prerendered at build time.
    pub prerender: PrerenderManifest,
    /// `server/middleware-manifest.json`: the Edge middleware.
    pub middleware: MiddlewareManifest,
    /// `server/functions-config-manifest.json` (Next 16): the Node.js `proxy` (middleware).
    pub functions: FunctionsConfigManifest,
    /// Whether `server/interception-route-rewrite-manifest.js` lists interception routes
    /// (then App Router answers vary by `Next-Url`).
    pub interception_routes: bool,
    /// `images-manifest.json`: next.config `images` as the build resolved it (`None`
    /// without the file, or when it cannot be read: then images are Node's).
    pub images: Option<ImagesConfig>,
}

impl Manifests {
    /// Reads the manifests of the build in `dist_dir`. A manifest Next.js does not always
    /// write reads as empty when it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::Manifest`] when `routes-manifest.json` is missing, or a manifest cannot be
    /// read or parsed. The prerender manifest is the exception: it only decides which
    /// pages Rust may answer, so an unreadable one is logged and leaves them to Next.js.
    pub(crate) fn read(dist_dir: &Path) -> Result<Manifests, Error> {
        let routes =
            read_json(&dist_dir.join(RoutesManifest::FILE))?.ok_or_else(|| Error::Manifest {
                path: dist_dir.join(RoutesManifest::FILE),
                detail: "missing; run `next build`".into(),
                source: None,
            })?;
        let prerender = dist_dir.join("prerender-manifest.json");
        let prerender = read_json(&prerender).unwrap_or_else(|err| {
            tracing::warn!(path = %prerender.display(), error = %err, "prerendered pages are left to Next.js");
            None
        });
        Ok(Manifests {
            routes,
            pages: read_json(&dist_dir.join("server/pages-manifest.json"))?.unwrap_or_default(),
            app_paths: read_json(&dist_dir.join("app-path-routes-manifest.json"))?
                .unwrap_or_default(),
            prerender: prerender.unwrap_or_default(),
            middleware: read_json(&dist_dir.join(MiddlewareManifest::FILE))?.unwrap_or_default(),
            functions: read_json(&dist_dir.join(FunctionsConfigManifest::FILE))?
                .unwrap_or_default(),
            interception_routes: interception_routes(&dist_dir.join("server")),
            images: images_config(dist_dir),
            dist_dir: dist_dir.to_owned(),
        })
    }

    /// The manifest whose format differs from the one native answers were checked with
    /// (routes 3, prerender 4, middleware 3, as Next 15 and 16 write them), if any: Rust
    /// then answers nothing, whatever the Next.js version says. A missing optional
    /// manifest reads as version 0 and is fine.
    pub(crate) fn unknown_format(&self) -> Option<String> {
        let known = [
            (RoutesManifest::FILE, self.routes.version, 3),
            ("prerender-manifest.json", self.prerender.version, 4),
            (MiddlewareManifest::FILE, self.middleware.version, 3),
        ];
        known
            .into_iter()
            .find(|(_, version, expected)| *version != 0 && version != expected)
            .map(|(file, version, expected)| {
                format!("{file} has version {version}, not {expected}")
            })
    }

    /// The path of one of the build's files (such as [`RoutesManifest::FILE`]), to name it
    /// in an error.
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dist_dir.join(file)
    }
}

/// next.config `images`, as far as tower-next reads it (from `images-manifest.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImagesConfig {
    /// `default` for Next's own optimizer; anything else (`custom`, a CDN's) is not served
    /// at `/_next/image` by Next.
    #[serde(default)]
    pub loader: String,
    #[serde(default)]
    pub unoptimized: bool,
    /// The formats Next may convert to, by the request's `Accept` (`image/webp`,
    /// `image/avif`).
    #[serde(default)]
    pub formats: Vec<String>,
    #[serde(default)]
    pub content_security_policy: String,
    /// `attachment` or `inline`.
    #[serde(default)]
    pub content_disposition_type: String,
    /// Next 16: the images are kept by the app's cache handler, not on disk.
    #[serde(default)]
    pub custom_cache_handler: bool,
}

#[derive(Deserialize)]
struct ImagesManifest {
    images: ImagesConfig,
}

fn images_config(dist_dir: &Path) -> Option<ImagesConfig> {
    let path = dist_dir.join("images-manifest.json");
    match read_json::<ImagesManifest>(&path) {
        Ok(manifest) => manifest.map(|m| m.images),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "images are left to Next.js");
            None
        }
    }
}

/// `routes-manifest.json`, as far as tower-next reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoutesManifest {
    /// The format's version (3 in Next 15 and 16).
    #[serde(default)]
    pub version: u32,
    /// next.config `redirects()`, and Next's own (marked `internal`).
    #[serde(default)]
    pub redirects: Vec<RouteRule>,
    /// next.config `rewrites()`.
    #[serde(default)]
    pub rewrites: Rewrites,
    /// next.config `headers()`.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
    /// Routes with dynamic segments.
    #[serde(default)]
    pub dynamic_routes: Vec<PageRoute>,
    /// Routes without dynamic segments.
    #[serde(default)]
    pub static_routes: Vec<PageRoute>,
}

impl RoutesManifest {
    /// Its file name in `distDir`.
    pub(crate) const FILE: &str = "routes-manifest.json";
}

/// A redirect or rewrite: the regex of its source (with basePath).
#[derive(Deserialize)]
pub(crate) struct RouteRule {
    /// The source as a JavaScript regex.
    pub regex: String,
    /// Next's own rule (its trailing-slash redirect), not the app's.
    #[serde(default)]
    pub internal: bool,
}

/// `rewrites()` may return a plain list (all "afterFiles") or the three phases.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Rewrites {
    /// The three phases Next applies them in.
    Phases {
        /// Before files and pages are looked up.
        #[serde(default, rename = "beforeFiles")]
        before_files: Vec<RouteRule>,
        /// After files and pages, before dynamic routes.
        #[serde(default, rename = "afterFiles")]
        after_files: Vec<RouteRule>,
        /// When nothing else matched.
        #[serde(default)]
        fallback: Vec<RouteRule>,
    },
    /// A plain list.
    List(Vec<RouteRule>),
}

impl Default for Rewrites {
    fn default() -> Self {
        Rewrites::List(Vec::new())
    }
}

impl Rewrites {
    /// Every rewrite, phase after phase.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &RouteRule> {
        let (before, after, fallback): (&[RouteRule], &[RouteRule], &[RouteRule]) = match self {
            Rewrites::Phases {
                before_files,
                after_files,
                fallback,
            } => (before_files, after_files, fallback),
            Rewrites::List(list) => (&[], list, &[]),
        };
        before.iter().chain(after).chain(fallback)
    }
}

/// A next.config `headers()` rule.
#[derive(Deserialize)]
pub(crate) struct HeaderRule {
    /// The source as a JavaScript regex (with basePath).
    pub regex: String,
    /// The headers it sets, in order.
    pub headers: Vec<RuleHeader>,
    /// `has` conditions on the request, if any.
    #[serde(default)]
    pub has: Option<serde_json::Value>,
    /// `missing` conditions on the request, if any.
    #[serde(default)]
    pub missing: Option<serde_json::Value>,
}

/// One header of a [`HeaderRule`], as written in next.config (may name `:params`).
#[derive(Deserialize)]
pub(crate) struct RuleHeader {
    /// The header name.
    pub key: String,
    /// The header value.
    pub value: String,
}

/// A route and the page that serves it.
#[derive(Deserialize)]
pub(crate) struct PageRoute {
    /// The page (`/posts/[id]`).
    pub page: String,
    /// The regex of its paths (without basePath).
    pub regex: String,
}

/// `prerender-manifest.json`, as far as tower-next reads it.
#[derive(Deserialize, Default)]
pub(crate) struct PrerenderManifest {
    /// The format's version (4 in Next 15 and 16); 0 when the manifest is missing.
    #[serde(default)]
    pub version: u32,
    /// Each prerendered path (after basePath).
    #[serde(default)]
    pub routes: HashMap<String, PrerenderRoute>,
}

/// A prerendered path.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrerenderRoute {
    /// Seconds, or `false` for never.
    #[serde(default)]
    pub initial_revalidate_seconds: serde_json::Value,
    /// Seconds, when the page set an expiry.
    #[serde(default)]
    pub initial_expire_seconds: Option<u64>,
    /// The path of its data: `.rsc` (App Router) or `.json` (Pages Router); none for a
    /// route handler.
    #[serde(default)]
    pub data_route: Option<String>,
    /// Next 16, Cache Components: the RSC payload of a fully prerendered page (none for a
    /// page with a postponed shell). Next answers an RSC request that is not a prefetch
    /// from the cache only for such a route (`app-page` template, `isDynamicRSCRequest`).
    #[serde(default)]
    pub prefetch_data_route: Option<String>,
    /// Requests Next renders rather than answer from the cache, on routes with partial
    /// prerendering: Server Actions, multipart bodies, and user agents that get blocking
    /// metadata (`htmlLimitedBots`).
    #[serde(default)]
    pub experimental_bypass_for: Vec<BypassRule>,
}

/// A condition of `experimentalBypassFor`, as Next writes it (`{ type, key, value? }`).
#[derive(Deserialize, Clone)]
pub(crate) struct BypassRule {
    /// `header` (the only kind Next writes there), `cookie` or `query`.
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    /// A regular expression the whole value must match; any value when absent.
    #[serde(default)]
    pub value: Option<String>,
}

/// `server/middleware-manifest.json`: the Edge middleware, if any.
#[derive(Deserialize, Default)]
pub(crate) struct MiddlewareManifest {
    /// The format's version (3 in Next 15 and 16); 0 when the manifest is missing.
    #[serde(default)]
    pub version: u32,
    /// The middleware by name (`/`).
    #[serde(default)]
    pub middleware: HashMap<String, FunctionEntry>,
}

impl MiddlewareManifest {
    /// Its file name in `distDir`.
    pub(crate) const FILE: &str = "server/middleware-manifest.json";
}

/// Next 16: `server/functions-config-manifest.json` lists the Node.js `proxy` (middleware),
/// as `/_middleware`, with its matchers.
#[derive(Deserialize, Default)]
pub(crate) struct FunctionsConfigManifest {
    /// The functions by name.
    #[serde(default)]
    pub functions: HashMap<String, FunctionEntry>,
}

impl FunctionsConfigManifest {
    /// Its file name in `distDir`.
    pub(crate) const FILE: &str = "server/functions-config-manifest.json";
}

/// A middleware (or function) and the paths it runs for.
#[derive(Deserialize)]
pub(crate) struct FunctionEntry {
    /// Its matchers; none for a function that is not middleware.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
}

/// A middleware matcher.
#[derive(Deserialize)]
pub(crate) struct Matcher {
    /// The paths it matches, as a JavaScript regex (with basePath).
    pub regexp: String,
}

/// The JSON file at `path`, or `None` when there is none.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::Manifest {
                path: path.to_owned(),
                detail: err.to_string(),
                source: Some(Box::new(err)),
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|err| Error::Manifest {
            path: path.to_owned(),
            detail: err.to_string(),
            source: Some(Box::new(err)),
        })
}

/// Whether the build has interception routes: the manifest is a script that assigns a
/// JSON string, `"[]"` when there are none.
fn interception_routes(server: &Path) -> bool {
    match std::fs::read_to_string(server.join("interception-route-rewrite-manifest.js")) {
        Ok(text) => !text.contains("\"[]\""),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_are_read_in_either_shape() {
        let list: Rewrites = serde_json::from_str(r#"[{"regex": "^/a$"}]"#).unwrap();
        assert_eq!(
            list.iter().map(|r| r.regex.as_str()).collect::<Vec<_>>(),
            ["^/a$"]
        );
        let phases: Rewrites = serde_json::from_str(
            r#"{"fallback": [{"regex": "^/c$"}], "beforeFiles": [{"regex": "^/a$"}],
                "afterFiles": [{"regex": "^/b$", "internal": true}]}"#,
        )
        .unwrap();
        assert_eq!(
            phases.iter().map(|r| r.regex.as_str()).collect::<Vec<_>>(),
            ["^/a$", "^/b$", "^/c$"]
        );
    }

    #[test]
    fn a_missing_routes_manifest_asks_for_a_build_and_a_bad_one_keeps_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let Err(Error::Manifest { path, source, .. }) = Manifests::read(dir.path()) else {
            panic!("a build without routes-manifest.json was read");
        };
        assert_eq!(path, dir.path().join(RoutesManifest::FILE));
        assert!(source.is_none());

        std::fs::write(dir.path().join(RoutesManifest::FILE), "{}").unwrap();
        std::fs::write(dir.path().join("app-path-routes-manifest.json"), "{").unwrap();
        let err = Manifests::read(dir.path())
            .err()
            .expect("a bad manifest was read");
        let Error::Manifest { path, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, &dir.path().join("app-path-routes-manifest.json"));
        let source = std::error::Error::source(&err).expect("the JSON error is kept");
        assert!(source.is::<serde_json::Error>(), "{source:?}");
    }

    #[test]
    fn optional_manifests_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RoutesManifest::FILE), "{}").unwrap();
        std::fs::write(dir.path().join("prerender-manifest.json"), "not json").unwrap();
        let build = Manifests::read(dir.path()).unwrap();
        assert!(build.pages.is_empty() && build.app_paths.is_empty());
        assert!(build.prerender.routes.is_empty());
        assert!(build.middleware.middleware.is_empty() && build.functions.functions.is_empty());
        assert!(!build.interception_routes);
    }

    #[test]
    fn a_manifest_format_not_checked_with_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RoutesManifest::FILE), r#"{"version":3}"#).unwrap();
        std::fs::write(
            dir.path().join("prerender-manifest.json"),
            r#"{"version":4}"#,
        )
        .unwrap();
        assert_eq!(Manifests::read(dir.path()).unwrap().unknown_format(), None);
        std::fs::write(
            dir.path().join("prerender-manifest.json"),
            r#"{"version":5}"#,
        )
        .unwrap();
        let format = Manifests::read(dir.path()).unwrap().unknown_format();
        assert_eq!(
            format.as_deref(),
            Some("prerender-manifest.json has version 5, not 4")
        );
    }
}
