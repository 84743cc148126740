//! Passkeys (WebAuthn) through `webauthn-rs`, which runs both ceremonies; this
//! module only carries their state and stores the result.
//!
//! | endpoint                               | does                                            |
//! |----------------------------------------|-------------------------------------------------|
//! | `GET  <p>/factor/passkey.js`           | the pages' script (WebAuthn is a browser API)   |
//! | `POST <p>/factor/passkey/register`     | creation options for the caller                 |
//! | `POST <p>/factor/passkey/register/finish` | `{name, credential}`: saves the passkey      |
//! | `POST <p>/factor/passkey/auth`         | request options: a pending sign-in's, a session's step-up, or (with `passkey_login`) anyone's |
//! | `POST <p>/factor/passkey/auth/finish`  | `{credential}`: the factor passed: a new session |
//! | `POST <p>/factor/passkey/remove`       | form `id`: remove one of the caller's passkeys  |
//!
//! A ceremony's state travels between its two requests in a short-lived
//! cookie signed with the session secrets ([`Ceremony`]), so either may land
//! on any instance; it is good once (its nonce is spent in the credential
//! store, as webauthn-rs asks of server-side state) and for
//! [`CEREMONY_LIFETIME`]. Every authentication is started as a discoverable
//! one (a small state, no key material in the cookie); for a known user the
//! options list that user's credentials, and the finish checks the answer
//! against that user's keys only. User verification is required, so a
//! passkey is two factors on its own: with `passkey_login`, it signs in
//! without a password.
//!
//! Credential ids are not checked for uniqueness across accounts: a passkey
//! signs in only the account whose user handle it carries, and verifies only
//! with that account's public key, so a duplicated id gains nothing.

use std::time::Duration;

use http::{header, StatusCode};
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    PasskeyRegistration, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

mod authenticate;

use super::{empty_record, hashed, recovery, Factors};
use crate::auth::endpoints::unavailable;
use crate::auth::Auth;
use crate::http::html::escape;
use crate::http::reply::Reply;
use crate::session::cookie::SameSite;
use crate::session::credentials::PasskeyFactor;
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::signing;
use crate::session::{now_ms, SessionStore};

/// How long a ceremony may take (the browser's own timeout is 5 minutes).
pub(crate) const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);
const LABEL: &[u8] = b"sessiongate passkey ceremony v1\0";
const MAX_COOKIE_LEN: usize = 3072;
/// Longest passkey name kept.
const MAX_NAME: usize = 64;
/// Most passkeys one user may have: each is listed in every sign-in's options.
const MAX_PASSKEYS: usize = 10;

/// The script of the pages that offer passkeys.
pub(crate) const SCRIPT: &str = include_str!("passkey.js");

/// The Content-Security-Policy of a page that runs [`SCRIPT`]: the default
/// one of `http::reply::PAGE_HEADERS` with this origin's scripts and fetches.
pub(crate) const SCRIPT_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `reply` with [`SCRIPT_CSP`] when it is a page that loads [`SCRIPT`]: the
/// one place a built-in page's policy allows a script.
pub(crate) fn scripted(reply: Reply) -> Reply {
    let loads = reply.content_type.starts_with("text/html")
        && reply
            .body
            .windows(SCRIPT_TAG.len())
            .any(|w| w == SCRIPT_TAG.as_bytes());
    if loads {
        reply.with(header::CONTENT_SECURITY_POLICY, SCRIPT_CSP.to_owned())
    } else {
        reply
    }
}

/// How a page loads [`SCRIPT`] (after the prefix).
const SCRIPT_TAG: &str = "/factor/passkey.js\" defer></script>";

/// The tag that loads [`SCRIPT`] under `prefix`.
pub(crate) fn script_tag(prefix: &str) -> String {
    format!("<script src=\"{}{SCRIPT_TAG}", escape(prefix))
}

