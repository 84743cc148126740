//! `[auth]` and its tables (`[auth.ldap]`, `[auth.cross_domain]`,
//! `[auth.second_factor]`, `[[auth.oidc]]`, `[[auth.jwt]]`) as written, with
//! the `default_*` function behind every defaulted key, each with its reason
//! (see [`super`]).

use serde::Deserialize;

use super::RawSecret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawAuth {
    #[serde(default = "default_auth_prefix")]
    pub(in crate::config) prefix: String,
    pub(in crate::config) login_url: Option<String>,
    pub(in crate::config) users_file: Option<String>,
    #[serde(default = "default_logout_redirect")]
    pub(in crate::config) logout_redirect: String,
    #[serde(default = "default_max_failures")]
    pub(in crate::config) max_failures: u32,
    #[serde(default = "default_ip_max_failures")]
    pub(in crate::config) ip_max_failures: u32,
    #[serde(default = "default_failure_window")]
    pub(in crate::config) failure_window: String,
    #[serde(default = "default_max_concurrent_hashes")]
    pub(in crate::config) max_concurrent_hashes: usize,
    #[serde(default)]
    pub(in crate::config) oidc: Vec<RawOidc>,
    #[serde(default)]
    pub(in crate::config) jwt: Vec<RawJwt>,
    pub(in crate::config) second_factor: Option<RawSecondFactor>,
    pub(in crate::config) cross_domain: Option<RawCrossDomain>,
    pub(in crate::config) ldap: Option<RawLdap>,
}

/// `[auth.ldap]` (`validate::ldap` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawLdap {
    pub(in crate::config) url: String,
    #[serde(default)]
    pub(in crate::config) start_tls: bool,
    /// Plain `ldap://` without StartTLS, on a loopback address only.
    #[serde(default)]
    pub(in crate::config) allow_plain: bool,
    pub(in crate::config) bind_dn: String,
    pub(in crate::config) bind_password: RawSecret,
    pub(in crate::config) base_dn: String,
    #[serde(default = "default_ldap_user_filter")]
    pub(in crate::config) user_filter: String,
    #[serde(default = "default_ldap_user_attribute")]
    pub(in crate::config) user_attribute: String,
    #[serde(default = "default_ldap_group_attribute")]
    pub(in crate::config) group_attribute: String,
    /// Set: groups are searched for here instead of read from `group_attribute`.
    pub(in crate::config) group_base_dn: Option<String>,
    #[serde(default = "default_ldap_group_filter")]
    pub(in crate::config) group_filter: String,
    #[serde(default)]
    pub(in crate::config) roles_map: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_ldap_timeout")]
    pub(in crate::config) timeout: String,
    #[serde(default = "default_ldap_cache_ttl")]
    pub(in crate::config) cache_ttl: String,
}

/// OpenLDAP's people; Active Directory wants `(&(objectClass=user)(sAMAccountName={user}))`.
fn default_ldap_user_filter() -> String {
    "(&(objectClass=person)(uid={user}))".into()
}
fn default_ldap_user_attribute() -> String {
    "uid".into()
}
/// Active Directory's, and OpenLDAP's with the memberof overlay.
fn default_ldap_group_attribute() -> String {
    "memberOf".into()
}
fn default_ldap_group_filter() -> String {
    "(member={dn})".into()
}
/// A directory slower than this is as good as down for a sign-in.
fn default_ldap_timeout() -> String {
    "5s".into()
}
/// A group change reaches the next sign-in within this.
fn default_ldap_cache_ttl() -> String {
    "60s".into()
}

/// `[auth.cross_domain]`: one sign-in for hosts under unrelated domains.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCrossDomain {
    /// The host people sign in on; the others hop there and back.
    pub(in crate::config) login_host: String,
}

/// `[auth.second_factor]` (`validate::factor` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawSecondFactor {
    /// `"optional"` or `"required"`.
    #[serde(default = "default_factor_mode")]
    pub(in crate::config) mode: String,
    /// With `mode = "required"`: only users with one of these roles (empty: everyone).
    #[serde(default)]
    pub(in crate::config) required_roles: Vec<String>,
    #[serde(default)]
    pub(in crate::config) keys: Vec<RawSecret>,
    #[serde(default = "default_factor_issuer")]
    pub(in crate::config) issuer: String,
    #[serde(default = "default_pending_timeout")]
    pub(in crate::config) pending_timeout: String,
    /// The origin browsers use (`https://app.example.com`): passkeys on.
    pub(in crate::config) passkey_origin: Option<String>,
    /// A passkey alone signs in.
    #[serde(default)]
    pub(in crate::config) passkey_login: bool,
}

