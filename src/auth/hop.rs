//! One sign-in across unrelated domains (`[auth.cross_domain]`): a browser
//! signed in at the login site (`login.example.com`) is signed in on
//! `app.example.org` after a hop there and back, and each domain keeps a
//! cookie of its own.
//!
//! 1. `GET <p>/login` on a host other than the login site does not show a
//!    form: it sets a hop cookie there (a random `state` and where to go
//!    back to; signed, `HttpOnly`, `SameSite=Lax` so the way back carries it,
//!    10 minutes) and sends the browser to the login site's `<p>/hop?to=<this
//!    host>&state=…`.
//! 2. The login site's `<p>/hop` asks for a sign-in if its session has none,
//!    then sends the browser back to `https://<to><p>/hop/land?code=…`. `to`
//!    must be a host the routes name, so the hop cannot carry a sign-in to
//!    anyone else.
//! 3. The code is not the session id: it is a record signed with the session
//!    secrets, naming the login site's session by its store key (a hash that
//!    cannot be used as a cookie), the host it is for and the `state` it
//!    answers. It lives one minute and is spent in the credential store on
//!    first use, on every instance.
//! 4. `<p>/hop/land` takes a code only for its own host, only with the hop
//!    cookie whose `state` it answers (so a code cannot sign someone else's
//!    browser into the account it was made for: login CSRF), and only while
//!    the login site's session is alive. It opens a new session there, with
//!    a new id, the same user, roles and second factor, none of the other
//!    site's data, and the same sign-in label ([`Session::login`]): logout on
//!    any domain, an admin's revoke or the user's own end them together.
//!
//! [`Session::login`]: crate::session::Session::login

use std::time::Duration;

use http::StatusCode;
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::endpoints::{query_param, unavailable};
use super::Auth;
use crate::http::html::{escape, page};
use crate::http::redirect::{encode_next, safe_next};
use crate::http::reply::Reply;
use crate::session::cookie::{CookieAttrs, SameSite};
use crate::session::manager::{Client, RequestSession, SessionManager};
use crate::session::signing::{self, Secret};
use crate::session::{SessionKey, SessionStore};

/// `[auth.cross_domain]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrossDomain {
    /// The host people sign in on (canonical, no port); every other host
    /// the routes name hops there.
    pub login_host: String,
}

/// The host a request is for, canonical (the proxy's `host`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site<'a> {
    pub name: &'a str,
    /// The port, when not the scheme's default.
    pub port: Option<u16>,
}

/// Keep the MACs of the code and of the hop cookie apart from each other
/// and from every other use of the session secrets.
const CODE_LABEL: &[u8] = b"sessiongate cross-domain code v1\0";
const HOP_LABEL: &[u8] = b"sessiongate cross-domain hop v1\0";
/// A code is used within a second of being made; a minute allows a slow link.
const CODE_LIFETIME: u64 = 60;
/// Time to sign in at the login site before the way back is forgotten.
const HOP_LIFETIME: Duration = Duration::from_secs(600);
/// A longer code or cookie is not ours.
const MAX_LEN: usize = 2048;

/// The code in the redirect back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Code {
    /// The login site's session, by its store key (hex).
    key: String,
    /// The host it may be used on.
    to: String,
    /// The hop cookie it answers.
    state: String,
    /// Unix seconds after which it is refused.
    expires: u64,
    /// 128 random bits, spent on first use.
    nonce: String,
}

/// The hop cookie, on the host that sent the browser away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hop {
    state: String,
    /// Where to go once back (a local path, checked by `safe_next`).
    next: String,
    expires: u64,
}

/// Why a code was refused (logged; the browser sees one page for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    NoHop,
    BadCode,
    Expired,
    OtherHost,
    OtherState,
    Replayed,
    LoginEnded,
}

impl Auth {
    /// Whether `GET <p>/login` on `site` hops to the login site instead of
    /// showing a form.
    pub(crate) fn hops_from(&self, site: Option<Site<'_>>) -> bool {
        matches!((&self.config.cross_domain, site), (Some(c), Some(s)) if s.name != c.login_host)
    }

