//! The HTTP rules of the Node.js packages `next start` answers with, reproduced so that a
//! native answer is the answer Next.js would give: Next's page ETag (`fnv1a52`), the
//! `fresh` check behind its 304s, the `send` package's file validators and single ranges,
//! the `compression` package's `Vary` and encoding choice, and Next's `_rsc` check.
//!
//! Each function says which package it follows. Whatever falls outside the cases handled
//! here makes the caller leave the request to Node.js.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header};

/// Next's ETag of a page payload: `generateETag` in `next/dist/server/lib/etag.js`, an
/// FNV-1a 52-bit hash over the UTF-16 code units of the string, in base 36, followed by the
/// string's UTF-16 length in base 36.
pub(crate) fn page_etag(payload: &str) -> String {
    let (mut v0, mut v1, mut v2, mut v3): (u64, u64, u64, u64) = (0x2325, 0x8422, 0x9ce4, 0xcbf2);
    let mut length: u64 = 0;
    for unit in payload.encode_utf16() {
        length += 1;
        v0 ^= u64::from(unit);
        let t0 = v0 * 435;
        let mut t1 = v1 * 435;
        let mut t2 = v2 * 435;
        let mut t3 = v3 * 435;
        t2 += v0 << 8;
        t3 += v1 << 8;
        t1 += t0 >> 16;
        v0 = t0 & 0xffff;
        t2 += t1 >> 16;
        v1 = t1 & 0xffff;
        v3 = (t3 + (t2 >> 16)) & 0xffff;
        v2 = t2 & 0xffff;
    }
    let hash = (v3 & 15) * (1 << 48) + v2 * (1 << 32) + v1 * (1 << 16) + (v0 ^ (v3 >> 4));
    format!("\"{}{}\"", base36(hash), base36(length))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// The weak ETag the `send` package gives a file: `W/"<size hex>-<mtime ms hex>"`.
pub(crate) fn file_etag(size: u64, modified: SystemTime) -> String {
    format!("W/\"{size:x}-{:x}\"", stat_millis(modified))
}

/// Milliseconds since the epoch, as JavaScript's `Date#getTime`.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A file time as Node's `fs.Stats#mtime` has it: rounded to the millisecond.
fn stat_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() as u64 + 500_000) / 1_000_000)
}

/// `Last-Modified` as `send` writes it: `mtime.toUTCString()` of Node's rounded mtime.
pub(crate) fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(stat_millis(time)))
}

/// The `fresh` package (0.5) as `next start` uses it: is the client's copy, validated by
/// `etag` and `last_modified`, still good (answer 304)?
pub(crate) fn fresh(request: &HeaderMap, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let modified_since = request.get(header::IF_MODIFIED_SINCE);
    let none_match = request.get(header::IF_NONE_MATCH);
    if modified_since.is_none() && none_match.is_none() {
        return false;
    }
    if let Some(cache_control) = request.get(header::CACHE_CONTROL)
        && has_no_cache(cache_control.as_bytes())
    {
        return false;
    }
    if let Some(none_match) = none_match {
        let none_match = String::from_utf8_lossy(none_match.as_bytes());
        if none_match != "*" {
            let Some(etag) = etag else {
                return false;
            };
            let matched = token_list(&none_match).any(|candidate| {
                candidate == etag
                    || candidate.strip_prefix("W/") == Some(etag)
                    || etag.strip_prefix("W/") == Some(candidate)
            });
            if !matched {
                return false;
            }
        }
    }
    if let Some(modified_since) = modified_since {
        let since = modified_since
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let last = last_modified.and_then(|v| httpdate::parse_http_date(v).ok());
        match (last, since) {
            (Some(last), Some(since)) if last <= since => {}
            _ => return false,
        }
    }
    true
}

/// `/(?:^|,)\s*?no-cache\s*?(?:,|$)/` of the `fresh` package.
fn has_no_cache(value: &[u8]) -> bool {
    String::from_utf8_lossy(value)
        .split(',')
        .any(|part| part.trim() == "no-cache")
}

