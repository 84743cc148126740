//! `[import]` as written, with its defaults (see [`super`]).

use serde::Deserialize;

use super::RawSecret;

/// `[import]`: an Express app's express-session sessions taken over once
/// (`validate::import` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawImport {
    #[serde(default = "default_import_cookie")]
    pub(in crate::config) cookie: String,
    pub(in crate::config) secrets: Vec<RawSecret>,
    pub(in crate::config) until: String,
    pub(in crate::config) user_path: String,
    pub(in crate::config) roles_path: Option<String>,
    #[serde(default)]
    pub(in crate::config) numeric_users: bool,
    #[serde(default)]
    pub(in crate::config) copy: Vec<String>,
    #[serde(default = "default_old_cookie")]
    pub(in crate::config) old_cookie: String,
    #[serde(default = "default_import_cookie_path")]
    pub(in crate::config) cookie_path: String,
    pub(in crate::config) cookie_domain: Option<String>,
    #[serde(default)]
    pub(in crate::config) forward_cookie: bool,
    pub(in crate::config) redis_url: Option<String>,
    pub(in crate::config) redis_password: Option<RawSecret>,
    #[serde(default = "default_import_prefix")]
    pub(in crate::config) redis_prefix: String,
    pub(in crate::config) dump_file: Option<String>,
}

/// express-session's default `name`.
fn default_import_cookie() -> String {
    "connect.sid".into()
}
/// One use, then the app's cookie is gone: the safe default.
fn default_old_cookie() -> String {
    "clear".into()
}
/// express-session's default cookie path.
fn default_import_cookie_path() -> String {
    "/".into()
}
/// connect-redis's default `prefix`.
fn default_import_prefix() -> String {
    "sess:".into()
}
