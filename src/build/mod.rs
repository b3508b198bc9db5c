//! What the app's build and config say: the config the worker reports once Next.js is
//! prepared ([`AppInfo`]), the Next.js versions native answers were verified for, and
//! the facts the rest of the crate derives its decisions from.
//! Nothing here decides who answers a request; `routes` and `assets` do, from these facts.

mod config;
mod regex;
mod version;

pub(crate) use config::{AppInfo, I18nConfig};
pub(crate) use regex::JsRegex;
pub(crate) use version::native_answers_verified;