/// The `fresh` package's `parseTokenList`: comma-separated, spaces dropped.
fn token_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|token| token.trim_matches(' '))
        .filter(|token| !token.is_empty())
}

/// What `send` would do with a request's `Range` header for a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No range: the whole file, 200.
    Whole,
    /// One satisfiable range (`start..=end`): 206.
    Part { start: u64, end: u64 },
    /// Anything else (several ranges, unsatisfiable, `If-Range`, odd syntax): Next's own
    /// error pages or range rules apply, so Node answers.
    Node,
}

/// `send`'s range handling, for the simple cases: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
pub(crate) fn range(request: &HeaderMap, size: u64) -> RangeAnswer {
    let Some(value) = request.get(header::RANGE) else {
        return RangeAnswer::Whole;
    };
    if request.contains_key(header::IF_RANGE) {
        return RangeAnswer::Node;
    }
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim_start_matches(' ').strip_prefix("bytes="))
    else {
        // send ignores a Range that is not `bytes=`: the whole file.
        return if value.as_bytes().trim_ascii_start().starts_with(b"bytes=") {
            RangeAnswer::Node
        } else {
            RangeAnswer::Whole
        };
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Node;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (start, end) = match (digits(first), digits(last)) {
        (true, true) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(start), Ok(end)) => (start, end.min(size.saturating_sub(1))),
            _ => return RangeAnswer::Node,
        },
        (true, false) if last.is_empty() => match first.parse::<u64>() {
            Ok(start) => (start, size.saturating_sub(1)),
            Err(_) => return RangeAnswer::Node,
        },
        (false, true) if first.is_empty() => match last.parse::<u64>() {
            Ok(suffix) if suffix > 0 => (size.saturating_sub(suffix), size.saturating_sub(1)),
            _ => return RangeAnswer::Node,
        },
        _ => return RangeAnswer::Node,
    };
    if size == 0 || start > end {
        return RangeAnswer::Node;
    }
    RangeAnswer::Part { start, end }
}

/// Whether `send` answers 412 or otherwise applies a precondition this module does not
/// model (`If-Match`, `If-Unmodified-Since`): then Node answers.
pub(crate) fn has_preconditions(request: &HeaderMap) -> bool {
    request.contains_key(header::IF_MATCH) || request.contains_key(header::IF_UNMODIFIED_SINCE)
}

/// The encoding the `compression` package picks for a compressible response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// `compression`'s choice: `accepts.encoding(['gzip', 'deflate', 'identity'])` (the
/// `negotiator` package), then gzip over deflate when both are acceptable.
pub(crate) fn negotiate(request: &HeaderMap) -> Encoding {
    let header = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let accepted = parse_accept_encoding(&header);
    let preferred = |offers: &[(&str, Encoding)]| -> Option<Encoding> {
        let mut best: Option<(Priority, usize)> = None;
        for (index, (name, _)) in offers.iter().enumerate() {
            let priority = priority(name, &accepted, index);
            if priority.q <= 0.0 {
                continue;
            }
            let better = match &best {
                None => true,
                Some((current, _)) => compare(&priority, current) == std::cmp::Ordering::Less,
            };
            if better {
                best = Some((priority, index));
            }
        }
        best.map(|(_, index)| offers[index].1)
    };
    let all = [
        ("gzip", Encoding::Gzip),
        ("deflate", Encoding::Deflate),
        ("identity", Encoding::Identity),
    ];
    match preferred(&all) {
        Some(Encoding::Deflate) if preferred(&all[..1]).is_some() => {
            preferred(&[all[0], all[2]]).unwrap_or(Encoding::Identity)
        }
        Some(encoding) => encoding,
        None => Encoding::Identity,
    }
}

struct Accepted {
    encoding: String,
    q: f64,
    index: usize,
}