/// Users choose; an operator turns `required` on when they are ready.
fn default_factor_mode() -> String {
    "optional".into()
}
/// What authenticator apps show beside the user's name.
fn default_factor_issuer() -> String {
    "sessiongate".into()
}
/// Long enough to find a phone, short enough that a password typed on a
/// shared computer and walked away from is soon worthless.
fn default_pending_timeout() -> String {
    "5m".into()
}

/// `[[auth.oidc]]`: one OpenID Connect provider (`validate::oidc` checks it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawOidc {
    pub(in crate::config) id: String,
    pub(in crate::config) name: String,
    pub(in crate::config) issuer: String,
    pub(in crate::config) client_id: String,
    pub(in crate::config) client_secret: Option<RawSecret>,
    pub(in crate::config) redirect_url: String,
    #[serde(default = "default_oidc_scopes")]
    pub(in crate::config) scopes: Vec<String>,
    #[serde(default = "default_oidc_algorithms")]
    pub(in crate::config) algorithms: Vec<String>,
    #[serde(default = "default_user_claim")]
    pub(in crate::config) user_claim: String,
    pub(in crate::config) roles_claim: Option<String>,
    #[serde(default)]
    pub(in crate::config) roles_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub(in crate::config) allowed_email_domains: Vec<String>,
    #[serde(default)]
    pub(in crate::config) allowed_groups: Vec<String>,
    #[serde(default)]
    pub(in crate::config) end_session: bool,
    /// OpenID Connect Back-Channel Logout: the provider can end sessions.
    #[serde(default)]
    pub(in crate::config) backchannel_logout: bool,
    /// `amr` values any one of which counts as a second factor at sign-in.
    #[serde(default)]
    pub(in crate::config) second_factor_amr: Vec<String>,
    /// `acr` values any one of which counts as a second factor at sign-in.
    #[serde(default)]
    pub(in crate::config) second_factor_acr: Vec<String>,
    /// Re-check each session's user at the provider this often, with its
    /// refresh token (`auth::oidc::fresh`); absent: never.
    pub(in crate::config) recheck_every: Option<String>,
    /// When a re-check cannot reach the provider: "keep" or "end" (no
    /// default: the operator chooses).
    pub(in crate::config) if_unreachable: Option<String>,
    /// Read claims from the userinfo endpoint too, at sign-in and re-checks.
    #[serde(default)]
    pub(in crate::config) userinfo: bool,
}

/// `[[auth.jwt]]`: one issuer of bearer tokens (`validate::jwt` checks it).
/// The claim keys repeat `RawOidc`'s rather than share a flattened struct:
/// serde's `flatten` does not work with `deny_unknown_fields`, and a typo in
/// an auth table must stay an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawJwt {
    pub(in crate::config) id: String,
    pub(in crate::config) issuer: String,
    pub(in crate::config) jwks_url: Option<String>,
    #[serde(default)]
    pub(in crate::config) audiences: Vec<String>,
    #[serde(default = "default_oidc_algorithms")]
    pub(in crate::config) algorithms: Vec<String>,
    #[serde(default = "default_jwt_user_claim")]
    pub(in crate::config) user_claim: String,
    pub(in crate::config) roles_claim: Option<String>,
    #[serde(default)]
    pub(in crate::config) roles_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub(in crate::config) allowed_email_domains: Vec<String>,
    #[serde(default)]
    pub(in crate::config) allowed_groups: Vec<String>,
}

fn default_jwt_user_claim() -> String {
    "sub".to_owned()
}

fn default_oidc_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn default_oidc_algorithms() -> Vec<String> {
    ["RS256", "ES256"].map(String::from).to_vec()
}

fn default_user_claim() -> String {
    "preferred_username".to_owned()
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            prefix: default_auth_prefix(),
            login_url: None,
            users_file: None,
            logout_redirect: default_logout_redirect(),
            max_failures: default_max_failures(),
            ip_max_failures: default_ip_max_failures(),
            failure_window: default_failure_window(),
            max_concurrent_hashes: default_max_concurrent_hashes(),
            oidc: Vec::new(),
            jwt: Vec::new(),
            second_factor: None,
            cross_domain: None,
            ldap: None,
        }
    }
}

/// A prefix unlikely to collide with the application's own paths.
fn default_auth_prefix() -> String {
    "/.sessiongate".into()
}
/// After logout, the public home page.
fn default_logout_redirect() -> String {
    "/".into()
}
/// OWASP Authentication Cheat Sheet: lock out after a small number of failures.
fn default_max_failures() -> u32 {
    5
}
/// Per client IP, higher than per user: many people can share one NAT address.
fn default_ip_max_failures() -> u32 {
    50
}
fn default_failure_window() -> String {
    "15m".into()
}
/// Each argon2id verification holds 19 MiB; a few at once bound memory and
/// keep hashing from starving proxied traffic.
fn default_max_concurrent_hashes() -> usize {
    4
}
