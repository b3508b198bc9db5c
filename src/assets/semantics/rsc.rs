//! Next's check of an RSC request: the `_rsc` query value must be the hash of the
//! request's router headers.

use http::HeaderMap;

/// Whether an RSC request's `_rsc` query value is the one Next expects from its router
/// headers (`computeCacheBustingSearchParam` in Next's
/// `shared/lib/router/utils/cache-busting-search-param.js`, checked when
/// `experimental.validateRSCRequestHeaders` is on): the first 12 bytes of the SHA-256 of
/// `prefetch,segment-prefetch,state-tree,next-url` (`0` for a missing one), base64url, or
/// the empty string when the request has none of them. Anything else (a missing `_rsc`,
/// Next's legacy short hash, a repeated header) is `false`, and Node answers.
pub(crate) fn rsc_hash_matches(request: &HeaderMap, query: Option<&str>) -> bool {
    use base64::Engine;
    use sha2::Digest;

    let Some(actual) = query.and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "_rsc")
            .map(|(_, value)| value)
    }) else {
        return false;
    };
    let mut parts = Vec::with_capacity(4);
    for name in [
        "next-router-prefetch",
        "next-router-segment-prefetch",
        "next-router-state-tree",
        "next-url",
    ] {
        let mut values = request.get_all(name).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(value), None) => match value.to_str() {
                Ok(value) => Some(value),
                Err(_) => return false,
            },
            (Some(_), Some(_)) => return false,
        };
        parts.push(value);
    }
    // Next takes only these prefetch values; others count as absent.
    if parts[0].is_some_and(|v| !matches!(v, "1" | "2" | "3")) {
        parts[0] = None;
    }
    let expected = if parts[0].is_none_or(|v| v == "0") && parts[1..].iter().all(Option::is_none) {
        String::new()
    } else {
        let input = parts
            .iter()
            .map(|part| part.unwrap_or("0"))
            .collect::<Vec<_>>()
            .join(",");
        let digest = sha2::Sha256::digest(input.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
    };
    actual == expected
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn rsc_hash_as_next_computes_it() {
        // Expected values from Next 16.4.6's own computeCacheBustingSearchParam.
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(rsc_hash_matches(&headers(&[("rsc", "1")]), Some("_rsc=")));
        assert!(!rsc_hash_matches(&headers(&[("rsc", "1")]), None));
        assert!(!rsc_hash_matches(&headers(&[("rsc", "1")]), Some("x=1")));
        let tree = [("next-router-state-tree", "%5B%22%22%5D")];
        assert!(rsc_hash_matches(
            &headers(&tree),
            Some("_rsc=WCzv4JOXuLb8w6j7")
        ));
        assert!(rsc_hash_matches(
            &headers(&tree),
            Some("a=b&_rsc=WCzv4JOXuLb8w6j7")
        ));
        assert!(!rsc_hash_matches(&headers(&tree), Some("_rsc=")));
        let prefetch = [
            ("next-router-prefetch", "1"),
            ("next-router-state-tree", "%5B%22%22%5D"),
            ("next-url", "/about"),
        ];
        assert!(rsc_hash_matches(
            &headers(&prefetch),
            Some("_rsc=_TKZyKCkEar1tPY8")
        ));
        assert!(rsc_hash_matches(
            &headers(&[("next-router-prefetch", "0")]),
            Some("_rsc=")
        ));
        let twice = [("next-url", "/a"), ("next-url", "/b")];
        assert!(!rsc_hash_matches(&headers(&twice), Some("_rsc=")));
    }
}
