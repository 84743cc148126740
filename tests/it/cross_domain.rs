//! One sign-in across unrelated domains through the binary: a browser that
//! signs in at `login.test` reaches `app.example.org` and
//! `grafana.example.com` after a hop through the login site, with a code in
//! the redirect that is not the session id, works once, only for its host
//! and only in the browser that started the hop; one logout or one admin
//! revoke ends every domain's session. Redirects after a sign-in reach the
//! hosts the routes name and no other (one case per open-redirect form).

use std::collections::HashMap;

use crate::support::*;

pub(crate) const ALICE: (&str, &str, &str, bool) = ("alice", "alice-password-1", "staff", false);
const LOGIN_SITE: &str = "login.test";
const APP: &str = "app.example.org";
const GRAFANA: &str = "grafana.example.com";

pub(crate) const ROUTES: &str = r#"
[auth]
users_file = "users.toml"

[auth.cross_domain]
login_host = "login.test"

[[route]]
path = "/"
hosts = ["login.test"]
access = "public"

[[route]]
path = "/"
hosts = ["app.example.org"]

[[route]]
path = "/"
hosts = ["*.example.com"]
"#;

pub(crate) fn store() -> &'static str {
    if redis_run() {
        ""
    } else {
        "\n[store]\nkind = \"memory\"\ncredentials_file = \"credentials.json\"\n"
    }
}

fn start(backend: &Backend) -> Gate {
    Gate::start_with(
        &standard_config(backend.addr, &format!("{ROUTES}{}", store())),
        &[("users.toml", &users_file(&[ALICE]))],
        &[("TEST_SECRET", SECRET)],
    )
}

/// A browser: a cookie jar per host, following redirects across hosts
/// (every host is the one gate; `Host` says which).
#[derive(Default)]
struct Browser {
    jars: HashMap<String, Jar>,
}

impl Browser {
    fn jar(&mut self, host: &str) -> &mut Jar {
        self.jars.entry(host.to_owned()).or_default()
    }

    fn get(&mut self, gate: &Gate, host: &str, target: &str) -> Resp {
        let req = gate.get(target).host(host).browser();
        self.jar(host).send(req)
    }

    fn post(&mut self, gate: &Gate, host: &str, target: &str, pairs: &[(&str, &str)]) -> Resp {
        let req = gate
            .req("POST", target)
            .host(host)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &format!("http://{host}"))
            .body(&form(pairs));
        self.jar(host).send(req)
    }

    /// Follow redirects from `resp` (sent to `host`) until an answer that is
    /// not one; every hop's (host, target) is recorded.
    fn follow(
        &mut self,
        gate: &Gate,
        mut host: String,
        mut resp: Resp,
        trail: &mut Vec<String>,
    ) -> (String, Resp) {
        for _ in 0..10 {
            let Some(location) = onward(&resp) else {
                return (host, resp);
            };
            let target = match location.strip_prefix("http://") {
                Some(rest) => {
                    let (h, t) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    host = h.to_owned();
                    t.to_owned()
                }
                None => location.clone(),
            };
            trail.push(format!("{host}{target}"));
            resp = self.get(gate, &host, &target);
        }
        panic!("more than 10 redirects: {trail:#?}");
    }

    /// Visit `target` on `host` and follow every redirect.
    fn visit(&mut self, gate: &Gate, host: &str, target: &str) -> (String, Resp, Vec<String>) {
        let mut trail = Vec::new();
        let resp = self.get(gate, host, target);
        let (at, resp) = self.follow(gate, host.to_owned(), resp, &mut trail);
        (at, resp, trail)
    }

    /// Sign in on the login page `resp` is (at the login site), and follow on.
    fn sign_in(&mut self, gate: &Gate, login_page: &Resp) -> (String, Resp, Vec<String>) {
        let next = between(&login_page.body, r#"name="next" value=""#, "\"").replace("&amp;", "&");
        let resp = self.post(
            gate,
            LOGIN_SITE,
            "/.sessiongate/login",
            &[
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("next", &next),
            ],
        );
        assert_eq!(resp.status, 303, "{resp:#?}");
        let mut trail = Vec::new();
        let (at, resp) = self.follow(gate, LOGIN_SITE.to_owned(), resp, &mut trail);
        (at, resp, trail)
    }

    fn me(&mut self, gate: &Gate, host: &str) -> Resp {
        let req = gate.get("/.sessiongate/me").host(host).api();
        self.jar(host).send(req)
    }
}

