//! Who the user is: the built-in endpoints under the auth prefix (login,
//! logout, me, check, a user's own sessions), the password login against the
//! users file (read again at every config reload, `server::reload`) with its
//! throttles, and sign-in with OpenID Connect providers.
//!
//! [`Auth`] is one config generation's auth: its users, throttles, hashing
//! slots and providers. Its endpoints build replies
//! ([`crate::http::reply::Reply`]); the proxy writes them. It reaches
//! sessions only through the session manager.
//!
//! - [`endpoints`]: the endpoint table and the small endpoints;
//! - [`password`]: the login form and its checks;
//! - [`oidc`]: the providers and the sign-in flow with them.

pub(crate) mod api_keys;
pub(crate) mod basic;
pub(crate) mod endpoints;
pub(crate) mod factor;
mod hashing;
pub(crate) mod hop;
pub(crate) mod import;
pub(crate) mod jwt;
pub(crate) mod ldap;
pub(crate) mod names;
pub(crate) mod oidc;
pub(crate) mod own_keys;
pub(crate) mod own_sessions;
pub(crate) mod password;
pub(crate) mod sealing;
pub(crate) mod throttle;
pub(crate) mod users;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use self::oidc::{OidcOptions, Provider};
use self::throttle::Throttle;
use self::users::Users;
use crate::http::headers::IdentityNames;

/// Keys the throttles remember at most.
const THROTTLE_CAPACITY: u64 = 100_000;

/// The built-in endpoints' location and where anonymous browsers are sent.
#[derive(Debug, Clone)]
pub(crate) struct AuthOptions {
    pub prefix: String,
    /// Relative URL of the login page; `?next=` is appended.
    pub login_url: String,
    /// The users file of the built-in login; `None` = built-in login off.
    pub users_file: Option<PathBuf>,
    /// The identity headers `GET <p>/check` answers with (`[identity]`).
    pub identity: IdentityNames,
    /// Where `POST <prefix>/logout` sends the browser.
    pub logout_redirect: String,
    /// Failed logins per user name within `failure_window` before lockout.
    pub max_failures: u32,
    /// Failed logins per client IP within `failure_window` before lockout.
    pub ip_max_failures: u32,
    pub failure_window: Duration,
    /// Password verifications running at once.
    pub max_concurrent_hashes: usize,
    /// `[[auth.oidc]]`: the OpenID Connect providers one may sign in with.
    pub oidc: Vec<OidcOptions>,
    /// `[[auth.jwt]]`: the issuers whose bearer tokens routes may take.
    pub jwt: Vec<jwt::JwtOptions>,
    /// `[auth.second_factor]`; `None`: the built-in login asks for a password only.
    pub second_factor: Option<factor::FactorOptions>,
    /// The hosts the routes name: a sign-in may send the browser on to them
    /// (set by `config` from the rule table).
    pub sites: crate::http::redirect::Sites,
    /// `[auth.cross_domain]`: one sign-in for hosts under unrelated domains.
    pub cross_domain: Option<hop::CrossDomain>,
    /// `[auth.ldap]`: passwords of names the users file lacks, checked by a directory.
    pub ldap: Option<ldap::LdapOptions>,
    /// `[import]`: users of an Express app's express-session signed in once.
    pub import: Option<import::ImportOptions>,
}

/// Why the auth of a config cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The users file could not be read or was refused.
    #[error("users file: {0}")]
    Users(#[from] users::Error),
    /// An OIDC provider could not be set up.
    #[error("auth.oidc: {0}")]
    Provider(String),
    /// A bearer token issuer could not be set up.
    #[error("auth.jwt: {0}")]
    Issuer(String),
    /// The second factor could not be set up.
    #[error("auth.second_factor: {0}")]
    Factor(String),
    /// The app's sessions for `[import]` cannot be opened.
    #[error("{0}")]
    Import(String),
    /// The second factor needs a credential store.
    #[error("auth.second_factor needs a credential store: store.kind = \"redis\", or store.credentials_file")]
    NoFactorHome,
}

/// The user a credential other than the session proves (Basic, a bearer
/// token): the name, and the roles as sent upstream (joined with `,`). Both in
/// the identity alphabet of [`names`], whatever the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) user: String,
    pub(crate) roles: String,
}

