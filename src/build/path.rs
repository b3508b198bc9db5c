//! Which build a request's path belongs to, by Next's URL scheme: after a reload, requests
//! of pages loaded before it go to the previous build's workers.

/// A request path that names what one build has: its `/_next/data` routes (by build id) or
/// a file of its `/_next/static` folder. After a reload, such requests of pages loaded
/// before it go to the previous build's workers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BuildPath<'a> {
    /// `{basePath}/_next/data/<build_id>/…`.
    Data { build_id: &'a str },
    /// `{basePath}/_next/static/<file>`, without `.` or `..` segments.
    Static { file: &'a str },
}

impl<'a> BuildPath<'a> {
    /// What `path` names, under `base_path`.
    pub(crate) fn of(path: &'a str, base_path: &str) -> Option<BuildPath<'a>> {
        let base_path = base_path.trim_end_matches('/');
        let rest = match path.strip_prefix(base_path)? {
            rest if base_path.is_empty() || rest.starts_with('/') => rest,
            _ => return None,
        };
        if let Some(data) = rest.strip_prefix("/_next/data/") {
            let build_id = data.split('/').next()?;
            return Some(BuildPath::Data { build_id });
        }
        let file = rest.strip_prefix("/_next/static/")?;
        if file.is_empty() || file.split('/').any(|s| s == ".." || s == ".") {
            return None;
        }
        Some(BuildPath::Static { file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_paths_name_data_routes_and_static_files() {
        assert_eq!(
            BuildPath::of("/_next/data/B1/ssg.json", ""),
            Some(BuildPath::Data { build_id: "B1" })
        );
        assert_eq!(
            BuildPath::of("/docs/_next/static/chunks/a.js", "/docs"),
            Some(BuildPath::Static {
                file: "chunks/a.js"
            })
        );
        assert_eq!(BuildPath::of("/_next/static/../x", ""), None);
        assert_eq!(BuildPath::of("/_next/static/a.js", "/docs"), None);
        assert_eq!(BuildPath::of("/about", ""), None);
    }
}