#[derive(Clone, Copy)]
struct Priority {
    /// Index in the offers.
    offer: usize,
    /// Order of the matching entry in the header.
    order: i64,
    q: f64,
    specificity: u8,
}

/// negotiator's `parseAcceptEncoding`: identity is implied at the lowest quality listed.
fn parse_accept_encoding(header: &str) -> Vec<Accepted> {
    let mut accepted = Vec::new();
    let mut has_identity = false;
    let mut min_q: f64 = 1.0;
    let parts: Vec<&str> = header.split(',').collect();
    for (index, part) in parts.iter().enumerate() {
        let part = part.trim();
        let (name, params) = match part.split_once(';') {
            Some((name, params)) => (name.trim(), Some(params)),
            None => (part, None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        let mut q = 1.0;
        if let Some(params) = params {
            for param in params.split(';') {
                let mut kv = param.trim().splitn(2, '=');
                if kv.next() == Some("q") {
                    q = kv
                        .next()
                        .and_then(|v| parse_float_prefix(v.trim()))
                        .unwrap_or(f64::NAN);
                    break;
                }
            }
        }
        has_identity |= name.eq_ignore_ascii_case("identity") || name == "*";
        // `Math.min(n, c.q || 1)`: a q of 0 or NaN counts as 1 here.
        let counted = if q == 0.0 || q.is_nan() { 1.0 } else { q };
        min_q = min_q.min(counted);
        accepted.push(Accepted {
            encoding: name.to_owned(),
            q,
            index,
        });
    }
    if !has_identity {
        accepted.push(Accepted {
            encoding: "identity".into(),
            q: min_q,
            index: parts.len(),
        });
    }
    accepted
}

/// JavaScript's `parseFloat`: the longest numeric prefix.
fn parse_float_prefix(text: &str) -> Option<f64> {
    let end = text
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))
        })
        .map(|(i, c)| i + c.len_utf8())
        .last()?;
    text[..end].parse().ok()
}

fn priority(offer: &str, accepted: &[Accepted], offer_index: usize) -> Priority {
    let mut best = Priority {
        offer: offer_index,
        order: -1,
        q: 0.0,
        specificity: 0,
    };
    for entry in accepted {
        let specificity = if entry.encoding.eq_ignore_ascii_case(offer) {
            1
        } else if entry.encoding == "*" {
            0
        } else {
            continue;
        };
        let candidate = Priority {
            offer: offer_index,
            order: entry.index as i64,
            q: entry.q,
            specificity,
        };
        // `(n.s - o.s || n.q - o.q || n.o - o.o) < 0`: replace when the candidate wins.
        let replace = match best.specificity.cmp(&candidate.specificity) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => {
                if best.q != candidate.q {
                    best.q - candidate.q < 0.0
                } else {
                    best.order < candidate.order
                }
            }
        };
        if replace {
            best = candidate;
        }
    }
    best
}

/// negotiator's `compareSpecs`: higher q first, then specificity, then header order, then
/// offer order.
fn compare(a: &Priority, b: &Priority) -> std::cmp::Ordering {
    b.q.partial_cmp(&a.q)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(b.specificity.cmp(&a.specificity))
        .then(a.order.cmp(&b.order))
        .then(a.offer.cmp(&b.offer))
}

/// The `compression` package's threshold: smaller bodies of known length stay identity.
pub(crate) const COMPRESSION_THRESHOLD: usize = 1024;

