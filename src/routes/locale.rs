//! Pages Router i18n (`i18n.locales` in next.config), as Next's router applies it to a
//! path: a first segment that is a configured locale is not part of the route.
//!
//! What Next 15.5 does (checked against `next start`, `tests/i18n.rs`; 16 not yet), with
//! `locales: ['en', 'fr'], defaultLocale: 'en'`:
//! - the locale segment is compared ignoring case (`/FR/legacy` is `/legacy` in `fr`);
//! - Pages Router pages are served under every locale and under none;
//! - App Router routes are not localised: a static one is served under the default locale
//!   (`/en/about`) and under none, a dynamic one under none only (`/en/blog/x` is a 404);
//! - API routes of either router are served under no locale (`/fr/api/ping` is a 404);
//! - `public/` files and `/_next/static` files are served under the default locale
//!   (`/en/robots.txt`) and under none;
//! - a path without a locale is matched against redirects, rewrites and middleware with
//!   the default locale added (`/old-about` as `/en/old-about`): Next writes those rules
//!   with a locale prefix.

use crate::build::I18nConfig;

/// The configured locales of an app with Pages Router i18n.
#[derive(Debug)]
pub(super) struct Locales {
    /// As configured; few, so a scan is as fast as a hash.
    locales: Vec<String>,
    default: String,
    /// Locales under which static files are served: the default one and each domain's.
    file_locales: Vec<String>,
}

/// The locale a path starts with, and the path without it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Localized<'a> {
    /// Whether it is the default locale.
    pub default: bool,
    /// Whether `public/` and `/_next/static` files are served under it.
    pub files: bool,
    /// The path without `/{locale}` (`/` for the locale alone).
    pub rest: &'a str,
}

impl Locales {
    /// `None` when no locale is configured (then Next does no i18n routing).
    pub(super) fn new(config: &I18nConfig) -> Option<Locales> {
        if config.locales.is_empty() {
            return None;
        }
        let mut file_locales = vec![config.default_locale.clone()];
        file_locales.extend(config.domain_default_locales.iter().cloned());
        Some(Locales {
            locales: config.locales.clone(),
            default: config.default_locale.clone(),
            file_locales,
        })
    }

    /// The configured locale that `segment` names, ignoring case as Next does. Locales are
    /// BCP 47 tags, ASCII, so ASCII case folding is Next's `toLowerCase` here.
    fn find<'s>(list: &'s [String], segment: &str) -> Option<&'s String> {
        list.iter().find(|l| l.eq_ignore_ascii_case(segment))
    }

    /// The locale `path` starts with (its first segment), and the rest of the path: Next's
    /// `normalizeLocalePath`. No allocation.
    pub(super) fn strip<'a>(&self, path: &'a str) -> Option<(&str, &'a str)> {
        let after = path.strip_prefix('/')?;
        let segment = after.split('/').next()?;
        let locale = Locales::find(&self.locales, segment)?;
        let rest = &after[segment.len()..];
        Some((locale.as_str(), if rest.is_empty() { "/" } else { rest }))
    }

    /// [`Locales::strip`], with what the locale allows.
    pub(super) fn localize<'a>(&self, path: &'a str) -> Option<Localized<'a>> {
        let (locale, rest) = self.strip(path)?;
        Some(Localized {
            default: locale == self.default,
            files: Locales::find(&self.file_locales, locale).is_some(),
            rest,
        })
    }

    /// `path` (without basePath) as Next's router matches rules and middleware against
    /// it when it names no locale: with the default locale first (`/x` → `/en/x`).
    pub(super) fn with_default(&self, base_path: &str, path: &str) -> String {
        let rest = if path == "/" { "" } else { path };
        format!("{base_path}/{}{rest}", self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locales() -> Locales {
        Locales::new(&I18nConfig {
            locales: vec!["en".into(), "fr".into(), "de-CH".into()],
            default_locale: "en".into(),
            locale_detection: true,
            domain_default_locales: vec!["fr".into()],
        })
        .unwrap()
    }

    #[test]
    fn first_segment_is_a_locale_ignoring_case() {
        let l = locales();
        assert_eq!(l.strip("/fr/legacy"), Some(("fr", "/legacy")));
        assert_eq!(l.strip("/fr"), Some(("fr", "/")));
        assert_eq!(l.strip("/fr/"), Some(("fr", "/")));
        assert_eq!(l.strip("/FR/legacy"), Some(("fr", "/legacy")));
        assert_eq!(l.strip("/de-ch/x/y"), Some(("de-CH", "/x/y")));
        assert_eq!(l.strip("/de/legacy"), None);
        assert_eq!(l.strip("/french/legacy"), None);
        assert_eq!(l.strip("/legacy/fr"), None);
        assert_eq!(l.strip("/"), None);
        assert_eq!(
            l.strip("/%66r/legacy"),
            None,
            "Next compares the raw segment"
        );
    }

    #[test]
    fn default_and_file_locales() {
        let l = locales();
        let en = l.localize("/EN/about").unwrap();
        assert!(en.default && en.files);
        let fr = l.localize("/fr/about").unwrap();
        assert!(!fr.default && fr.files, "fr is a domain's default locale");
        let ch = l.localize("/de-CH/about").unwrap();
        assert!(!ch.default && !ch.files);
        assert_eq!(l.with_default("", "/"), "/en");
        assert_eq!(l.with_default("/base", "/old-about"), "/base/en/old-about");
    }
}