/// `passkey_origin` and `passkey_login`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasskeyOptions {
    /// The origin browsers see (its host is the relying party id).
    pub origin: Url,
    /// Whether a passkey alone signs in (a button on the login page).
    pub login: bool,
}

/// The relying party, built once.
pub(crate) struct Passkeys {
    webauthn: Webauthn,
    pub(crate) login: bool,
}

impl Passkeys {
    /// # Errors
    /// When the origin has no domain (an IP address cannot be a relying party).
    pub(crate) fn new(o: &PasskeyOptions, name: &str) -> Result<Passkeys, String> {
        let rp_id = o
            .origin
            .domain()
            .ok_or("passkey_origin needs a host name, not an address")?;
        let webauthn = WebauthnBuilder::new(rp_id, &o.origin)
            .and_then(|b| b.rp_name(name).timeout(CEREMONY_LIFETIME).build())
            .map_err(|e| format!("passkey_origin: {e}"))?;
        Ok(Passkeys {
            webauthn,
            login: o.login,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Register,
    Authenticate,
}

/// A ceremony between its two requests.
#[derive(Debug, Serialize, Deserialize)]
struct Ceremony {
    kind: Kind,
    /// For whom; `None`: a passkey sign-in, whoever it turns out to be.
    user: Option<String>,
    /// The user handle a registration gives the passkey.
    handle: Option<String>,
    /// webauthn-rs's state (the challenge and what it expects).
    state: serde_json::Value,
    expires: u64,
    nonce: String,
}

fn cookie_attrs<S: SessionStore>(
    sessions: &SessionManager<S>,
) -> crate::session::cookie::CookieAttrs {
    let session = &sessions.config().cookie;
    session.beside(cookie_name(session), SameSite::Strict, CEREMONY_LIFETIME)
}

/// The ceremony cookie's name beside a session cookie with `session`'s attributes.
pub(crate) fn cookie_name(session: &crate::session::cookie::CookieAttrs) -> &'static str {
    if session.name.starts_with("__Host-") {
        "__Host-sg_passkey"
    } else {
        "sg_passkey"
    }
}

fn json_error(status: StatusCode, error: &str) -> Reply {
    Reply::json(status, serde_json::json!({ "error": error }).to_string())
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

impl Auth {
    fn passkeys_or_404(&self) -> Result<(&Factors, &Passkeys), Reply> {
        match self
            .factors
            .as_ref()
            .and_then(|f| Some((f, f.passkeys.as_ref()?)))
        {
            Some(found) => Ok(found),
            None => Err(json_error(StatusCode::NOT_FOUND, "not found")),
        }
    }

    fn start_ceremony<S: SessionStore>(
        &self,
        sessions: &SessionManager<S>,
        client: &Client,
        ceremony: &Ceremony,
        options: String,
    ) -> Reply {
        let attrs = cookie_attrs(sessions);
        let value = signing::seal_record(LABEL, &sessions.config().secrets[0], ceremony);
        Reply::json(StatusCode::OK, options)
            .with(header::SET_COOKIE, attrs.set_cookie(&value, client.https))
    }

    /// The ceremony this request carries, of `kind`, not yet expired.
    /// `Err`: the reply to send instead. It is spent ([`Auth::spend_ceremony`])
    /// only once its answer verified, so made-up answers cost the store nothing.
    fn ceremony<S: SessionStore>(
        &self,
        req: &RequestHeader,
        sessions: &SessionManager<S>,
        kind: Kind,
    ) -> Result<Ceremony, Reply> {
        let attrs = cookie_attrs(sessions);
        let now = now_secs();
        let found: Option<Ceremony> = req
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| crate::session::cookie::find(v, &attrs.name))
            .find_map(|v| {
                signing::open_record::<Ceremony>(
                    LABEL,
                    &sessions.config().secrets,
                    v,
                    MAX_COOKIE_LEN,
                )
            })
            .filter(|c| c.kind == kind && now < c.expires);
        found.ok_or_else(|| {
            json_error(
                StatusCode::BAD_REQUEST,
                "no passkey ceremony in progress; start again",
            )
        })
    }

    /// Spend `c` (once, on every instance): `Err` when it was spent already.
    async fn spend_ceremony(&self, factors: &Factors, nonce: &str) -> Result<(), Reply> {
        match factors.spend(&format!("passkey\0{nonce}")).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(json_error(
                StatusCode::BAD_REQUEST,
                "this passkey ceremony was used; start again",
            )),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// `POST <p>/factor/passkey/register`
    pub(crate) async fn passkey_register<S: SessionStore>(
        &self,
        req: &RequestHeader,
        client: &Client,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let (factors, passkeys) = match self.passkeys_or_404() {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (user, _) = match self.may_enrol(req, cur, sessions).await {
            Ok(found) => found,
            Err(_) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
        };
        let record = match factors.record(&user).await {
            Ok(r) => r.unwrap_or_else(|| empty_record(&user)),
            Err(e) => return unavailable(&e),
        };
        if record.passkeys.len() >= MAX_PASSKEYS {
            return json_error(StatusCode::CONFLICT, "too many passkeys; remove one first");
        }
        let handle = match record.handle.as_deref().map(Uuid::parse_str) {
            Some(Ok(h)) => h,
            _ => Uuid::new_v4(),
        };
        let exclude = record
            .passkeys
            .iter()
            .map(|p| p.key.cred_id().clone())
            .collect::<Vec<_>>();
        let started =
            passkeys
                .webauthn
                .start_passkey_registration(handle, &user, &user, Some(exclude));
        let (options, state) = match started {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "auth", error = %e, "passkey registration could not start");
                return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        };
        let ceremony = Ceremony {
            kind: Kind::Register,
            user: Some(user),
            handle: Some(handle.to_string()),
            state: serde_json::to_value(&state).unwrap_or_default(),
            expires: now_secs() + CEREMONY_LIFETIME.as_secs(),
            nonce: nonce(),
        };
        let options = serde_json::to_string(&options).unwrap_or_default();
        self.start_ceremony(sessions, client, &ceremony, options)
    }

    /// `POST <p>/factor/passkey/register/finish`
    pub(crate) async fn passkey_register_finish<S: SessionStore>(
        &self,
        req: &RequestHeader,
        body: &[u8],
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        #[derive(Deserialize)]
        struct Finish {
            name: String,
            credential: RegisterPublicKeyCredential,
        }
        let (factors, passkeys) = match self.passkeys_or_404() {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (user, pending_next) = match self.may_enrol(req, cur, sessions).await {
            Ok(found) => found,
            Err(_) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
        };
        let ceremony = match self.ceremony(req, sessions, Kind::Register) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let state: Option<PasskeyRegistration> = serde_json::from_value(ceremony.state).ok();
        let (Some(state), true) = (state, ceremony.user.as_deref() == Some(user.as_str())) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "no passkey ceremony in progress; start again",
            );
        };
        let Ok(finish) = serde_json::from_slice::<Finish>(body) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "the body is not {name, credential}",
            );
        };
        let key = match passkeys
            .webauthn
            .finish_passkey_registration(&finish.credential, &state)
        {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(target: "auth", user = %user, error = %e, "passkey registration refused");
                return json_error(StatusCode::BAD_REQUEST, "the passkey was not accepted");
            }
        };
        if let Err(r) = self.spend_ceremony(factors, &ceremony.nonce).await {
            return r;
        }
        let now = now_secs();
        let mut record = match factors.record(&user).await {
            Ok(r) => r.unwrap_or_else(|| empty_record(&user)),
            Err(e) => return unavailable(&e),
        };
        // Another registration finished meanwhile: the user keeps one
        // handle (the passkey made here carries this ceremony's), and the cap.
        let same_handle = record.handle.is_none() || record.handle == ceremony.handle;
        if !same_handle || record.passkeys.len() >= MAX_PASSKEYS {
            return json_error(StatusCode::CONFLICT, "start again");
        }
        let name = clean_name(&finish.name, record.passkeys.len() + 1);
        record.handle = ceremony.handle;
        record.passkeys.push(PasskeyFactor {
            name: name.clone(),
            id: base64url(key.cred_id().as_ref()),
            key,
            created_at: now,
            last_used_at: None,
        });
        // The first factor brings recovery codes; a second one keeps them.
        let codes = if record.recovery.is_empty() {
            let codes = recovery::new_codes();
            record.recovery = hashed(&codes);
            codes
        } else {
            Vec::new()
        };
        record.updated_at = now;
        if let Err(e) = factors.save(&record).await {
            return unavailable(&e);
        }
        tracing::info!(target: "auth", user = %user, passkey = %name, "passkey added");
        let next = pending_next.unwrap_or_else(|| format!("{}/sessions", self.config.prefix));
        let Some(asker) = self.asker(req, cur, sessions) else {
            return json_error(StatusCode::UNAUTHORIZED, "sign in first");
        };
        let done = self
            .factor_passed(
                asker,
                crate::auth::factor::pages::Proved::NewFactor,
                &next,
                client,
                cur,
                sessions,
            )
            .await;
        as_json(done, &next, &codes)
    }

    /// `POST <p>/factor/passkey/remove` (form `id`): 303 back to the sessions page.
    pub(crate) async fn passkey_remove(&self, form: &[u8], cur: &RequestSession) -> Reply {
        let Some(factors) = &self.factors else {
            return json_error(StatusCode::NOT_FOUND, "not found");
        };
        let back = format!("{}/sessions", self.config.prefix);
        let Some((user, factor_at)) = self.session_user(cur) else {
            return Reply::see_other(&self.config.login_url);
        };
        let user = user.as_str();
        if !crate::auth::factor::pages::recent(factor_at) {
            return Reply::see_other(&format!(
                "{}/factor?next={}",
                self.config.prefix,
                escape(&back)
            ));
        }
        let id = form_urlencoded::parse(form)
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let mut record = match factors.record(user).await {
            Ok(Some(r)) => r,
            Ok(None) => return Reply::see_other(&back),
            Err(e) => return unavailable(&e),
        };
        let before = record.passkeys.len();
        record.passkeys.retain(|p| p.id != id);
        if record.passkeys.len() != before {
            record.updated_at = now_secs();
            if let Err(e) = factors.save(&record).await {
                return unavailable(&e);
            }
            tracing::info!(target: "auth", user = %user, "passkey removed");
        }
        Reply::see_other(&back)
    }
}

