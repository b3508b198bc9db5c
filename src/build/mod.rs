//! What the app's build and config say: the config the worker reports once Next.js is
//! prepared ([`AppInfo`]), the manifests of a production build, each read once
//! ([`Manifests`]), the regexes Next writes into them ([`JsRegex`]), the Next.js
//! versions native answers were verified for, and which build a `/_next` path belongs to
//! ([`BuildPath`]).
//!
//! Nothing here decides who answers a request: `routes` and `assets` do, from these facts.

mod config;
mod manifests;
mod path;
mod regex;
mod version;

pub(crate) use config::{AppInfo, I18nConfig, ResolvedConfig};
pub(crate) use manifests::{
    FunctionsConfigManifest, HeaderRule, ImagesConfig, Manifests, MiddlewareManifest,
    RoutesManifest,
};
pub(crate) use path::BuildPath;
pub(crate) use regex::JsRegex;
pub(crate) use version::native_answers_verified;