/// Whether `compression` compresses this response (and so adds `Vary: Accept-Encoding`):
/// the `compressible` package's verdict on its type, and no `no-transform`.
pub(crate) fn compressible(content_type: &str, cache_control: Option<&str>) -> bool {
    if cache_control.is_some_and(|cc| cc.split(',').any(|d| d.trim() == "no-transform")) {
        return false;
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    // mime-db's `compressible: true` entries among the types of `CONTENT_TYPES`, then the
    // package's fallback rule.
    const COMPRESSIBLE: [&str; 14] = [
        "application/javascript",
        "application/json",
        "application/xml",
        "application/manifest+json",
        "application/wasm",
        "application/vnd.ms-fontobject",
        "image/svg+xml",
        "image/x-icon",
        "image/bmp",
        "font/ttf",
        "font/otf",
        "text/x-component",
        "application/rss+xml",
        "application/atom+xml",
    ];
    const NOT_COMPRESSIBLE: [&str; 1] = ["text/event-stream"];
    if COMPRESSIBLE.contains(&essence.as_str()) {
        return true;
    }
    if NOT_COMPRESSIBLE.contains(&essence.as_str()) {
        return false;
    }
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+text")
        || essence.ends_with("+xml")
}

/// `send`'s `Content-Type` for a file extension (mime 1.6 plus the types Next adds in
/// `serve-static.js`, with `; charset=UTF-8` for text), or `None` for extensions not in
/// this table: those files are left to Node.
pub(crate) fn content_type(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e)?.to_ascii_lowercase();
    CONTENT_TYPES
        .iter()
        .find(|(ext, _)| *ext == extension)
        .map(|(_, t)| *t)
}

