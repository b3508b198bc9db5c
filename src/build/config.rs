//! What the worker reports about the app once Next.js is prepared: its version, build id
//! and the parts of the resolved next.config the Rust side acts on. Next.js resolves the
//! config (defaults, phases, plugins), so Rust takes it from the worker rather than
//! reading next.config itself.

use std::path::PathBuf;

use serde::Deserialize;

/// What the bridge reports once Next.js is prepared.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppInfo {
    /// The version of the `next` package the worker runs.
    pub next_version: String,
    /// The build's id (`.next/BUILD_ID`; `development` in dev).
    pub build_id: String,
    /// The resolved next.config.
    pub config: ResolvedConfig,
    /// Dev only: the middleware (proxy) matchers, read from its source.
    #[serde(default)]
    pub middleware_matchers: Vec<String>,
    /// Whether the worker reports changes to Next's response cache (cache events).
    #[serde(default)]
    pub cache_events: bool,
}

impl AppInfo {
    /// The space the build's cache entries and tags live in: the build id, with the
    /// `deploymentId` when set. Next 16 gives every build the same id when `deploymentId`
    /// is set without `generateBuildId`, so the id alone would mix two releases' entries.
    /// The bridge names it the same way (`installHostCache`).
    pub(crate) fn cache_namespace(&self) -> String {
        match &self.config.deployment_id {
            Some(deployment) => format!("{}@{deployment}", self.build_id),
            None => self.build_id.clone(),
        }
    }
}

/// The parts of the resolved next.config that the Rust side acts on.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResolvedConfig {
    /// `basePath`, `""` when none.
    pub base_path: String,
    /// `useFileSystemPublicRoutes`: whether pages are served at their file-name routes.
    pub use_file_system_public_routes: bool,
    /// The build folder (`distDir`, absolute).
    pub dist_dir: PathBuf,
    /// Where the workers' Next keeps its cache (`<distDir>/cache`, absolute): the build
    /// folder's, or with standalone output the standalone folder's copy of it. `None`:
    /// the build folder's.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// `pageExtensions`, for the dev folder scan.
    pub page_extensions: Vec<String>,
    /// Pages Router i18n (`i18n` in next.config), if configured.
    #[serde(default)]
    pub i18n: Option<I18nConfig>,
    /// `experimental.caseSensitiveRoutes`: redirect, rewrite and header sources match
    /// case-sensitively (by default Next matches them ignoring case).
    #[serde(default)]
    pub case_sensitive_routes: bool,
    /// `trailingSlash`.
    #[serde(default)]
    pub trailing_slash: bool,
    /// `poweredByHeader`: whether HTML answers carry `X-Powered-By: Next.js`.
    #[serde(default = "yes")]
    pub powered_by_header: bool,
    /// `compress`: whether Next gzips its answers.
    #[serde(default = "yes")]
    pub compress: bool,
    /// `generateEtags`.
    #[serde(default = "yes")]
    pub generate_etags: bool,
    /// `expireTime` in seconds, when set.
    #[serde(default)]
    pub expire_time: Option<u64>,
    /// Partial prerendering or cache components is on (`experimental.ppr`,
    /// `cacheComponents`, `experimental.dynamicIO`).
    #[serde(default)]
    pub partial_prerendering: bool,
    /// `experimental.validateRSCRequestHeaders` (on by default from Next 16): an RSC
    /// request must carry the `_rsc` hash of its router headers, or Next redirects it.
    #[serde(default)]
    pub validate_rsc_request_headers: bool,
    /// `deploymentId`: Next's client sends it with RSC requests and Server Actions
    /// (`x-deployment-id`) and adds it to asset URLs (`?dpl=`).
    #[serde(default)]
    pub deployment_id: Option<String>,
}

/// next.config's `i18n`: the parts route ownership acts on.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct I18nConfig {
    /// `i18n.locales`, as configured.
    pub locales: Vec<String>,
    /// `i18n.defaultLocale`.
    pub default_locale: String,
    /// Whether Next redirects `/` by `Accept-Language` and the `NEXT_LOCALE` cookie.
    #[serde(default)]
    pub locale_detection: bool,
    /// The default locale of each of `i18n.domains`.
    #[serde(default)]
    pub domain_default_locales: Vec<String>,
}

impl ResolvedConfig {
    /// The JavaScript regex flags of redirect, rewrite and header sources: Next matches
    /// them ignoring case unless `experimental.caseSensitiveRoutes` (path-to-regexp's
    /// `sensitive`, which Next's router takes from the config, not from the build).
    pub(crate) fn rule_flags(&self) -> &'static str {
        if self.case_sensitive_routes { "" } else { "i" }
    }
}

fn yes() -> bool {
    true
}
