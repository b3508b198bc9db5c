//! The regular expressions Next.js writes into its manifests, run with JavaScript's
//! semantics (the `regress` engine) so they match what they match in Next.

/// A regular expression with JavaScript semantics, as Next writes them into manifests
/// (named groups, lookaheads).
pub(crate) struct JsRegex(regress::Regex);

impl JsRegex {
    /// A regex without flags; the error says which source was not understood.
    pub(crate) fn new(source: &str) -> Result<JsRegex, String> {
        JsRegex::with_flags(source, "")
    }

    /// A regex with JavaScript flags (`i` for case-insensitive).
    pub(crate) fn with_flags(source: &str, flags: &str) -> Result<JsRegex, String> {
        regress::Regex::with_flags(source, flags)
            .map(JsRegex)
            .map_err(|err| format!("regex {source:?}: {err}"))
    }

    /// Whether the regex matches somewhere in `text` (as JavaScript's `test`).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.0.find(text).is_some()
    }
}
