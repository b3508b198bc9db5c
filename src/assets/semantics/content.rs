//! What a response's content is called and how it is encoded: the `send` package's
//! content types, and the `compression` package's choice of encoding (by way of the
//! `negotiator` package) and of what it compresses.

use http::{HeaderMap, header};

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

#[cfg(test)]
mod tests {
    use super::super::headers;
    use super::*;

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
}
