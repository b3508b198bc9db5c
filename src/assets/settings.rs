//! What the native responders know of the app's configuration: next.config's settings
//! as they change answers, whether prerendered pages are modelled at all, and the Cache
//! Components facts of the build.

use http::{HeaderName, Request};

use crate::build::{self, AppInfo, Manifests};

/// What the responders need of the app's configuration.
pub(crate) struct Settings {
    pub(super) base_path: String,
    pub(super) build_id: String,
    pub(super) trailing_slash: bool,
    pub(super) powered_by: bool,
    pub(super) generate_etags: bool,
    pub(super) compress: bool,
    pub(super) expire_time: Option<u64>,
    /// Pages may be answered: the worker reports cache changes, and the app has no i18n,
    /// interception routes or Next 15 partial prerendering.
    pub(super) pages: bool,
    /// RSC requests must carry Next's `_rsc` hash of their router headers
    /// (`experimental.validateRSCRequestHeaders`, on from Next 16).
    pub(super) validate_rsc: bool,
    /// Percent-encoded paths may be decoded: no header rule or middleware would see the
    /// encoded form differently.
    pub(super) decode: bool,
    /// Next 16 with Cache Components (partial prerendering on every App Router page): a
    /// page with a postponed shell answers only its segment prefetches natively, and an
    /// RSC request that is not a prefetch is answered from the cache only on the paths in
    /// `static_rsc` (`prefetchDataRoute` in the prerender manifest).
    pub(super) cache_components: bool,
    pub(super) static_rsc: std::collections::HashSet<String>,
    /// Requests Next renders on such pages whatever the cache holds (the manifest's
    /// `experimentalBypassFor`): a header, and the pattern its whole value must match.
    pub(super) bypass: Vec<(HeaderName, Option<build::JsRegex>)>,
}

impl Settings {
    /// Whether Next renders `request` on a Cache Components page rather than answer it
    /// from the cache (a bot that gets blocking metadata, a Server Action).
    pub(super) fn bypassed<B>(&self, request: &Request<B>) -> bool {
        self.cache_components
            && self.bypass.iter().any(|(name, pattern)| {
                request
                    .headers()
                    .get_all(name)
                    .iter()
                    .any(|value| match pattern {
                        None => true,
                        Some(pattern) => value.to_str().is_ok_and(|v| pattern.is_match(v)),
                    })
            })
    }
}

/// The Cache Components facts of a build: whether they apply (Next 16 with partial
/// prerendering), the paths whose full RSC payload is prerendered, and the bypass rules.
#[allow(clippy::type_complexity)]
pub(super) fn cache_components(
    info: &AppInfo,
    build: &Manifests,
) -> (
    bool,
    std::collections::HashSet<String>,
    Vec<(HeaderName, Option<build::JsRegex>)>,
) {
    let on = info.config.partial_prerendering && !info.next_version.starts_with("15.");
    if !on {
        return (false, Default::default(), Vec::new());
    }
    let routes = &build.prerender.routes;
    let static_rsc = routes
        .iter()
        .filter(|(_, route)| route.prefetch_data_route.is_some())
        .map(|(path, _)| path.clone())
        .collect();
    let mut bypass = Vec::new();
    let rules = routes
        .values()
        .find(|route| !route.experimental_bypass_for.is_empty())
        .map(|route| route.experimental_bypass_for.clone())
        .unwrap_or_default();
    for rule in rules {
        let Ok(name) = HeaderName::from_bytes(rule.key.as_bytes()) else {
            continue;
        };
        if rule.kind != "header" {
            tracing::info!(kind = %rule.kind, "a bypass rule of a kind tower-next does not model: Cache Components pages are Node's");
            return (false, Default::default(), Vec::new());
        }
        // Next compares user agents ignoring case (`isHtmlLimitedBotUA`).
        let pattern = match rule.value {
            None => None,
            Some(value) => match build::JsRegex::with_flags(&format!("^(?:{value})$"), "i") {
                Ok(pattern) => Some(pattern),
                Err(err) => {
                    tracing::info!(%err, "a bypass rule tower-next cannot read: Cache Components pages are Node's");
                    return (false, Default::default(), Vec::new());
                }
            },
        };
        bypass.push((name, pattern));
    }
    (true, static_rsc, bypass)
}

/// Whether prerendered pages are answered natively for this app: the worker reports
/// cache changes, and the app has no i18n, interception routes, or Next 15 partial
/// prerendering.
/// Logs why not, when not.
pub(super) fn pages_modelled(info: &AppInfo, interception: bool) -> bool {
    let config = &info.config;
    // Next 15's partial prerendering (`experimental.ppr`) is not modelled; Next 16's Cache
    // Components are (see `cache_components`).
    let ppr_15 = config.partial_prerendering && info.next_version.starts_with("15.");
    let pages = info.cache_events && config.i18n.is_none() && !ppr_15 && !interception;
    if !pages {
        tracing::info!(
            next = %info.next_version,
            cache_events = info.cache_events,
            i18n = config.i18n.is_some(),
            partial_prerendering = config.partial_prerendering,
            interception,
            "prerendered pages are answered by Next.js (not modelled natively for this app)"
        );
    }
    pages
}