/// The built-in login: users, throttles, the hashing limit, the OIDC providers.
pub(crate) struct Auth {
    pub(crate) config: AuthOptions,
    /// The users file as this login's config generation read it.
    pub(crate) users: Arc<Users>,
    /// Checked when the user is unknown, so that an unknown name costs as
    /// much as a wrong password. Made once per process (an argon2 hash).
    pub(crate) dummy_hash: Arc<String>,
    /// The throttles and the hashing slots outlive a reload whose settings
    /// for them are unchanged: a reload must not forgive failed attempts.
    pub(crate) by_user: Arc<Throttle<String>>,
    pub(crate) by_ip: Arc<Throttle<IpAddr>>,
    pub(crate) hashing: Arc<Semaphore>,
    /// `[[auth.oidc]]`, in config order (the login page's order).
    pub(crate) providers: Vec<Arc<Provider>>,
    /// Basic passwords verified lately ([`basic`]); a reload starts afresh.
    pub(crate) basic: basic::Remembered,
    /// `[[auth.jwt]]` and the bearer tokens verified lately ([`jwt`]).
    pub(crate) bearer: jwt::Bearer,
    /// The API keys in the credential store, when there is one ([`api_keys`]).
    pub(crate) api_keys: Option<api_keys::ApiKeys>,
    /// `[auth.second_factor]` and the records in the credential store ([`factor`]).
    pub(crate) factors: Option<factor::Factors>,
    /// `[auth.ldap]` ([`ldap`]); kept across a reload that does not change it.
    pub(crate) directory: Option<Arc<ldap::Directory>>,
    /// `[import]` ([`import`]): read again at each reload (a dump file may
    /// have changed).
    pub(crate) import: Option<Arc<import::Import>>,
}

impl Auth {
    /// Load the users file (if configured) and prepare the dummy hash.
    ///
    /// # Errors
    /// If the users file cannot be loaded.
    pub(crate) fn new(
        config: AuthOptions,
        credentials: Option<Arc<dyn crate::session::credentials::Home>>,
    ) -> Result<Auth, Error> {
        let users = load_users(&config)?;
        let providers = providers(&config, &[])?;
        let bearer = jwt::Bearer::new(&config.jwt, &[]).map_err(Error::Issuer)?;
        bearer.warm_up();
        let factors = factors(&config, credentials.as_ref())?;
        let window = config.failure_window;
        let import = importer(&config)?;
        Ok(Auth {
            import,
            by_user: Arc::new(Throttle::new(
                config.max_failures,
                window,
                THROTTLE_CAPACITY,
            )),
            by_ip: Arc::new(Throttle::new(
                config.ip_max_failures,
                window,
                THROTTLE_CAPACITY,
            )),
            hashing: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            dummy_hash: Arc::new(users::dummy_hash()),
            users: Arc::new(users),
            providers,
            basic: basic::Remembered::new(),
            bearer,
            api_keys: credentials.map(api_keys::ApiKeys::new),
            factors,
            directory: config
                .ldap
                .clone()
                .map(|o| Arc::new(ldap::Directory::new(o))),
            config,
        })
    }

    /// The login of a reloaded config: the users file read again, and the
    /// throttles kept where their settings did not change. Returns it with
    /// the users who can no longer log in, whose sessions the caller ends.
    ///
    /// # Errors
    /// The users file is unreadable or invalid; `self` stays as it was.
    pub(crate) fn next(&self, config: AuthOptions) -> Result<(Auth, Vec<String>), Error> {
        let users = load_users(&config)?;
        let providers = providers(&config, &self.providers)?;
        let bearer = jwt::Bearer::new(&config.jwt, self.bearer.issuers()).map_err(Error::Issuer)?;
        bearer.warm_up();
        let home = self.api_keys.as_ref().map(|k| k.home().clone());
        let factors = factors(&config, home.as_ref())?;
        let revoked = self.users.revoked_in(&users);
        let old = &self.config;
        let window = config.failure_window;
        let same_window = window == old.failure_window;
        let by_user = if same_window && config.max_failures == old.max_failures {
            self.by_user.clone()
        } else {
            Arc::new(Throttle::new(
                config.max_failures,
                window,
                THROTTLE_CAPACITY,
            ))
        };
        let by_ip = if same_window && config.ip_max_failures == old.ip_max_failures {
            self.by_ip.clone()
        } else {
            Arc::new(Throttle::new(
                config.ip_max_failures,
                window,
                THROTTLE_CAPACITY,
            ))
        };
        let hashing = if config.max_concurrent_hashes == old.max_concurrent_hashes {
            self.hashing.clone()
        } else {
            Arc::new(Semaphore::new(config.max_concurrent_hashes))
        };
        let directory = match (&config.ldap, &self.directory) {
            (Some(o), Some(d)) if d.options() == o => Some(d.clone()),
            (Some(o), _) => Some(Arc::new(ldap::Directory::new(o.clone()))),
            (None, _) => None,
        };
        let login = Auth {
            import: importer(&config)?,
            directory,
            config,
            users: Arc::new(users),
            dummy_hash: self.dummy_hash.clone(),
            by_user,
            by_ip,
            hashing,
            providers,
            basic: basic::Remembered::new(),
            bearer,
            api_keys: home.map(api_keys::ApiKeys::new),
            factors,
        };
        Ok((login, revoked))
    }

