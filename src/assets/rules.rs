//! next.config `headers()` rules, as the build records them in `routes-manifest.json`
//! (read in [`crate::build`]).
//!
//! Next sets a matching rule's headers on the response before anything else, and its own
//! headers then overwrite or respect them (see the responders). A rule that needs the
//! request to decide (`has`/`missing` conditions, `:param` values) makes the paths it may
//! match Node's.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::build::{HeaderRule, JsRegex};

struct Rule {
    regex: JsRegex,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The rule's outcome depends on more than the path: requests it matches go to Node.
    conditional: bool,
}

/// The `headers()` rules of a build.
#[derive(Default)]
pub(crate) struct HeaderRules {
    rules: Vec<Rule>,
}

/// The headers the rules give a path, when that is known from the path alone.
pub(crate) enum RuleHeaders {
    Known(HeaderMap),
    /// A conditional or parameterised rule matches: only Next.js can tell.
    Node,
}

impl HeaderRules {
    /// The rules of the build's `routes-manifest.json`; `flags` are the regex flags of
    /// their sources ([`crate::build::ResolvedConfig::rule_flags`]). A rule whose regex is
    /// not understood matches every path and makes it Node's, so a rule is never silently
    /// dropped.
    pub(crate) fn new(raw_rules: &[HeaderRule], flags: &str) -> HeaderRules {
        let mut rules = Vec::new();
        for raw in raw_rules {
            let regex = match JsRegex::with_flags(&raw.regex, flags) {
                Ok(regex) => regex,
                Err(err) => {
                    tracing::warn!(error = %err, "header rule not understood; its paths go to Next.js");
                    // A rule that matches everything keeps the outcome with Node.
                    rules.push(Rule {
                        regex: JsRegex::with_flags("", "").expect("empty regex"),
                        headers: Vec::new(),
                        conditional: true,
                    });
                    continue;
                }
            };
            let parameterised = raw
                .headers
                .iter()
                .any(|h| has_param(&h.key) || has_param(&h.value));
            let mut headers = Vec::new();
            let mut valid = true;
            for header in &raw.headers {
                match (
                    HeaderName::from_bytes(header.key.as_bytes()),
                    HeaderValue::from_str(&header.value),
                ) {
                    (Ok(name), Ok(value)) => headers.push((name, value)),
                    _ => valid = false,
                }
            }
            rules.push(Rule {
                regex,
                headers,
                conditional: raw.has.is_some() || raw.missing.is_some() || parameterised || !valid,
            });
        }
        HeaderRules { rules }
    }

    /// The headers the rules set for `path` (the request path, with basePath), in order:
    /// a later rule overwrites an earlier one's header of the same name, `Set-Cookie`
    /// values accumulate.
    pub(crate) fn for_path(&self, path: &str) -> RuleHeaders {
        let mut headers = HeaderMap::new();
        for rule in &self.rules {
            if !rule.regex.is_match(path) {
                continue;
            }
            if rule.conditional {
                return RuleHeaders::Node;
            }
            for (name, value) in &rule.headers {
                if name == http::header::SET_COOKIE {
                    headers.append(name.clone(), value.clone());
                } else {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        RuleHeaders::Known(headers)
    }

    /// Whether there are no rules at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Whether a header key or value may name a path parameter (`:slug`), which Next fills in
/// from the match.
fn has_param(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b':' && (pair[1].is_ascii_alphabetic() || pair[1] == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_recognised() {
        assert!(has_param(":slug"));
        assert!(has_param("x-:name"));
        assert!(!has_param("max-age=0, s-maxage=60"));
        assert!(!has_param("https://example.com/"));
    }
}
