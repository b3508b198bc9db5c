//! Pages Router i18n (`i18n: { locales: ['en', 'fr'], defaultLocale: 'en' }`): route
//! ownership through the layer against `next start` on the same build. A path Next serves
//! (or redirects, or runs middleware for) is Next's, with the same status and `Location`;
//! a path Next answers with its 404 reaches the inner service.

mod support;

use axum::{Router, http::StatusCode, routing::get};
use tower_next::{Next, NextLayer, NextOptions};

use support::INNER;

fn inner_router() -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/fr/healthz", get(|| async { "ok fr" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "inner 404") });
    support::mark_inner(router)
}

/// Paths Next owns under i18n, as measured with `next start` on Next 15.5.
const NEXT_PATHS: &[&str] = &[
    // Pages Router: under every locale (ignoring case) and under none.
    "/legacy",
    "/en/legacy",
    "/fr/legacy",
    "/FR/legacy",
    "/Fr/legacy",
    "/fr/ssg",
    "/fr/ssr",
    "/fr/pb",
    // App Router: static routes under the default locale and none; dynamic under none.
    "/",
    "/en",
    "/about",
    "/en/about",
    "/en/pricing",
    "/en/dynamic",
    "/blog/hello",
    "/docs/a/b",
    "/shop",
    // API routes under no locale.
    "/api/ping",
    "/api/hello",
    // public/ files: under the default locale and none.
    "/robots.txt",
    "/en/robots.txt",
    "/hello.txt",
    // Redirects: sources match with the default locale added, ignoring case.
    "/old-about",
    "/en/old-about",
    "/fr/old-about",
    "/FR/old-about",
    "/OLD-ABOUT",
    // Rewrites: `/fr/rewritten` rewrites to `/fr/about`, which Next then answers 404.
    "/rewritten",
    "/fr/rewritten",
    // Middleware (its matcher gets a locale segment).
    "/mw/rewrite",
    "/fr/mw/rewrite",
    "/FR/mw/rewrite",
    "/mw/other",
    "/en/mw/other",
    "/fr/mw/other",
];

/// Paths `next start` answers 404 (no route, or a route Next does not serve there).
const INNER_PATHS: &[&str] = &[
    "/fr",
    "/FR",
    "/de",
    "/de/legacy",
    "/fr/fr/legacy",
    "/en/fr/legacy",
    "/fr/about",
    "/FR/about",
    "/fr/pricing",
    "/fr/dynamic",
    "/fr/isr",
    "/en/blog/hello",
    "/fr/blog/hello",
    "/fr/docs/a",
    "/fr/shop",
    "/en/api/ping",
    "/fr/api/ping",
    "/fr/api",
    "/en/api/hello",
    "/fr/api/hello",
    "/fr/robots.txt",
    "/fr/hello.txt",
    "/de/old-about",
    "/de/rewritten",
    "/de/mw/other",
    "/fr/nope",
];

async fn get_from(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    path: &str,
    accept_language: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(format!("http://{addr}{path}"));
    if let Some(language) = accept_language {
        request = request.header("accept-language", language);
    }
    request.send().await.unwrap()
}

fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn locale_prefixed_paths_are_owned_as_next_start_serves_them() {
    let dir = support::i18n_fixture();
    let reference = support::next_start_in(&dir);
    support::init_tracing();
    let next = Next::prepare(NextOptions::new(&dir).workers(1))
        .await
        .expect("prepare the i18n fixture");
    let layer = support::serve(inner_router().layer(NextLayer::new(next.clone()))).await;
    let client = support::client();

    let build = next.build_id().to_owned();
    // A chunk of the build (webpack names one `webpack-*.js`; Turbopack has no such name).
    let mut chunks: Vec<String> = std::fs::read_dir(dir.join(".next/static/chunks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".js"))
        .collect();
    chunks.sort();
    let chunk = chunks.into_iter().next().expect("a script chunk");
    let data = |locale: &str, page: &str| format!("/_next/data/{build}/{locale}{page}.json");
    let mut next_paths: Vec<String> = NEXT_PATHS.iter().map(|p| p.to_string()).collect();
    next_paths.extend([
        data("fr/", "ssg"),
        data("en/", "ssg"),
        data("FR/", "ssg"),
        data("", "ssg"),
        data("de/", "ssg"),
        // Static files are served under the default locale too.
        format!("/en/_next/static/chunks/{chunk}"),
        format!("/_next/static/chunks/{chunk}"),
    ]);
    let mut inner_paths: Vec<String> = INNER_PATHS.iter().map(|p| p.to_string()).collect();
    inner_paths.push(format!("/fr/_next/static/chunks/{chunk}"));

    let mut failures = Vec::new();
    for path in &next_paths {
        let expected = get_from(&client, reference.addr, path, None).await;
        let got = get_from(&client, layer, path, None).await;
        if got.headers().contains_key(INNER) {
            failures.push(format!(
                "{path}: reached the inner service; next start: {}",
                expected.status()
            ));
            continue;
        }
        if (got.status(), location(&got)) != (expected.status(), location(&expected)) {
            failures.push(format!(
                "{path}: {} {:?}, next start {} {:?}",
                got.status(),
                location(&got),
                expected.status(),
                location(&expected)
            ));
            continue;
        }
        if path.starts_with("/_next/data/") && got.status().is_success() {
            let (got, expected) = (got.text().await.unwrap(), expected.text().await.unwrap());
            if got != expected {
                failures.push(format!("{path}: body {got:?}, next start {expected:?}"));
            }
        }
    }
    for path in &inner_paths {
        let expected = get_from(&client, reference.addr, path, None).await;
        let got = get_from(&client, layer, path, None).await;
        if expected.status() != StatusCode::NOT_FOUND {
            failures.push(format!(
                "{path}: next start answers {} (the test expects its 404)",
                expected.status()
            ));
        }
        if !got.headers().contains_key(INNER) {
            failures.push(format!(
                "{path}: Next answered {} instead of the inner service",
                got.status()
            ));
        }
    }

    // An inner route under a locale segment stays the inner service's.
    let response = get_from(&client, layer, "/fr/healthz", None).await;
    assert!(response.headers().contains_key(INNER));
    assert_eq!(response.text().await.unwrap(), "ok fr");

    // Locale detection: `/` with a French browser is redirected to `/fr`, through the layer.
    for language in ["fr", "fr-FR,fr;q=0.9", "en", "de"] {
        let expected = get_from(&client, reference.addr, "/", Some(language)).await;
        let got = get_from(&client, layer, "/", Some(language)).await;
        assert!(!got.headers().contains_key(INNER), "/ ({language})");
        assert_eq!(
            (got.status(), location(&got)),
            (expected.status(), location(&expected)),
            "/ with Accept-Language: {language}"
        );
    }

    // The locale changes what the page renders: Next sees the path as sent.
    let fr = get_from(&client, layer, "/fr/legacy", None).await;
    let html = fr.text().await.unwrap();
    assert!(html.contains("Legacy page"), "{html}");
    assert!(
        html.contains(r#"lang="fr""#),
        "/fr/legacy is rendered in fr"
    );

    next.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