    /// `GET <p>/login` on a host other than the login site: the hop cookie,
    /// and off to the login site.
    pub(crate) fn hop_out(
        &self,
        req: &RequestHeader,
        site: Site<'_>,
        client: &Client,
        secrets: &[Secret],
        session_cookie: &CookieAttrs,
    ) -> Reply {
        let Some(cross) = &self.config.cross_domain else {
            return Reply::problem(crate::http::problem::Problem::NotFound);
        };
        let hop = Hop {
            state: random_hex(),
            next: safe_next(query_param(req, "next").as_deref()).into_owned(),
            expires: now_secs() + HOP_LIFETIME.as_secs(),
        };
        let cookie = hop_cookie(session_cookie).set_cookie(
            &signing::seal_record(HOP_LABEL, &secrets[0], &hop),
            client.https,
        );
        let mut to = String::new();
        to.extend(form_urlencoded::byte_serialize(site.name.as_bytes()));
        let location = format!(
            "{}/hop?to={to}&state={}",
            origin(
                client.https,
                &cross.login_host,
                site.port,
                &self.config.prefix
            ),
            hop.state
        );
        // A page, not a redirect: the way here may have begun with one of
        // our forms (a logout, then a protected page), and a cross-origin
        // 303 in that chain would break the form's CSP `form-action 'self'`.
        Reply::onward_page(&location, "Signing in").with(http::header::SET_COOKIE, cookie)
    }

    /// `GET <p>/hop?to=<host>&state=…` on the login site: a sign-in first if
    /// there is none, then back to `to` with a code.
    pub(crate) async fn hop_issue<S: SessionStore>(
        &self,
        req: &RequestHeader,
        site: Option<Site<'_>>,
        client: &Client,
        cur: &RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let (Some(cross), Some(site)) = (&self.config.cross_domain, site) else {
            return not_found();
        };
        let (to, state) = (query_param(req, "to"), query_param(req, "state"));
        let (Some(to), Some(state)) = (to, state) else {
            return not_found();
        };
        if site.name != cross.login_host
            || to == cross.login_host
            || !self.config.sites.serves(&to)
            || !is_state(&state)
        {
            tracing::warn!(target: "auth", to = %to, "cross-domain sign-in refused: not a host the routes name");
            return not_found();
        }
        // A session from before sign-ins had labels cannot be joined: ending
        // it could not end the others. It signs in again.
        let Some(s) = cur
            .session
            .as_deref()
            .filter(|s| s.user().is_some() && s.login != 0)
        else {
            // Sign in here first, then come back to this very step.
            let mut login = format!("{}?next=", self.config.login_url);
            encode_next(&mut login, req.uri.path(), req.uri.query());
            return Reply::see_other(&login);
        };
        let code = Code {
            key: s.key.to_hex(),
            to,
            state,
            expires: now_secs() + CODE_LIFETIME,
            nonce: random_hex(),
        };
        let sealed = signing::seal_record(CODE_LABEL, &sessions.config().secrets[0], &code);
        tracing::info!(target: "auth", user = s.user().unwrap_or_default(), to = %code.to, "cross-domain sign-in: code issued");
        // A page, not a redirect: this step may follow the login form's POST.
        Reply::onward(&format!(
            "{}/hop/land?code={sealed}",
            origin(client.https, &code.to, site.port, &self.config.prefix)
        ))
    }

