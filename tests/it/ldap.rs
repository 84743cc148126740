//! Sign-in with a directory account (`[auth.ldap]`) through the binary,
//! against a real OpenLDAP server (`slapd`) started with a throwaway config
//! and data: groups become roles, an unknown name, a wrong password, a
//! disabled account and an empty password get one answer, typed filter
//! characters never widen the search, the users file wins for its names,
//! failures throttle as with the users file, and a directory that is down is
//! a clear failure (503), never a sign-in.

use crate::support::*;

const LOGIN: &str = "/.sessiongate/login";
/// A user name made of every character an LDAP filter treats specially.
const ODD: &str = r"x*(y)\z";
const FACTOR_KEY: &str = "ldap-test-factor-key-0123456789abcdef0123456";

fn directory() -> Slapd {
    Slapd::start(&format!(
        "{}{}{}{}{}{}",
        ldap_user("alice", "alice-directory-pw", None),
        ldap_user("carol", "carol-directory-pw", Some("disabled")),
        ldap_user("bob", "bob-directory-pw", None),
        ldap_user(ODD, "odd-directory-pw", None),
        ldap_group("staff", &["alice", ODD]),
        ldap_group("admins", &["alice"]),
    ))
}

/// Display names: one the identity alphabet takes, one it refuses (a comma).
fn named_directory() -> Slapd {
    let slapd = directory();
    slapd.add(&format!(
        "dn: uid=alice,ou=people,{LDAP_BASE}\nchangetype: modify\nadd: displayName\ndisplayName: Alice Liddell\n\n\
         dn: uid=dana,ou=people,{LDAP_BASE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: dana\ncn: dana\nsn: dana\nuserPassword: dana-directory-pw\ndisplayName: Doe, Dana\n\n"
    ));
    slapd
}

fn gate(backend: &Backend, slapd: &Slapd) -> Gate {
    gate_with(backend, slapd, "")
}

/// [`gate`] with more config after the LDAP section.
fn gate_with(backend: &Backend, slapd: &Slapd, more: &str) -> Gate {
    let ldap = format!(
        r#"
[auth]
users_file = "users.toml"
max_failures = 3

[auth.ldap]
url = "ldap://{addr}"
allow_plain = true
bind_dn = "{LDAP_SERVICE}"
bind_password = {{ env = "TEST_LDAP_PASSWORD" }}
base_dn = "ou=people,{LDAP_BASE}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{user}})(!(employeeType=disabled)))"
roles_map = {{ "admins" = "admin" }}
timeout = "2s"
{more}
"#,
        addr = slapd.addr
    );
    Gate::start_with(
        &standard_config(backend.addr, &ldap),
        &[
            (
                "users.toml",
                &users_file(&[("bob", "bob-file-password", "", false)]),
            ),
            ("factor.key", FACTOR_KEY),
        ],
        &[
            ("TEST_SECRET", SECRET),
            ("TEST_LDAP_PASSWORD", LDAP_SERVICE_PASSWORD),
        ],
    )
}

fn sign_in(gate: &Gate, user: &str, password: &str) -> Resp {
    Jar::default().post(
        gate,
        LOGIN,
        &[("username", user), ("password", password), ("next", "/app")],
    )
}

#[test]
fn a_directory_account_signs_in_with_its_groups_as_roles() {
    let (backend, slapd) = (Backend::app(), directory());
    let gate = gate(&backend, &slapd);
    let ok = sign_in(&gate, "Alice", "alice-directory-pw");
    assert_eq!(ok.status, 303, "{ok:#?}");
    assert_eq!(ok.header("location"), Some("/app"));
    let cookie = ok.session_cookie().expect("a session");
    let admin = gate.get("/admin").cookie(&cookie).api().send();
    assert_eq!(admin.status, 200, "{admin:#?}");
    let seen = backend.last();
    // The name as the directory spells it, whatever the case typed.
    assert_eq!(seen.one("x-user"), Some("alice"));
    let mut roles: Vec<&str> = seen.one("x-user-roles").unwrap().split(',').collect();
    roles.sort_unstable();
    assert_eq!(roles, ["admin", "staff"]);

    // An unknown name, a wrong password, a disabled account and an empty
    // password: one answer, and no session.
    let refused = [
        sign_in(&gate, "nobody", "alice-directory-pw"),
        sign_in(&gate, "alice", "wrong-password"),
        sign_in(&gate, "carol", "carol-directory-pw"),
        sign_in(&gate, "alice", ""),
    ];
    for r in &refused {
        assert_eq!(r.status, 401, "{r:#?}");
        assert!(
            r.body.contains("Invalid username or password."),
            "{}",
            r.body
        );
        assert!(r.session_cookie().is_none());
    }
}

#[test]
fn typed_names_cannot_widen_the_directory_search() {
    let (backend, slapd) = (Backend::app(), directory());
    let gate = gate(&backend, &slapd);
    // Filter characters typed as a name match no one, not everyone.
    for typed in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\0",
        "ali\\2ace",
    ] {
        let r = sign_in(&gate, typed, "alice-directory-pw");
        assert_eq!(r.status, 401, "{typed:?}: {r:#?}");
    }
    // A name made of them is found exactly, and is the user upstream.
    let ok = sign_in(&gate, ODD, "odd-directory-pw");
    assert_eq!(ok.status, 303, "{ok:#?}");
    let cookie = ok.session_cookie().unwrap();
    assert_eq!(gate.get("/app").cookie(&cookie).api().send().status, 200);
    assert_eq!(backend.last().one("x-user"), Some(ODD));
    assert_eq!(backend.last().one("x-user-roles"), Some("staff"));
}

