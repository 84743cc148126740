//! Rules by client network through the binary: a path public from the
//! office network and behind a login elsewhere, an admin path reachable
//! only from the VPN range (404 elsewhere), the client's address taken
//! through trusted proxies only, so an `X-Forwarded-For` from anyone else
//! claims nothing.

use crate::support::*;

const ROUTES: &str = r#"
[[route]]
path = "/office"
networks = ["10.1.0.0/16"]
access = "public"

[[route]]
path = "/office"

[[route]]
path = "/ops"
networks = ["10.8.0.0/16", "fd00::/8"]
roles = ["admin"]

[[route]]
path = "/ops"
access = "deny"
"#;

fn gate(backend: &Backend, trusted: bool) -> Gate {
    let server = if trusted {
        "trusted_proxies = [\"127.0.0.1/32\"]\n"
    } else {
        ""
    };
    Gate::start(&format!(
        "{server}{}",
        standard_config(backend.addr, ROUTES)
    ))
}

#[test]
fn a_path_is_public_from_the_office_and_needs_a_login_elsewhere() {
    let backend = Backend::app();
    let gate = gate(&backend, true);
    let from = |ip: &str| {
        gate.get("/office/wiki")
            .api()
            .header("X-Forwarded-For", ip)
            .send()
            .status
    };
    assert_eq!(from("10.1.2.3"), 200);
    assert_eq!(from("10.2.2.3"), 401);
    // The loopback peer itself, with no forwarded address, is not the office.
    assert_eq!(gate.get("/office/wiki").api().send().status, 401);
}

#[test]
fn an_admin_path_is_reachable_from_the_vpn_only() {
    let backend = Backend::app();
    let gate = gate(&backend, true);
    let admin = gate.login("root", "admin");
    let from = |ip: &str, cookie: Option<&str>| {
        let mut req = gate.get("/ops/deploy").api().header("X-Forwarded-For", ip);
        if let Some(c) = cookie {
            req = req.cookie(c);
        }
        req.send().status
    };
    assert_eq!(from("10.8.1.1", Some(&admin)), 200);
    assert_eq!(from("fd00::5", Some(&admin)), 200);
    // From the VPN the rule still wants its role.
    assert_eq!(from("10.8.1.1", None), 401);
    let user = gate.login("bob", "user");
    assert_eq!(from("10.8.1.1", Some(&user)), 403);
    // From anywhere else: nobody, admin or not.
    assert_eq!(from("10.1.2.3", Some(&admin)), 404);
    assert_eq!(from("203.0.113.9", None), 404);
}

#[test]
fn a_forwarded_address_from_an_untrusted_peer_claims_no_network() {
    let backend = Backend::app();
    let gate = gate(&backend, false);
    let office = gate
        .get("/office/wiki")
        .api()
        .header("X-Forwarded-For", "10.1.2.3")
        .send();
    assert_eq!(office.status, 401, "{office:#?}");
    let admin = gate.login("root", "admin");
    let ops = gate
        .get("/ops")
        .api()
        .cookie(&admin)
        .header("X-Forwarded-For", "10.8.1.1")
        .send();
    assert_eq!(ops.status, 404, "{ops:#?}");
}
