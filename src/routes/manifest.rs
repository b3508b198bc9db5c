//! Route ownership from a production build's manifests (read in [`crate::build`]).

use std::collections::HashSet;

use super::{DynamicRoute, RouteTable};
use crate::{
    Error,
    build::{
        FunctionsConfigManifest, JsRegex, Manifests, MiddlewareManifest, ResolvedConfig,
        RoutesManifest,
    },
};

/// Pages that Next builds for its own use; a request for them is not a filename route.
pub(super) const INTERNAL_PAGES: [&str; 6] = [
    "/_app",
    "/_document",
    "/_error",
    "/_not-found",
    "/404",
    "/500",
];

/// Fills a route table from the build's manifests, under the app's `config`.
pub(super) fn load(
    table: &mut RouteTable,
    build: &Manifests,
    config: &ResolvedConfig,
) -> Result<(), Error> {
    load_pages(table, build)?;
    load_rules(table, build, config)
}

/// A manifest regex compiled, or the manifest `file` named in the error.
fn compile(build: &Manifests, file: &str, source: &str, flags: &str) -> Result<JsRegex, Error> {
    JsRegex::with_flags(source, flags).map_err(|detail| Error::Manifest {
        path: build.path(file),
        detail,
        source: None,
    })
}

/// The filename routes of both routers: exact pages and dynamic patterns.
fn load_pages(table: &mut RouteTable, build: &Manifests) -> Result<(), Error> {
    let routes = &build.routes;
    // App Router routes are kept apart: with i18n, Next serves them under no locale but
    // the default one (resolve-routes.js, filesystem.js).
    let app: HashSet<String> = build.app_paths.values().cloned().collect();
    let mut exact: HashSet<String> = HashSet::new();
    exact.extend(routes.static_routes.iter().map(|r| r.page.clone()));
    // With i18n the manifest lists prerendered pages per locale (`/fr/legacy`); Next
    // matches them without it, as it does here.
    exact.extend(build.pages.keys().map(|page| {
        match &table.locales {
            Some(locales) => locales
                .strip(page)
                .map_or(page.clone(), |(_, rest)| rest.to_owned()),
            None => page.clone(),
        }
    }));
    exact.extend(app.iter().cloned());
    for route in &routes.dynamic_routes {
        exact.remove(&route.page);
        let pattern = DynamicRoute {
            regex: compile(build, RoutesManifest::FILE, &route.regex, "")?,
            page: route.page.clone(),
        };
        if app.contains(&route.page) {
            table.app_patterns.push(pattern);
        } else {
            table.page_patterns.push(pattern);
        }
    }
    exact.retain(|page| !INTERNAL_PAGES.contains(&page.as_str()) && !page.contains('['));
    let (app_pages, pages) = exact.into_iter().partition(|page| app.contains(page));
    table.app_pages = app_pages;
    table.pages = pages;
    Ok(())
}

/// next.config redirects and rewrites, and the middleware (Next 16: proxy) matchers.
fn load_rules(
    table: &mut RouteTable,
    build: &Manifests,
    config: &ResolvedConfig,
) -> Result<(), Error> {
    let routes = &build.routes;
    for rule in routes.redirects.iter().chain(routes.rewrites.iter()) {
        // Next's own trailing-slash redirect matches nearly every path; it is not a route.
        if !rule.internal {
            let regex = compile(
                build,
                RoutesManifest::FILE,
                &rule.regex,
                config.rule_flags(),
            )?;
            table.rules.push(regex);
        }
    }
    let edge = build
        .middleware
        .middleware
        .values()
        .map(|entry| (MiddlewareManifest::FILE, entry));
    let node = build
        .functions
        .functions
        .iter()
        .filter(|(name, _)| *name == "/_middleware")
        .map(|(_, entry)| (FunctionsConfigManifest::FILE, entry));
    for (file, entry) in edge.chain(node) {
        for matcher in &entry.matchers {
            table
                .middleware
                .push(compile(build, file, &matcher.regexp, "")?);
        }
    }
    Ok(())
}