/// Where `resp` sends the browser on: a redirect's `Location`, or the URL of
/// a page that moves on by itself (`<meta http-equiv="refresh">`).
fn onward(resp: &Resp) -> Option<String> {
    if matches!(resp.status, 302 | 303) {
        return resp.header("location").map(str::to_owned);
    }
    let meta = resp
        .body
        .split(r#"http-equiv="refresh" content="0;url="#)
        .nth(1)?;
    Some(meta[..meta.find('"')?].replace("&amp;", "&"))
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).expect("closed")]
}

/// A browser signed in at the login site and on `APP` through a hop;
/// returns it with the landing URL the login site sent it to.
fn signed_in(gate: &Gate) -> (Browser, String) {
    let mut b = Browser::default();
    let (at, page, trail) = b.visit(gate, APP, "/page?x=1");
    assert_eq!(at, LOGIN_SITE, "to the login site for the form: {trail:#?}");
    assert_eq!(page.status, 200, "{page:#?}");
    assert!(page.body.contains(r#"name="password""#), "{}", page.body);
    assert!(
        b.jar(APP).has("__Host-sg_hop"),
        "the hop cookie stays with the app's host"
    );
    let (at, resp, trail) = b.sign_in(gate, &page);
    assert_eq!(at, APP, "{trail:#?}");
    assert_eq!(resp.status, 200, "{resp:#?}\n{trail:#?}");
    let landing = trail
        .iter()
        .find(|t| t.contains("/hop/land?code="))
        .unwrap_or_else(|| panic!("no landing: {trail:#?}"))
        .clone();
    assert!(
        trail.last().unwrap().ends_with("/page?x=1"),
        "back where it was going: {trail:#?}"
    );
    assert!(!b.jar(APP).has("__Host-sg_hop"), "the hop cookie is spent");
    (b, landing)
}

#[test]
fn one_sign_in_reaches_every_domain_and_one_logout_ends_them_all() {
    let backend = Backend::app();
    let gate = start(&backend);
    let (mut b, landing) = signed_in(&gate);
    assert_eq!(backend.last().one("x-user"), Some("alice"));
    assert_eq!(backend.last().one("host"), Some(APP));

    // Each domain has a cookie of its own, and the code is neither of them.
    let login_cookie = b.jar(LOGIN_SITE).only("__Host-sid");
    let app_cookie = b.jar(APP).only("__Host-sid");
    assert_ne!(login_cookie, app_cookie);
    for c in [&login_cookie, &app_cookie] {
        let id = c.split_once('=').unwrap().1.split('.').next().unwrap();
        assert!(
            !landing.contains(id),
            "a session id in the redirect: {landing}"
        );
    }

    // A second domain needs no password: the login site answers at once.
    let (at, resp, trail) = b.visit(&gate, GRAFANA, "/d/1");
    assert_eq!((at.as_str(), resp.status), (GRAFANA, 200), "{trail:#?}");
    assert!(
        !trail
            .iter()
            .any(|t| t.starts_with("login.test/.sessiongate/login")),
        "no form this time: {trail:#?}"
    );
    for host in [LOGIN_SITE, APP, GRAFANA] {
        assert_eq!(b.me(&gate, host).json()["user"], "alice", "{host}");
    }
    // The login page of a host already signed in goes on, and never ends
    // the sign-in it belongs to (a link to it from anywhere is harmless).
    let again = b.get(&gate, APP, "/.sessiongate/login?next=/y");
    assert_eq!(again.status, 303, "{again:#?}");
    assert_eq!(again.header("location"), Some("/y"));
    for host in [LOGIN_SITE, APP, GRAFANA] {
        assert_eq!(
            b.me(&gate, host).status,
            200,
            "{host} after a second look at the login page"
        );
    }

    // One logout, on any domain, ends the sign-in on every domain.
    let out = b.post(&gate, APP, "/.sessiongate/logout", &[]);
    assert_eq!(out.status, 303, "{out:#?}");
    for host in [LOGIN_SITE, APP, GRAFANA] {
        assert_eq!(b.me(&gate, host).status, 401, "{host} after logout");
    }
    // And the next visit asks for the password again.
    let (at, page, _) = b.visit(&gate, GRAFANA, "/d/1");
    assert_eq!((at.as_str(), page.status), (LOGIN_SITE, 200));
    assert!(page.body.contains(r#"name="password""#));
}

#[test]
fn an_admin_revoke_of_one_domains_session_ends_the_whole_sign_in() {
    let backend = Backend::app();
    let gate = start(&backend);
    let (mut b, _) = signed_in(&gate);
    let (_, resp, _) = b.visit(&gate, GRAFANA, "/");
    assert_eq!(resp.status, 200);
    // Another sign-in of the same user (another browser) is not part of it.
    let (mut other, _) = signed_in(&gate);

    let mine = b
        .jar(APP)
        .send(gate.get("/.sessiongate/sessions").host(APP).api())
        .json();
    let sessions = mine["sessions"].as_array().unwrap();
    assert_eq!(
        sessions.len(),
        5,
        "two browsers, five domain sessions: {mine:#}"
    );
    let key = sessions.iter().find(|s| s["current"] == true).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = gate.admin("DELETE", &format!("/sessions/{key}")).send();
    assert_eq!(revoked.status, 204, "{revoked:#?}");
    for host in [LOGIN_SITE, APP, GRAFANA] {
        assert_eq!(b.me(&gate, host).status, 401, "{host} after the revoke");
    }
    for host in [LOGIN_SITE, APP] {
        assert_eq!(
            other.me(&gate, host).status,
            200,
            "the other browser's {host}"
        );
    }
}

#[test]
fn a_code_works_once_for_its_host_in_the_browser_that_asked() {
    let backend = Backend::app();
    let gate = start(&backend);

    // Hop out from APP, keeping the hop cookie as it was before landing.
    let mut b = Browser::default();
    let (_, page, _) = b.visit(&gate, APP, "/page");
    let hop_cookie = b.jar(APP).only("__Host-sg_hop");
    let resp = b.post(
        &gate,
        LOGIN_SITE,
        "/.sessiongate/login",
        &[
            ("username", ALICE.0),
            ("password", ALICE.1),
            (
                "next",
                &between(&page.body, r#"name="next" value=""#, "\"").replace("&amp;", "&"),
            ),
        ],
    );
    // The login site's answer names the landing; do not follow it yet.
    let back = b.get(&gate, LOGIN_SITE, resp.header("location").unwrap());
    // A page that moves on, not a redirect: a cross-origin 303 after our
    // form's POST would break the form's CSP `form-action 'self'`.
    assert_eq!(back.status, 200, "{back:#?}");
    let landing = onward(&back).expect("a page that moves on");
    let target = landing
        .strip_prefix(&format!("http://{APP}"))
        .expect("to the app's host")
        .to_owned();
    let land =
        |host: &str, cookie: &str| gate.get(&target).host(host).browser().cookie(cookie).send();

    // On another host (even one the routes name): refused.
    let wrong_host = land(GRAFANA, &hop_cookie);
    assert_eq!(wrong_host.status, 400, "{wrong_host:#?}");
    assert!(wrong_host.session_cookie().is_none());
    // In another browser (its own hop, another state): refused, so an
    // attacker's code cannot sign a victim into the attacker's account.
    let mut victim = Browser::default();
    victim.visit(&gate, APP, "/page");
    let victims_hop = victim.jar(APP).only("__Host-sg_hop");
    let csrf = land(APP, &victims_hop);
    assert_eq!(csrf.status, 400, "{csrf:#?}");
    assert!(csrf.session_cookie().is_none());
    // Without any hop cookie: refused.
    let bare = gate.get(&target).host(APP).browser().send();
    assert_eq!(bare.status, 400);
    // A forged code (one character changed): refused.
    let mut forged = target.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let forged = gate
        .get(&forged)
        .host(APP)
        .browser()
        .cookie(&hop_cookie)
        .send();
    assert_eq!(forged.status, 400);
    // The right browser: in, once.
    let first = land(APP, &hop_cookie);
    assert_eq!(first.status, 303, "{first:#?}");
    assert_eq!(first.header("location"), Some("/page"));
    let cookie = first.session_cookie().expect("a session on the app's host");
    let page = gate.get("/page").host(APP).cookie(&cookie).api().send();
    assert_eq!(page.status, 200);
    let replay = land(APP, &hop_cookie);
    assert_eq!(replay.status, 400, "{replay:#?}");
    assert!(replay.body.contains("cannot be used"), "{}", replay.body);
    assert!(replay.session_cookie().is_none());
}

#[test]
fn the_login_site_hops_only_to_hosts_the_routes_name() {
    let backend = Backend::app();
    let gate = start(&backend);
    let (mut b, _) = signed_in(&gate);
    let state = "0123456789abcdef0123456789abcdef";
    for to in [
        "evil.test",
        "login.test",
        "x%2F%40evil.test%23.example.com",
        "APP.example.org",
        "example.com",
    ] {
        let resp = b.get(
            &gate,
            LOGIN_SITE,
            &format!("/.sessiongate/hop?to={to}&state={state}"),
        );
        assert_eq!(resp.status, 404, "{to}: {resp:#?}");
        assert!(resp.header("location").is_none());
    }
    // A bad state is refused too; a good one gets a code.
    let bad = b.get(
        &gate,
        LOGIN_SITE,
        &format!("/.sessiongate/hop?to={APP}&state=x"),
    );
    assert_eq!(bad.status, 404);
    let good = b.get(
        &gate,
        LOGIN_SITE,
        &format!("/.sessiongate/hop?to={APP}&state={state}"),
    );
    assert_eq!(good.status, 200);
    assert!(onward(&good)
        .unwrap()
        .starts_with("http://app.example.org/.sessiongate/hop/land?code="));
}

/// After a sign-in, `next` may name any host the routes name, and no other:
/// one case per form an open redirect takes.
#[test]
fn a_sign_in_sends_the_browser_to_configured_hosts_only() {
    let backend = Backend::app();
    let gate = start(&backend);
    let sign_in = |next: &str| {
        let mut b = Browser::default();
        let resp = b.post(
            &gate,
            LOGIN_SITE,
            "/.sessiongate/login",
            &[("username", ALICE.0), ("password", ALICE.1), ("next", next)],
        );
        onward(&resp).unwrap_or_else(|| panic!("{next}: {resp:#?}"))
    };
    for (next, want) in [
        (
            "http://app.example.org/x?y=1",
            "http://app.example.org/x?y=1",
        ),
        (
            "http://grafana.example.com/d",
            "http://grafana.example.com/d",
        ),
        ("/local", "/local"),
        // another host
        ("http://evil.test/", "/"),
        ("http://app.example.org.evil.test/", "/"),
        // scheme-relative
        ("//evil.test/", "/"),
        ("//app.example.org/", "/"),
        // backslashes
        ("http:\\\\evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("http://evil.test\\@app.example.org/", "/"),
        // user info
        ("http://app.example.org@evil.test/", "/"),
        ("http://u:p@app.example.org/", "/"),
        // a look-alike internationalised name (Cyrillic a)
        ("http://\u{430}pp.example.org/", "/"),
        // another scheme than the request's
        ("https://app.example.org/", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        assert_eq!(sign_in(next), want, "{next:?}");
    }
}

#[test]
fn check_refuses_cross_domain_settings_that_cannot_work() {
    let dir = scratch_dir();
    std::fs::write(dir.join("users.toml"), users_file(&[ALICE])).unwrap();
    let backend = Backend::app();
    for (config, want) in [
        (
            ROUTES.replace(r#"login_host = "login.test""#, r#"login_host = "sso.test""#),
            r#"auth.cross_domain.login_host: "sso.test" is no host a route names"#,
        ),
        (
            ROUTES.replace(
                r#"login_host = "login.test""#,
                r#"login_host = "Login.Test""#,
            ),
            "auth.cross_domain.login_host: must be a host name in canonical form",
        ),
        (
            ROUTES.to_owned(),
            "auth.cross_domain: needs a credential store",
        ),
    ] {
        let text = "[server]\nlisten = [\"127.0.0.1:1\"]\n".to_owned()
            + &standard_config(backend.addr, &config).replace(
                "{ env = \"TEST_SECRET\" }",
                &format!("{{ file = \"{}\" }}", dir.join("secret").display()),
            );
        std::fs::write(dir.join("secret"), SECRET).unwrap();
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
        let out = sessiongate(&["check"], &dir.join("proxy.toml"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{want}:\n{err}"
        );
    }
}
