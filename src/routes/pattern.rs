//! Path patterns for explicit routes: `/a`, `/posts/{id}`, `/files/{*rest}`.

use std::fmt;

/// One segment of a [`PathPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{*name}`: the rest of the path, one segment or more.
    Rest(String),
}

/// A path pattern in axum's syntax: literal segments, `{name}` for one segment and
/// `{*name}` for the rest of the path.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    source: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses a pattern. Panics with a clear message on a malformed one, like axum's
    /// `Router::route`: patterns are written by the programmer, not taken from requests.
    pub(crate) fn parse(source: &str) -> PathPattern {
        assert!(
            source.starts_with('/'),
            "route pattern {source:?} must start with '/'"
        );
        let parts: Vec<&str> = source
            .split('/')
            .skip(1)
            .filter(|s| !s.is_empty())
            .collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if name.starts_with('*') => {
                    assert!(
                        index + 1 == parts.len(),
                        "route pattern {source:?}: {{*..}} must be the last segment"
                    );
                    Segment::Rest(name[1..].to_owned())
                }
                Some(name) => {
                    assert!(
                        !name.is_empty(),
                        "route pattern {source:?}: empty parameter name"
                    );
                    Segment::Param(name.to_owned())
                }
                None => Segment::Literal((*part).to_owned()),
            };
            segments.push(segment);
        }
        PathPattern {
            source: source.to_owned(),
            segments,
        }
    }

    /// Matches a decoded request path; returns the parameters on a match.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut parts = path.split('/').skip(1).filter(|s| !s.is_empty());
        let mut params = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    if parts.next()? != literal {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), parts.next()?.to_owned())),
                Segment::Rest(name) => {
                    let rest: Vec<&str> = parts.by_ref().collect();
                    if rest.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), rest.join("/")));
                }
            }
        }
        parts.next().is_none().then_some(params)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_param_and_rest() {
        let a = PathPattern::parse("/a");
        assert_eq!(a.matches("/a"), Some(vec![]));
        assert_eq!(a.matches("/a/"), Some(vec![]));
        assert_eq!(a.matches("/ab"), None);
        assert_eq!(a.matches("/a/b"), None);

        let post = PathPattern::parse("/posts/{id}");
        assert_eq!(
            post.matches("/posts/7"),
            Some(vec![("id".into(), "7".into())])
        );
        assert_eq!(post.matches("/posts"), None);
        assert_eq!(post.matches("/posts/7/x"), None);

        let files = PathPattern::parse("/files/{*rest}");
        assert_eq!(
            files.matches("/files/a/b"),
            Some(vec![("rest".into(), "a/b".into())])
        );
        assert_eq!(files.matches("/files"), None);
    }

    #[test]
    #[should_panic(expected = "must start with '/'")]
    fn relative_pattern_is_refused() {
        PathPattern::parse("a");
    }
}
