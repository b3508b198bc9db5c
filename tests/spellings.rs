//! Path spellings (issue 10, item 3): the same request line sent, byte for byte, to
//! `next start` and to tower-next (the `axum_layer` shape: the layer over a Router whose
//! fallback is `next.service()`), on the same build. Statuses must match, and so must
//! `Location`, `Content-Type` and `ETag` (the ETag stands for the bytes where there is
//! one), except where tower-next is stricter on purpose ([`STRICTER`]).
//!
//! The requests are written on a raw TCP socket: an HTTP client library would normalise
//! backslashes, dot segments and raw UTF-8 before sending them.

mod support;

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_next::NextOptions;

/// Spellings tower-next refuses with `400` where `next start` answers them, each because
/// it could reach a file outside the folders Next serves (a `..` segment, encoded or not).
/// `next start` answers them 404, a redirect or with a page of the normalised path.
const STRICTER: [&str; 3] = [
    "/_next/static/../../package.json",
    "/_next/static/%2e%2e/%2e%2e/package.json",
    "/blog/%2E%2E",
];

/// The request targets: every spelling class of the issue, on the fixture's routes and
/// files. `chunk` is a `/_next/static` file under a dynamic segment folder (`[slug]`)
/// when the bundler writes one.
fn corpus(chunk: Option<&str>) -> Vec<String> {
    let mut targets: Vec<String> = [
        // Public files: Next matches names in its encoded form.
        "/files/c++.txt",
        "/files/c%2B%2B.txt",
        "/files/c%2b%2b.txt",
        "/files/%63++.txt",
        "/hello.txt",
        "/hello%2Etxt",
        "/hello%2etxt",
        "/%68ello.txt",
        "/images%2Fdot.svg",
        "/images%2fdot.svg",
        // Over-encoded unreserved characters on pages.
        "/%61bout",
        "/ab%6Fut",
        "/posts/%66irst",
        "/blog/%68ello",
        // Encoded separators inside a dynamic segment: the page's parameter.
        "/blog/AC%2FDC",
        "/blog/back%5Cslash",
        "/blog/..%2f..%2fpackage.json",
        "/docs/a%2Fb/c",
        // Backslashes: Next redirects them to the `/` spelling.
        "/about\\..\\x",
        "/about\\",
        "\\about",
        "/blog\\hello",
        // Dot segments, double and trailing slashes.
        "/blog/./hello",
        "/blog/hello/.",
        "//about",
        "/blog//hello",
        "/about/",
        "/posts/first/",
        "/hello.txt/",
        // Percent-encoding case in non-ASCII and overlong UTF-8.
        "/blog/%E6%97%A5%E6%9C%AC",
        "/blog/%e6%97%a5%e6%9c%ac",
        "/blog/%C0%AE%C0%AE",
        "/blog/%ZZ",
        "/blog/%",
        // NUL: a page parameter to Next, never a file name.
        "/about%00",
        "/hello.txt%00",
        "/blog/a%00b",
        // Over-encoded letters of a static route and of a dynamic segment.
        "/%70ricing",
        "/pric%69ng",
        "/%6Cegacy",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    targets.extend(STRICTER.iter().map(|s| s.to_string()));
    if let Some(chunk) = chunk {
        targets.push(chunk.to_owned());
        targets.push(chunk.replace("%5B", "%5b").replace("%5D", "%5d"));
        targets.push(chunk.replace("%5D", "]"));
        targets.push(chunk.replace("%5B", "[").replace("%5D", "]"));
    }
    targets
}

/// A response as it came off the socket: status and the compared headers.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    location: Option<String>,
    content_type: Option<String>,
    etag: Option<String>,
}

/// Sends `GET <target> HTTP/1.1` exactly as given (`target` as raw bytes); `None` when the
/// server closed the connection without an answer.
async fn raw_get(addr: SocketAddr, target: &[u8]) -> Option<Answer> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: localhost:3000\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .expect("an answer within 20 s");
    if read.is_err() || bytes.is_empty() {
        return None;
    }
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut answer = Answer {
        status,
        location: None,
        content_type: None,
        etag: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_owned());
        match name.to_ascii_lowercase().as_str() {
            "location" => answer.location = value,
            "content-type" => answer.content_type = value,
            "etag" => answer.etag = value,
            _ => {}
        }
    }
    Some(answer)
}

/// A `/_next/static` file of the build inside a dynamic segment's folder, in Next's
/// encoded spelling (`%5Bslug%5D`), if the bundler made one.
fn dynamic_segment_chunk(dir: &std::path::Path) -> Option<String> {
    fn visit(folder: &std::path::Path, url: &str) -> Option<String> {
        for entry in std::fs::read_dir(folder).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let url = format!("{url}/{name}");
            if entry.path().is_dir() {
                if let Some(found) = visit(&entry.path(), &url) {
                    return Some(found);
                }
            } else if url.contains("[slug]") && name.ends_with(".js") {
                return Some(url.replace('[', "%5B").replace(']', "%5D"));
            }
        }
        None
    }
    visit(&dir.join(".next/static"), "/_next/static")
}

/// On the fixture: with middleware, Node answers every percent-encoded spelling.
#[tokio::test(flavor = "multi_thread")]
async fn path_spellings_answer_as_next_start_does() {
    compare_spellings(&support::fixture()).await;
}

/// Without middleware Rust decodes and answers many spellings itself.
#[tokio::test(flavor = "multi_thread")]
async fn path_spellings_of_an_app_without_middleware_answer_as_next_start_does() {
    compare_spellings(&support::plain_fixture()).await;
}

async fn compare_spellings(dir: &std::path::Path) {
    let reference = support::next_start_in(dir);
    support::init_tracing();
    let next = tower_next::Next::prepare(NextOptions::new(dir).workers(1))
        .await
        .expect("prepare the fixture");
    let ours = support::serve_axum_layer(&next).await;

    let mut targets: Vec<Vec<u8>> = corpus(dynamic_segment_chunk(dir).as_deref())
        .into_iter()
        .map(String::into_bytes)
        .collect();
    // Raw (unencoded) UTF-8 in the request line: Node's parser refuses it.
    targets.push("/blog/日本".as_bytes().to_vec());
    targets.push("/about?q=日本".as_bytes().to_vec());

    let mut differences = Vec::new();
    for target in &targets {
        let shown = String::from_utf8_lossy(target).into_owned();
        let theirs = raw_get(reference.addr, target).await;
        let ours = raw_get(ours, target).await;
        if STRICTER.contains(&shown.as_str()) {
            let ours = ours.expect("an answer");
            if ours.status != 400 {
                differences.push(format!("{shown}: expected our 400, got {ours:?}"));
            }
            continue;
        }
        // Node closes the connection on some requests it cannot parse, and answers a bare
        // 400 to others; ours is then a 400 with a reason in plain text.
        let same = match (&theirs, &ours) {
            (None, Some(ours)) => ours.status == 400,
            (Some(theirs), Some(ours)) if theirs.status == 400 => ours.status == 400,
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => false,
        };
        if !same {
            differences.push(format!(
                "{shown}:\n    next start {theirs:?}\n    tower-next {ours:?}"
            ));
        }
    }
    support::progress(&format!(
        "{}: {} spellings compared, {} differ",
        dir.display(),
        targets.len(),
        differences.len()
    ));
    next.shutdown().await;
    assert!(
        differences.is_empty(),
        "{} spelling(s) answered differently:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