#[test]
fn the_users_file_decides_for_the_names_it_has() {
    let (backend, slapd) = (Backend::app(), directory());
    let gate = gate(&backend, &slapd);
    assert_eq!(sign_in(&gate, "bob", "bob-directory-pw").status, 401);
    assert_eq!(sign_in(&gate, "bob", "bob-file-password").status, 303);
}

#[test]
fn directory_failures_are_throttled_like_the_users_files() {
    let (backend, slapd) = (Backend::app(), directory());
    let gate = gate(&backend, &slapd);
    for _ in 0..3 {
        assert_eq!(sign_in(&gate, "alice", "wrong-password").status, 401);
    }
    let locked = sign_in(&gate, "alice", "alice-directory-pw");
    assert_eq!(locked.status, 429, "{locked:#?}");
    assert!(locked.header("retry-after").is_some());
}

#[test]
fn a_directory_that_is_down_is_a_clear_failure_never_a_sign_in() {
    let (backend, mut slapd) = (Backend::app(), directory());
    let gate = gate(&backend, &slapd);
    slapd.stop();
    let down = sign_in(&gate, "alice", "alice-directory-pw");
    assert_eq!(down.status, 503, "{down:#?}");
    assert!(
        down.body.contains("The directory cannot be reached"),
        "{}",
        down.body
    );
    assert!(down.session_cookie().is_none());
    // Not a failed password: the throttle did not count it.
    for _ in 0..3 {
        assert_eq!(sign_in(&gate, "alice", "alice-directory-pw").status, 503);
    }
    // The users file still works meanwhile.
    assert_eq!(sign_in(&gate, "bob", "bob-file-password").status, 303);
    slapd.restart();
    let back = sign_in(&gate, "alice", "alice-directory-pw");
    assert_eq!(back.status, 303, "{back:#?}");
}

/// Every credential asks the same factors: Basic with a directory password
/// is refused to an account whose roles require a second factor.
#[test]
fn basic_asks_a_directory_account_the_same_factors() {
    use base64::Engine;
    let (backend, slapd) = (Backend::app(), directory());
    let gate = gate_with(
        &backend,
        &slapd,
        r#"
[auth.second_factor]
mode = "required"
required_roles = ["admin"]
keys = [{ file = "factor.key" }]

[store]
kind = "memory"
credentials_file = "credentials.json"

[[route]]
path = "/basic"
credentials = ["basic"]
"#,
    );
    let basic = |user: &str, password: &str| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        gate.get("/basic/x")
            .header("Authorization", &format!("Basic {pair}"))
            .send()
            .status
    };
    // alice is an admin (the admins group): a factor is required of her.
    assert_eq!(basic("alice", "alice-directory-pw"), 401);
    // The odd user is staff only: the password is enough.
    assert_eq!(basic(ODD, "odd-directory-pw"), 200);
    assert_eq!(backend.last().one("x-user"), Some(ODD));
}

/// The directory's `mail` and `displayName` reach the backend as
/// `X-User-Email` and `X-User-Name`, and a named attribute under its header;
/// a value outside the identity alphabet is left out; a client's own copies
/// never reach the backend.
#[test]
fn directory_attributes_reach_the_backend_as_claims() {
    let (backend, slapd) = (Backend::app(), named_directory());
    let gate = gate_with(
        &backend,
        &slapd,
        "\n[identity]\nclaim_headers = { \"X-User-Surname\" = \"sn\" }\n",
    );
    let alice = sign_in(&gate, "alice", "alice-directory-pw")
        .session_cookie()
        .unwrap();
    let resp = gate
        .get("/app")
        .cookie(&alice)
        .header("X-User-Email", "root@evil.test")
        .header("x_user_department", "spoofed")
        .api()
        .send();
    assert_eq!(resp.status, 200);
    let seen = backend.last();
    assert_eq!(seen.all("x-user-email"), ["alice@example.test"]);
    assert_eq!(seen.one("x-user-name"), Some("Alice Liddell"));
    assert_eq!(seen.one("x-user-surname"), Some("alice"));
    assert_eq!(seen.one("x-user-department"), None);
    assert_eq!(seen.one("x_user_department"), None);
    // A display name with a comma would read as a list: left out.
    let dana = sign_in(&gate, "dana", "dana-directory-pw")
        .session_cookie()
        .unwrap();
    assert_eq!(gate.get("/app").cookie(&dana).api().send().status, 200);
    assert_eq!(backend.last().one("x-user"), Some("dana"));
    assert_eq!(backend.last().one("x-user-name"), None);
    // /check answers with them too.
    let check = gate.get("/.sessiongate/check").cookie(&alice).send();
    assert_eq!(check.header("x-user-name"), Some("Alice Liddell"));
    // A client's copies never pass, signed in or not, on any route.
    gate.get("/public").header("X-User-Name", "Mallory").send();
    assert_eq!(backend.last().one("x-user-name"), None);
}