const CONTENT_TYPES: [(&str, &str); 43] = [
    ("js", "application/javascript; charset=UTF-8"),
    ("mjs", "application/javascript; charset=UTF-8"),
    ("css", "text/css; charset=UTF-8"),
    ("json", "application/json; charset=UTF-8"),
    ("map", "application/json; charset=UTF-8"),
    ("html", "text/html; charset=UTF-8"),
    ("htm", "text/html; charset=UTF-8"),
    ("txt", "text/plain; charset=UTF-8"),
    ("csv", "text/csv; charset=UTF-8"),
    ("md", "text/markdown; charset=UTF-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("bmp", "image/bmp"),
    ("icns", "image/x-icns"),
    ("jxl", "image/jxl"),
    ("heic", "image/heic"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("webmanifest", "application/manifest+json"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("br", "application/octet-stream"),
    ("bin", "application/octet-stream"),
    ("rsc", "application/octet-stream"),
];

/// A header value from a string known to be valid (ASCII, no control characters).
pub(crate) fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

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

/// Characters `encodeURIComponent` leaves as they are.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Next's `encodeURIPath`: `encodeURIComponent` of each `/`-separated segment.
pub(crate) fn encode_uri_path(path: &str) -> String {
    path.split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, URI_COMPONENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn page_etag_is_nexts_fnv1a52() {
        // Values computed with next/dist/server/lib/etag.js (Next 15.5).
        assert_eq!(page_etag(""), "\"78p3gz236i0\"");
        assert_eq!(page_etag("hello"), "\"2caikvdqo85\"");
        assert_eq!(page_etag("héllo wörld ✓"), "\"bmtumnvjkrd\"");
        assert_eq!(page_etag("😀"), "\"c26v2dkjuu2\"");
        assert_eq!(page_etag(&"x".repeat(5000)), "\"gkbk50ouxd3uw\"");
    }

    #[test]
    fn fresh_follows_the_fresh_package() {
        let etag = Some("\"abc\"");
        assert!(!fresh(&headers(&[]), etag, None));
        assert!(fresh(&headers(&[("if-none-match", "\"abc\"")]), etag, None));
        assert!(fresh(
            &headers(&[("if-none-match", "W/\"abc\"")]),
            etag,
            None
        ));
        assert!(fresh(
            &headers(&[("if-none-match", "\"x\", \"abc\"")]),
            etag,
            None
        ));
        assert!(fresh(&headers(&[("if-none-match", "*")]), etag, None));
        assert!(!fresh(&headers(&[("if-none-match", "\"x\"")]), etag, None));
        assert!(!fresh(
            &headers(&[("if-none-match", "\"abc\""), ("cache-control", "no-cache")]),
            etag,
            None
        ));
        // If-Modified-Since without Last-Modified is never fresh.
        assert!(!fresh(
            &headers(&[
                ("if-none-match", "\"abc\""),
                ("if-modified-since", "Sat, 21 Nov 2026 00:33:48 GMT")
            ]),
            etag,
            None
        ));
        let last = Some("Sat, 21 Nov 2026 00:33:48 GMT");
        assert!(fresh(
            &headers(&[("if-modified-since", "Sat, 21 Nov 2026 00:33:48 GMT")]),
            None,
            last
        ));
        assert!(!fresh(
            &headers(&[("if-modified-since", "Sat, 21 Nov 2026 00:33:47 GMT")]),
            None,
            last
        ));
        assert!(!fresh(
            &headers(&[("if-modified-since", "garbage")]),
            None,
            last
        ));
        let weak = Some("W/\"17-1a1fb860c9a\"");
        assert!(fresh(
            &headers(&[("if-none-match", "W/\"17-1a1fb860c9a\"")]),
            weak,
            last
        ));
        assert!(fresh(
            &headers(&[("if-none-match", "\"17-1a1fb860c9a\"")]),
            weak,
            last
        ));
    }

    #[test]
    fn ranges_follow_send_for_the_simple_cases() {
        let range = |value: &str| range(&headers(&[("range", value)]), 100);
        assert_eq!(range("bytes=0-9"), RangeAnswer::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=90-"), RangeAnswer::Part { start: 90, end: 99 });
        assert_eq!(range("bytes=-10"), RangeAnswer::Part { start: 90, end: 99 });
        assert_eq!(
            range("bytes=-1000"),
            RangeAnswer::Part { start: 0, end: 99 }
        );
        assert_eq!(
            range("bytes=95-1000"),
            RangeAnswer::Part { start: 95, end: 99 }
        );
        assert_eq!(range("bytes=100-"), RangeAnswer::Node);
        assert_eq!(range("bytes=0-1,5-6"), RangeAnswer::Node);
        assert_eq!(range("bytes=x-"), RangeAnswer::Node);
        assert_eq!(range("items=0-1"), RangeAnswer::Whole);
        assert_eq!(super::range(&headers(&[]), 100), RangeAnswer::Whole);
        assert_eq!(
            super::range(
                &headers(&[("range", "bytes=0-1"), ("if-range", "\"x\"")]),
                100
            ),
            RangeAnswer::Node
        );
    }

    #[test]
    fn encoding_negotiation_follows_compression() {
        let pick = |value: &str| negotiate(&headers(&[("accept-encoding", value)]));
        assert_eq!(negotiate(&headers(&[])), Encoding::Identity);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("gzip, deflate, br, zstd"), Encoding::Gzip);
        assert_eq!(pick("deflate"), Encoding::Deflate);
        assert_eq!(pick("deflate, gzip"), Encoding::Gzip);
        assert_eq!(pick("br"), Encoding::Identity);
        assert_eq!(pick("*"), Encoding::Gzip);
        assert_eq!(pick("gzip;q=0"), Encoding::Identity);
        assert_eq!(pick("gzip;q=0.5, identity"), Encoding::Identity);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(pick("gzip;q=0.5, deflate;q=0.9"), Encoding::Gzip);
    }

    #[test]
    fn content_types_and_compressibility() {
        assert_eq!(
            content_type("/_next/static/chunks/a.js"),
            Some("application/javascript; charset=UTF-8")
        );
        assert_eq!(
            content_type("/robots.txt"),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(content_type("/images/dot.svg"), Some("image/svg+xml"));
        assert_eq!(content_type("/x.unknown"), None);
        assert_eq!(content_type("/noextension"), None);
        assert!(compressible("text/html; charset=utf-8", None));
        assert!(compressible("image/svg+xml", None));
        assert!(!compressible("image/png", None));
        assert!(!compressible("font/woff2", None));
        assert!(!compressible("text/html", Some("public, no-transform")));
    }

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