    /// The claims a sign-in records for the backend (`[identity]`'s email,
    /// name and named claims), `get` reading each from what the sign-in
    /// proved; a value outside the identity alphabet is left out, and logged.
    pub(crate) fn claims_for(&self, get: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for claim in self.config.identity.wanted() {
            if out.iter().any(|(c, _)| c == claim) {
                continue;
            }
            match get(claim) {
                Some(v) if names::check_user(&v).is_ok() => out.push((claim.to_owned(), v)),
                Some(_) => {
                    tracing::warn!(target: "auth", claim, "a claim outside the identity alphabet was left out");
                }
                None => {}
            }
        }
        out
    }

    pub(crate) fn users(&self) -> Arc<Users> {
        self.users.clone()
    }
}

/// `[import]` of `config`, its source opened.
fn importer(config: &AuthOptions) -> Result<Option<Arc<import::Import>>, Error> {
    match &config.import {
        Some(o) => Ok(Some(Arc::new(
            import::Import::new(o.clone()).map_err(Error::Import)?,
        ))),
        None => Ok(None),
    }
}

/// The providers of `config`, reusing those of `old` whose settings are unchanged
/// (a reload keeps their discovery document and keys).
fn providers(config: &AuthOptions, old: &[Arc<Provider>]) -> Result<Vec<Arc<Provider>>, Error> {
    config
        .oidc
        .iter()
        .map(|o| match old.iter().find(|p| p.options == *o) {
            Some(p) => Ok(p.clone()),
            None => Provider::new(o.clone())
                .map(Arc::new)
                .map_err(Error::Provider),
        })
        .collect()
}

/// The second factor of `config`, in `home`.
fn factors(
    config: &AuthOptions,
    home: Option<&Arc<dyn crate::session::credentials::Home>>,
) -> Result<Option<factor::Factors>, Error> {
    match (&config.second_factor, home) {
        (None, _) => Ok(None),
        (Some(o), Some(h)) => factor::Factors::new(o.clone(), h.clone())
            .map(Some)
            .map_err(Error::Factor),
        (Some(_), None) => Err(Error::NoFactorHome),
    }
}

fn load_users(config: &AuthOptions) -> Result<Users, users::Error> {
    match &config.users_file {
        Some(path) => Users::load(path),
        None => Ok(Users::default()),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An [`Auth`] for the pages' unit tests: a users file, no providers.

    use super::*;

    pub(crate) fn auth() -> Auth {
        auth_at("/.sessiongate")
    }

    /// [`auth`] with its endpoints under `prefix`.
    pub(crate) fn auth_at(prefix: &str) -> Auth {
        let dir =
            std::env::temp_dir().join(format!("sessiongate-auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users.toml");
        std::fs::write(&users, "").unwrap();
        Auth::new(
            AuthOptions {
                prefix: prefix.into(),
                login_url: format!("{prefix}/login"),
                users_file: Some(users),
                identity: IdentityNames::default(),
                logout_redirect: "/".into(),
                max_failures: 5,
                ip_max_failures: 50,
                failure_window: Duration::from_secs(60),
                max_concurrent_hashes: 1,
                oidc: Vec::new(),
                jwt: Vec::new(),
                second_factor: None,
                sites: crate::http::redirect::Sites::default(),
                cross_domain: None,
                ldap: None,
                import: None,
            },
            None,
        )
        .expect("an empty users file")
    }
}
