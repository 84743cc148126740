//! The backend's `X-Session-*` command parser: never panics, always removes
//! the commands, and a login it accepts is in the identity alphabet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingora::http::ResponseHeader;
use sessiongate::fuzzing::{check_role, check_user, take_commands};

const NAMES: [&str; 6] = [
    "X-Session-Login",
    "x_session_roles",
    "X-SESSION-DATA",
    "X-Session-Logout",
    "Set-Cookie",
    "X-Session-Other",
];

fuzz_target!(|data: &[u8]| {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    // Each chunk: a name picked by its first byte, the rest its value.
    for chunk in data.split(|&b| b == 0) {
        let Some((&pick, value)) = chunk.split_first() else {
            continue;
        };
        let name = NAMES[usize::from(pick) % NAMES.len()];
        let Ok(value) = http::HeaderValue::from_bytes(value) else {
            continue;
        };
        let _ = resp.append_header(name, value);
    }
    if let Some(commands) = take_commands(&mut resp, "sid") {
        if let Some(login) = commands.login {
            assert!(check_user(&login.user).is_ok(), "{:?}", login.user);
            assert!(
                login.roles.iter().all(|r| check_role(r).is_ok()),
                "{:?}",
                login.roles
            );
        }
    }
    assert!(resp
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("x-session-")));
});
