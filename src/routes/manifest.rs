//! Reading route ownership from a production build's manifests.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{DynamicRoute, RouteTable};
use crate::{Error, build::JsRegex};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoutesManifest {
    #[serde(default)]
    redirects: Vec<Rule>,
    #[serde(default)]
    rewrites: Rewrites,
    #[serde(default)]
    dynamic_routes: Vec<PageRoute>,
    #[serde(default)]
    static_routes: Vec<PageRoute>,
}

#[derive(Clone, Deserialize)]
struct Rule {
    regex: String,
    #[serde(default)]
    internal: bool,
}

/// `rewrites()` may return a plain list (all "afterFiles") or the three phases.
#[derive(Deserialize)]
#[serde(untagged)]
enum Rewrites {
    Phases {
        #[serde(default, rename = "beforeFiles")]
        before_files: Vec<Rule>,
        #[serde(default, rename = "afterFiles")]
        after_files: Vec<Rule>,
        #[serde(default)]
        fallback: Vec<Rule>,
    },
    List(Vec<Rule>),
}

impl Default for Rewrites {
    fn default() -> Self {
        Rewrites::List(Vec::new())
    }
}

#[derive(Deserialize)]
struct PageRoute {
    page: String,
    regex: String,
}

#[derive(Deserialize)]
struct MiddlewareManifest {
    #[serde(default)]
    middleware: std::collections::HashMap<String, MiddlewareEntry>,
}

#[derive(Deserialize)]
struct MiddlewareEntry {
    #[serde(default)]
    matchers: Vec<Matcher>,
}

/// Next 16: the Node.js `proxy` (middleware) is listed with its matchers here.
#[derive(Deserialize)]
struct FunctionsConfigManifest {
    #[serde(default)]
    functions: std::collections::HashMap<String, MiddlewareEntry>,
}

#[derive(Deserialize)]
struct Matcher {
    regexp: String,
}

/// Pages that Next builds for its own use; a request for them is not a filename route.
pub(super) const INTERNAL_PAGES: [&str; 6] = [
    "/_app",
    "/_document",
    "/_error",
    "/_not-found",
    "/404",
    "/500",
];

/// Fills a route table from the build in `dist_dir`.
pub(super) fn load(
    table: &mut RouteTable,
    dist_dir: &Path,
    case_sensitive: bool,
) -> Result<(), Error> {
    let routes: RoutesManifest = read_json(&dist_dir.join("routes-manifest.json"))?;
    let pages_manifest: std::collections::HashMap<String, String> =
        read_json_or_default(&dist_dir.join("server/pages-manifest.json"))?;
    let app_paths: std::collections::HashMap<String, String> =
        read_json_or_default(&dist_dir.join("app-path-routes-manifest.json"))?;
    let middleware: Option<MiddlewareManifest> =
        read_json_optional(&dist_dir.join("server/middleware-manifest.json"))?;
    let functions: Option<FunctionsConfigManifest> =
        read_json_optional(&dist_dir.join("server/functions-config-manifest.json"))?;

    let manifest = dist_dir.join("routes-manifest.json");
    let compile = |source: &str| {
        JsRegex::new(source).map_err(|detail| Error::Manifest {
            path: manifest.clone(),
            detail,
            source: None,
        })
    };

    // Next matches redirect and rewrite sources ignoring case, unless
    // `experimental.caseSensitiveRoutes` (path-to-regexp's `sensitive`).
    let rule_flags = if case_sensitive { "" } else { "i" };
    let compile_rule = |source: &str| {
        JsRegex::with_flags(source, rule_flags).map_err(|detail| Error::Manifest {
            path: manifest.clone(),
            detail,
            source: None,
        })
    };

    // App Router routes are kept apart: with i18n, Next serves them under no locale but
    // the default one (resolve-routes.js, filesystem.js).
    let app: HashSet<String> = app_paths.into_values().collect();
    let mut exact: HashSet<String> = HashSet::new();
    exact.extend(routes.static_routes.iter().map(|r| r.page.clone()));
    // With i18n the manifest lists prerendered pages per locale (`/fr/legacy`); Next
    // matches them without it, as it does here.
    exact.extend(pages_manifest.into_keys().map(|page| {
        match &table.locales {
            Some(locales) => locales
                .strip(&page)
                .map_or(page.clone(), |(_, rest)| rest.to_owned()),
            None => page,
        }
    }));
    exact.extend(app.iter().cloned());
    for route in &routes.dynamic_routes {
        exact.remove(&route.page);
        let pattern = DynamicRoute {
            regex: compile(&route.regex)?,
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

    let rewrites = match routes.rewrites {
        Rewrites::Phases {
            before_files,
            after_files,
            fallback,
        } => [before_files, after_files, fallback].concat(),
        Rewrites::List(list) => list,
    };
    for rule in routes.redirects.iter().chain(&rewrites) {
        // Next's own trailing-slash redirect matches nearly every path; it is not a route.
        if !rule.internal {
            table.rules.push(compile_rule(&rule.regex)?);
        }
    }
    let edge = middleware
        .into_iter()
        .flat_map(|m| m.middleware.into_values());
    let node = functions
        .into_iter()
        .flat_map(|f| f.functions.into_iter())
        .filter(|(name, _)| name == "/_middleware")
        .map(|(_, entry)| entry);
    for entry in edge.chain(node) {
        for matcher in &entry.matchers {
            table.middleware.push(compile(&matcher.regexp)?);
        }
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    read_json_optional(path)?.ok_or_else(|| Error::Manifest {
        path: path.to_owned(),
        detail: "missing; run `next build`".into(),
        source: None,
    })
}

fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    Ok(read_json_optional(path)?.unwrap_or_default())
}

fn read_json_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
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
            path: PathBuf::from(path),
            detail: err.to_string(),
            source: Some(Box::new(err)),
        })
}
