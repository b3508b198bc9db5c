//! The format Next converts an image to, from the request's `Accept`: Next's
//! `getSupportedMimeType` (`@hapi/accept`'s `mediaType` over next.config `images.formats`,
//! kept only when the header names it literally), for the headers whose answer is certain.

/// The format Next would pick for `accept` among `formats`: `Some("")` to keep the
/// source's format, `Some(format)`, or `None` when the header is one whose outcome is not
/// modelled here (parameters other than `q`, quotes, upper case, a `q` of 0, a wildcard
/// preferred over the formats): Node answers those.
pub(super) fn supported_format<'a>(formats: &'a [String], accept: Option<&str>) -> Option<&'a str> {
    let Some(accept) = accept else {
        return Some("");
    };
    let mut best: Option<(&str, f32)> = None;
    let mut best_wildcard = 0.0f32;
    for range in accept.split(',') {
        let range = range.trim_matches([' ', '\t']);
        if range.is_empty() {
            continue;
        }
        let (media, q) = media_range(range)?;
        if q == 0.0 {
            return None;
        }
        if media.ends_with("/*") {
            best_wildcard = best_wildcard.max(q);
            continue;
        }
        // `includes` in Next is a substring test: a longer name that contains a format
        // would count as naming it.
        if formats
            .iter()
            .any(|f| media != f && media.contains(f.as_str()))
        {
            return None;
        }
        let Some(format) = formats.iter().find(|f| *f == media) else {
            continue;
        };
        // At equal quality hapi prefers the subtype that sorts first (avif before webp).
        let better = match best {
            None => true,
            Some((known, known_q)) => q > known_q || (q == known_q && format.as_str() < known),
        };
        if better {
            best = Some((format, q));
        }
    }
    match best {
        // A wildcard ranked above the formats would make hapi pick by it.
        Some((_, q)) if best_wildcard > q => None,
        Some((format, _)) => Some(format),
        None => Some(""),
    }
}

/// A media range's type and quality; `None` for anything beyond `type/subtype[;q=n]` in
/// lower case.
fn media_range(range: &str) -> Option<(&str, f32)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim_matches([' ', '\t']);
    let (kind, subtype) = media.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.*".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return None;
    }
    let mut q = 1.0;
    for param in parts {
        let value = param.trim_matches([' ', '\t']).strip_prefix("q=")?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        q = value
            .parse::<f32>()
            .ok()
            .filter(|q| (0.0..=1.0).contains(q))?;
    }
    Some((media, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Next's answers for these headers (checked with its compiled `@hapi/accept`).
    #[test]
    fn the_format_is_nexts() {
        let webp = vec!["image/webp".to_owned()];
        let both = vec!["image/avif".to_owned(), "image/webp".to_owned()];
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        let cases: &[(&[String], Option<&str>, Option<&str>)] = &[
            (&webp, None, Some("")),
            (&webp, Some("*/*"), Some("")),
            (&webp, Some("image/*"), Some("")),
            (&webp, Some("image/avif"), Some("")),
            (&webp, Some("image/webp"), Some("image/webp")),
            (&webp, Some(chrome), Some("image/webp")),
            (&both, Some(chrome), Some("image/avif")),
            (&both, Some("image/webp,image/avif"), Some("image/avif")),
            (
                &both,
                Some("image/avif;q=0.5,image/webp"),
                Some("image/webp"),
            ),
            // Not modelled: Node answers.
            (&webp, Some("IMAGE/WEBP"), None),
            (&webp, Some("image/webp;v=1"), None),
            (&webp, Some("image/webp;foo"), None),
            (&webp, Some("image/webp;q=0"), None),
            (&webp, Some("image/*,image/webp;q=0.5"), None),
        ];
        for (formats, accept, expected) in cases {
            assert_eq!(
                supported_format(formats, *accept),
                *expected,
                "Accept: {accept:?}"
            );
        }
    }
}
