//! A real browser through the layer: Debian's Chromium, driven by `tests/browser/check.mjs`
//! (playwright-core, never a downloaded browser), against the `axum_layer` example. It
//! checks hydration, client-side navigation (also to the explicit route `/a` → `/b`), a
//! server action, and that the console stays clean.

mod support;

use std::time::Duration;

#[test]
fn browser_check_through_axum_layer() {
    let server = support::example("axum_layer", &[]);
    let base_url = format!("http://{}", server.addr);
    // check.mjs bounds itself at 60 s.
    support::browser::run_script("check.mjs", &[&base_url], Duration::from_secs(120));
}
