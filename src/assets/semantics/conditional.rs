//! Conditional requests and ranges, as `next start` answers them: the validators (Next's
//! page ETag, the `send` package's file ETag and `Last-Modified`), the `fresh` package's
//! check behind a 304, `send`'s single ranges, and the preconditions left to Node.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, header};

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

/// Whether a request asks for an answer only if the client's copy is stale
/// (`If-None-Match`, `If-Modified-Since`).
pub(crate) fn is_conditional(request: &HeaderMap) -> bool {
    request.contains_key(header::IF_NONE_MATCH) || request.contains_key(header::IF_MODIFIED_SINCE)
}

/// Whether `send` answers 412 or otherwise applies a precondition this module does not
/// model (`If-Match`, `If-Unmodified-Since`): then Node answers.
pub(crate) fn has_preconditions(request: &HeaderMap) -> bool {
    request.contains_key(header::IF_MATCH) || request.contains_key(header::IF_UNMODIFIED_SINCE)
}

#[cfg(test)]
mod tests {
    use super::super::headers;
    use super::*;

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
    fn page_etag_is_nexts_fnv1a52() {
        // Values computed with next/dist/server/lib/etag.js (Next 15.5).
        assert_eq!(page_etag(""), "\"78p3gz236i0\"");
        assert_eq!(page_etag("hello"), "\"2caikvdqo85\"");
        assert_eq!(page_etag("héllo wörld ✓"), "\"bmtumnvjkrd\"");
        assert_eq!(page_etag("😀"), "\"c26v2dkjuu2\"");
        assert_eq!(page_etag(&"x".repeat(5000)), "\"gkbk50ouxd3uw\"");
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
}
