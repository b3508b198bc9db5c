//! The HTTP rules of the Node.js packages `next start` answers with, reproduced so that a
//! native answer is the answer Next.js would give: Next's page ETag (`fnv1a52`), the
//! `fresh` check behind its 304s, the `send` package's file validators and single ranges,
//! the `compression` package's `Vary` and encoding choice, and Next's `_rsc` check.
//!
//! Each function says which package it follows. Whatever falls outside the cases handled
//! here makes the caller leave the request to Node.js.
//!
//! - [`conditional`]: validators (Next's page ETag, `send`'s file ETag and
//!   `Last-Modified`), the `fresh` check behind 304s, single ranges and preconditions;
//! - [`content`]: `send`'s content types, and the `compression` package's choice of
//!   encoding and what it compresses;
//! - [`rsc`]: Next's `_rsc` check of RSC requests.

mod conditional;
mod content;
mod rsc;

use http::HeaderValue;

pub(crate) use conditional::{
    RangeAnswer, file_etag, fresh, has_preconditions, http_date, is_conditional, millis, page_etag,
    range,
};
pub(crate) use content::{COMPRESSION_THRESHOLD, Encoding, compressible, content_type, negotiate};
pub(crate) use rsc::rsc_hash_matches;

/// A header value from a string known to be valid (ASCII, no control characters).
pub(crate) fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
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

/// Request headers from (name, value) pairs.
#[cfg(test)]
fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}