    /// `GET <p>/hop/land?code=…` on the host that sent the browser away: a
    /// session of the same sign-in, and on to where the browser was going.
    pub(crate) async fn hop_land<S: SessionStore>(
        &self,
        req: &RequestHeader,
        site: Option<Site<'_>>,
        client: &Client,
        cur: &mut RequestSession,
        sessions: &SessionManager<S>,
    ) -> Reply {
        let (Some(cross), Some(site)) = (&self.config.cross_domain, site) else {
            return not_found();
        };
        if site.name == cross.login_host {
            return not_found();
        }
        let attrs = hop_cookie(&sessions.config().cookie);
        // Cleared whatever happens: a hop is good for one landing.
        let clear = attrs.clear_cookie(client.https);
        let secrets = &sessions.config().secrets;
        let now = now_secs();
        let hop: Option<Hop> = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| crate::session::cookie::find(v, &attrs.name))
            .find_map(|v| signing::open_record(HOP_LABEL, secrets, v, MAX_LEN))
            .filter(|h: &Hop| now < h.expires);
        let next = hop
            .as_ref()
            .map_or_else(|| "/".to_owned(), |h| h.next.clone());
        let code = query_param(req, "code")
            .and_then(|c| signing::open_record::<Code>(CODE_LABEL, secrets, &c, MAX_LEN));
        let checked = match (hop, code) {
            (None, _) => Err(Refused::NoHop),
            (_, None) => Err(Refused::BadCode),
            (Some(hop), Some(code)) => self.check_code(&hop, &code, site, now).await.map(|()| code),
        };
        let login = match checked {
            Ok(code) => match SessionKey::from_hex(&code.key) {
                Some(key) => match sessions.store().peek(&key).await {
                    Ok(Some(s)) if s.user().is_some() => Ok(s),
                    Ok(_) => Err(Refused::LoginEnded),
                    Err(e) => return unavailable(&e).with(http::header::SET_COOKIE, clear),
                },
                None => Err(Refused::BadCode),
            },
            Err(why) => Err(why),
        };
        let login = match login {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(target: "auth", reason = ?why, host = %site.name, "cross-domain sign-in refused");
                return Reply::html(StatusCode::BAD_REQUEST, self.hop_failed_page(&next))
                    .with(http::header::SET_COOKIE, clear);
            }
        };
        if let Err(e) = sessions.join(cur, &login, client).await {
            return unavailable(&e).with(http::header::SET_COOKIE, clear);
        }
        tracing::info!(target: "auth", user = login.user().unwrap_or_default(), host = %site.name, "cross-domain sign-in");
        Reply::see_other(&next).with(http::header::SET_COOKIE, clear)
    }

    /// A code for this host, answering this browser's hop, in time, and
    /// never used before (spent now).
    async fn check_code(
        &self,
        hop: &Hop,
        code: &Code,
        site: Site<'_>,
        now: u64,
    ) -> Result<(), Refused> {
        if now >= code.expires {
            return Err(Refused::Expired);
        }
        if code.to != site.name {
            return Err(Refused::OtherHost);
        }
        if !bool::from(code.state.as_bytes().ct_eq(hop.state.as_bytes())) {
            return Err(Refused::OtherState);
        }
        let Some(home) = self.api_keys.as_ref().map(|k| k.home()) else {
            // `check` refuses cross_domain without a credential store.
            return Err(Refused::Replayed);
        };
        let token = format!("hop:{}", code.nonce);
        match home
            .first_use(&token, Duration::from_secs(CODE_LIFETIME + 60))
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refused::Replayed),
            Err(e) => {
                tracing::error!(error = %e, "credential store unavailable: cross-domain code refused");
                Err(Refused::Replayed)
            }
        }
    }

    fn hop_failed_page(&self, next: &str) -> String {
        let mut again = format!("{}?next=", self.config.login_url);
        encode_next(&mut again, next, None);
        page(
            "Sign-in link expired",
            &format!(
                r#"<h1>This sign-in link cannot be used</h1>
<p>It was used already, has expired, or was made for another browser.</p>
<p><a href="{}">Sign in again</a></p>"#,
                escape(&again)
            ),
        )
    }
}

/// The hop cookie beside the session cookie: `SameSite=Lax`, since the way
/// back from the login site is a cross-site navigation.
fn hop_cookie(session: &CookieAttrs) -> CookieAttrs {
    session.beside(hop_cookie_name(session), SameSite::Lax, HOP_LIFETIME)
}

/// The hop cookie's name beside a session cookie with `session`'s attributes.
pub(crate) fn hop_cookie_name(session: &CookieAttrs) -> &'static str {
    if session.name.starts_with("__Host-") {
        "__Host-sg_hop"
    } else {
        "sg_hop"
    }
}

/// `scheme://host[:port]<prefix>`.
fn origin(https: bool, host: &str, port: Option<u16>, prefix: &str) -> String {
    let scheme = if https { "https" } else { "http" };
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{prefix}"),
        None => format!("{scheme}://{host}{prefix}"),
    }
}

/// 32 lower-case hex digits, as `random_hex` makes them.
fn is_state(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 128 random bits in hex.
fn random_hex() -> String {
    let mut n = [0u8; 16];
    getrandom::getrandom(&mut n).expect("the OS CSPRNG must be available");
    hex::encode(n)
}

fn now_secs() -> u64 {
    crate::session::now_ms() / 1000
}

fn not_found() -> Reply {
    Reply::problem(crate::http::problem::Problem::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_and_a_hop_cookie_are_not_each_other() {
        let s = Secret::new(vec![7; 32]);
        let hop = Hop {
            state: random_hex(),
            next: "/".into(),
            expires: u64::MAX,
        };
        let sealed = signing::seal_record(HOP_LABEL, &s, &hop);
        assert_eq!(
            signing::open_record::<Hop>(HOP_LABEL, std::slice::from_ref(&s), &sealed, MAX_LEN),
            Some(hop)
        );
        assert!(signing::open_record::<Code>(
            CODE_LABEL,
            std::slice::from_ref(&s),
            &sealed,
            MAX_LEN
        )
        .is_none());
    }

    #[test]
    fn states_are_what_random_hex_makes() {
        assert!(is_state(&random_hex()));
        for bad in ["", "0", &"A".repeat(32), &"0".repeat(33), &"g".repeat(32)] {
            assert!(!is_state(bad), "{bad}");
        }
    }

    #[test]
    fn origins_carry_the_port_only_when_not_the_default() {
        assert_eq!(origin(true, "a.test", None, "/p"), "https://a.test/p");
        assert_eq!(
            origin(false, "a.test", Some(8080), "/p"),
            "http://a.test:8080/p"
        );
    }
}
