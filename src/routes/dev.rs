//! Route ownership in development mode, where the build manifests are incomplete: the
//! routes come from the `app/` and `pages/` folders, following Next's file conventions.

use std::path::Path;

use super::{DynamicRoute, RouteTable};
use crate::build::JsRegex;

/// Adds the filename routes found under the project's `app/` and `pages/` folders (or
/// `src/app/`, `src/pages/`).
pub(super) fn scan(table: &mut RouteTable, dir: &Path, page_extensions: &[String]) {
    for base in [dir.to_owned(), dir.join("src")] {
        let app = base.join("app");
        if app.is_dir() {
            walk(
                &app,
                Router::App,
                &mut Vec::new(),
                &mut |segments, file| {
                    let stem = file_stem(file, page_extensions)?;
                    (stem == "page" || stem == "route").then(|| app_route(segments))?
                },
                table,
            );
        }
        let pages = base.join("pages");
        if pages.is_dir() {
            walk(
                &pages,
                Router::Pages,
                &mut Vec::new(),
                &mut |segments, file| {
                    let stem = file_stem(file, page_extensions)?;
                    if segments.is_empty() && ["_app", "_document", "_error"].contains(&stem) {
                        return None;
                    }
                    let mut all: Vec<&str> = segments.iter().map(String::as_str).collect();
                    if stem != "index" {
                        all.push(stem);
                    }
                    Some(route_of(all.iter().copied()))
                },
                table,
            );
        }
        if app.is_dir() || pages.is_dir() {
            break;
        }
    }
}

/// A route found on disk: an exact path, or a regex for dynamic segments.
enum Found {
    Exact(String),
    /// A dynamic route: its regex, and its page (`/posts/[id]`).
    Pattern {
        regex: String,
        page: String,
    },
}

/// Which router a folder's routes belong to: with i18n, Next treats them differently.
#[derive(Clone, Copy)]
enum Router {
    App,
    Pages,
}

fn walk(
    folder: &Path,
    router: Router,
    segments: &mut Vec<String>,
    route_of_file: &mut dyn FnMut(&[String], &str) -> Option<Found>,
    table: &mut RouteTable,
) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if name == "node_modules" || name.starts_with('.') {
                continue;
            }
            segments.push(name);
            walk(&entry.path(), router, segments, route_of_file, table);
            segments.pop();
        } else if let Some(found) = route_of_file(segments, &name) {
            let (exact, patterns) = match router {
                Router::App => (&mut table.app_pages, &mut table.app_patterns),
                Router::Pages => (&mut table.pages, &mut table.page_patterns),
            };
            match found {
                Found::Exact(path) => {
                    exact.insert(path);
                }
                Found::Pattern { regex, page } => {
                    if let Ok(regex) = JsRegex::new(&regex) {
                        patterns.push(DynamicRoute { regex, page });
                    }
                }
            }
        }
    }
}

fn file_stem<'a>(file: &'a str, page_extensions: &[String]) -> Option<&'a str> {
    let (stem, extension) = file.rsplit_once('.')?;
    page_extensions
        .iter()
        .any(|e| e == extension)
        .then_some(stem)
}

/// The URL of an `app/` folder path, or `None` for folders that make no route.
fn app_route(segments: &[String]) -> Option<Found> {
    let mut url = Vec::new();
    for segment in segments {
        if segment.starts_with('_') || segment.starts_with("(.") {
            return None; // private folder, or an intercepting route (the target has its own)
        }
        if (segment.starts_with('(') && segment.ends_with(')')) || segment.starts_with('@') {
            continue; // route group or parallel slot: not part of the URL
        }
        url.push(segment.as_str());
    }
    Some(route_of(url.into_iter()))
}

fn route_of<'a>(segments: impl Iterator<Item = &'a str>) -> Found {
    let mut exact = String::new();
    let mut page = String::new();
    let mut regex = String::from("^");
    let mut dynamic = false;
    for segment in segments {
        page.push('/');
        page.push_str(segment);
        if segment.starts_with("[[...") && segment.ends_with("]]") {
            regex.push_str("(?:/(.+?))?");
            dynamic = true;
        } else if segment.starts_with("[...") && segment.ends_with(']') {
            regex.push_str("/(.+?)");
            dynamic = true;
        } else if segment.starts_with('[') && segment.ends_with(']') {
            regex.push_str("/([^/]+?)");
            dynamic = true;
        } else {
            exact.push('/');
            exact.push_str(segment);
            regex.push('/');
            regex.push_str(&escape(segment));
        }
    }
    if dynamic {
        regex.push_str("(?:/)?$");
        Found::Pattern { regex, page }
    } else if exact.is_empty() {
        Found::Exact("/".into())
    } else {
        Found::Exact(exact)
    }
}

fn escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(path: &str) -> Option<String> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        app_route(&segments).map(|found| match found {
            Found::Exact(p) => p,
            Found::Pattern { regex, .. } => regex,
        })
    }

    #[test]
    fn app_folder_conventions() {
        assert_eq!(app("").as_deref(), Some("/"));
        assert_eq!(app("(marketing)/pricing").as_deref(), Some("/pricing"));
        assert_eq!(app("@modal/photos").as_deref(), Some("/photos"));
        assert_eq!(app("_lib/page"), None);
        assert_eq!(app("(.)photo/[id]"), None);
        assert_eq!(
            app("blog/[slug]").as_deref(),
            Some("^/blog/([^/]+?)(?:/)?$")
        );
        assert_eq!(
            app("shop/[[...opt]]").as_deref(),
            Some("^/shop(?:/(.+?))?(?:/)?$")
        );
        assert_eq!(app("[[...all]]").as_deref(), Some("^(?:/(.+?))?(?:/)?$"));
    }
}
