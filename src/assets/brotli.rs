//! Opt-in brotli answers for hashed assets (`/_next/static`), which `next start` never
//! sends (its `compression` middleware knows gzip and deflate only): compressed once, at
//! the highest quality, in the background on a file's first request, and kept in memory
//! within a budget. Until a file's brotli body is ready, and for clients that do not
//! accept `br`, the answer is `next start`'s.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

/// A file's brotli body: being made, made, or not worth keeping.
enum Slot {
    Compressing,
    Ready {
        etag: String,
        body: Bytes,
    },
    /// Not smaller, or over the budget: answered as `next start` does.
    Skipped,
}

/// The brotli bodies of the hashed assets asked for so far.
pub(crate) struct BrotliAssets {
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: HashMap<PathBuf, Slot>,
    used: usize,
}

impl BrotliAssets {
    /// Keeps at most `budget` bytes of brotli bodies.
    pub(crate) fn new(budget: usize) -> Arc<BrotliAssets> {
        Arc::new(BrotliAssets {
            budget,
            state: Mutex::default(),
        })
    }

    /// The brotli body of the file at `path` whose identity bytes are `bytes` (version
    /// `etag`), if it is ready; else starts making it and says `None`.
    pub(crate) fn body(self: &Arc<Self>, path: &Path, etag: &str, bytes: &Bytes) -> Option<Bytes> {
        let mut state = self.state.lock().expect("brotli lock");
        match state.slots.get(path) {
            Some(Slot::Ready { etag: made, body }) if made == etag => return Some(body.clone()),
            Some(Slot::Compressing | Slot::Skipped) => return None,
            _ => {}
        }
        if let Some(Slot::Ready { body, .. }) = state.slots.remove(path) {
            state.used -= body.len();
        }
        state.slots.insert(path.to_owned(), Slot::Compressing);
        drop(state);
        let assets = self.clone();
        let (path, etag, bytes) = (path.to_owned(), etag.to_owned(), bytes.clone());
        tokio::task::spawn_blocking(move || {
            let body = compress(&bytes);
            let mut state = assets.state.lock().expect("brotli lock");
            let slot = match body {
                Some(body)
                    if body.len() < bytes.len() && state.used + body.len() <= assets.budget =>
                {
                    state.used += body.len();
                    Slot::Ready { etag, body }
                }
                Some(_) => Slot::Skipped,
                None => {
                    tracing::warn!(path = %path.display(), "brotli compression failed; the file is answered uncompressed by brotli");
                    Slot::Skipped
                }
            };
            state.slots.insert(path, slot);
        });
        None
    }
}

/// Brotli at quality 11, window 22 (what static servers use for precompressed assets).
fn compress(bytes: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        writer.write_all(bytes).ok()?;
        writer.flush().ok()?;
    }
    Some(Bytes::from(out))
}

/// Whether the request accepts `br` (a `q` above 0).
pub(crate) fn accepts_brotli(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            name.eq_ignore_ascii_case("br") && q > 0.0
        })
}

/// The headers of a brotli answer: the identity answer's, with the encoding, its length,
/// and `Vary: Accept-Encoding`.
pub(crate) fn headers(identity: &HeaderMap, len: usize) -> HeaderMap {
    let mut headers = identity.clone();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    super::vary_accept_encoding(&mut headers);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_with_br() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_brotli(&headers)
        };
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("br;q=0.5"));
        assert!(!accepts("br;q=0"));
        assert!(!accepts("gzip"));
        assert!(!accepts("brotli"));
    }

    #[test]
    fn compresses_and_round_trips() {
        let text = "const a = 1;\n".repeat(1000);
        let body = compress(text.as_bytes()).unwrap();
        assert!(body.len() < text.len() / 10);
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
        assert_eq!(plain, text.as_bytes());
    }
}
