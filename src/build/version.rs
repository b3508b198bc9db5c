//! What tower-next knows of Next.js versions.

/// Next.js versions whose answers were checked against `next start` (the differential
/// test, run on a 15.5 and a 16.4 fixture).
const VERIFIED: &[&str] = &["15.", "16."];

/// Whether native answers were verified for Next.js `next_version`: Rust answers only
/// for these, and leaves everything to Next.js otherwise.
pub(crate) fn native_answers_verified(next_version: &str) -> bool {
    VERIFIED.iter().any(|v| next_version.starts_with(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_are_matched_whole() {
        assert!(native_answers_verified("15.5.4"));
        assert!(native_answers_verified("16.0.0-canary.1"));
        assert!(!native_answers_verified("14.2.3"));
        assert!(!native_answers_verified("150.0.0"));
    }
}