/// The outcome of a passed factor as the script reads it: where to go, the
/// recovery codes to show once (if any), and the cookies the passing set.
fn as_json(done: Reply, next: &str, codes: &[String]) -> Reply {
    if done.status != StatusCode::SEE_OTHER {
        return done;
    }
    let to = done
        .headers
        .iter()
        .find(|(n, _)| n == header::LOCATION)
        .map_or(next, |(_, v)| v.as_str())
        .to_owned();
    let mut r = Reply::json(
        StatusCode::OK,
        serde_json::json!({ "redirect": to, "recovery_codes": codes }).to_string(),
    );
    r.headers = done
        .headers
        .into_iter()
        .filter(|(n, _)| n != header::LOCATION)
        .collect();
    r
}

fn nonce() -> String {
    let mut n = [0u8; 16];
    getrandom::getrandom(&mut n).expect("the OS CSPRNG must be available");
    hex::encode(n)
}

fn base64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A passkey's name as kept: text, at most [`MAX_NAME`] bytes; "Passkey n" if empty.
fn clean_name(typed: &str, n: usize) -> String {
    let s: String = typed.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    let mut end = s.len().min(MAX_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let name = s[..end].to_owned();
    if name.is_empty() {
        format!("Passkey {n}")
    } else {
        name
    }
}
