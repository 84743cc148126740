//! The express-session life cycle of one request against the memory
//! store: which `Set-Cookie` goes out, and what the store holds after.

use super::testing::{manager, options};
use super::*;
use crate::session::memory::MemoryStore;

/// The request headers of a browser that holds `set_cookie`'s cookie.
fn holding(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, pair.parse().unwrap());
    h
}

async fn logged_in(m: &SessionManager<MemoryStore>) -> (RequestSession, String) {
    let mut cur = RequestSession::default();
    m.login(
        &mut cur,
        "alice".into(),
        vec!["user".into()],
        &Client::default(),
    )
    .await
    .unwrap();
    let cookie = m
        .set_cookie(&cur, false)
        .expect("a new session sends its cookie");
    (cur, cookie)
}

#[tokio::test]
async fn which_set_cookie_a_response_gets() {
    // (rolling, changed in this request, https) -> (a cookie, Secure)
    for rolling in [false, true] {
        for https in [false, true] {
            let m = manager(options(rolling, false, false));
            let (_, cookie) = logged_in(&m).await;
            // The next request, unchanged: a cookie only when rolling.
            let cur = m.resolve(&holding(&cookie)).await.unwrap();
            assert_eq!(cur.user(), Some("alice"));
            let sent = m.set_cookie(&cur, https);
            assert_eq!(sent.is_some(), rolling, "rolling={rolling}");
            if let Some(c) = sent {
                assert_eq!(c.contains("; Secure"), https, "{c}");
                assert_eq!(c.split(';').next(), cookie.split(';').next(), "same id");
            }
            // Changed in this request: always a cookie.
            let mut cur = cur;
            let data = Map::from_iter([("k".to_owned(), Value::from(1))]);
            m.merge_data(&mut cur, data, &Client::default())
                .await
                .unwrap();
            assert!(m.set_cookie(&cur, https).is_some());
        }
    }
}

#[tokio::test]
async fn an_older_secret_verifies_and_the_cookie_is_signed_again() {
    let old = options(false, false, false);
    let m = manager(old.clone());
    let (_, cookie) = logged_in(&m).await;
    let mut rotated = old;
    rotated.secrets.insert(
        0,
        Secret::new(b"the-new-secret-that-signs-0123456789ab".to_vec()),
    );
    let next = m.next(rotated);
    let cur = next.resolve(&holding(&cookie)).await.unwrap();
    assert_eq!(cur.user(), Some("alice"), "the old secret still verifies");
    let resigned = next
        .set_cookie(&cur, false)
        .expect("re-signed with the new secret");
    assert_ne!(resigned.split(';').next(), cookie.split(';').next());
    let again = next.resolve(&holding(&resigned)).await.unwrap();
    assert!(
        next.set_cookie(&again, false).is_none(),
        "signed with the first secret now"
    );
}

#[tokio::test]
async fn logout_destroys_the_session_and_clears_the_cookie() {
    let m = manager(options(true, false, false));
    let (_, cookie) = logged_in(&m).await;
    let mut cur = m.resolve(&holding(&cookie)).await.unwrap();
    m.logout(&mut cur).await.unwrap();
    let clear = m.set_cookie(&cur, false).expect("a clearing cookie");
    assert!(
        clear.starts_with("sid=;") || clear.starts_with("sid=\"\";"),
        "{clear}"
    );
    assert!(
        clear.contains("Max-Age=0") || clear.contains("Expires="),
        "{clear}"
    );
    let after = m.resolve(&holding(&cookie)).await.unwrap();
    assert!(
        after.session.is_none(),
        "destroyed server-side, not only forgotten"
    );
}

#[tokio::test]
async fn every_login_cycles_the_id() {
    let m = manager(options(false, false, false));
    let (_, first) = logged_in(&m).await;
    let mut cur = m.resolve(&holding(&first)).await.unwrap();
    m.login(&mut cur, "bob".into(), vec![], &Client::default())
        .await
        .unwrap();
    let second = m.set_cookie(&cur, false).unwrap();
    assert_ne!(second.split(';').next(), first.split(';').next());
    assert!(m.resolve(&holding(&first)).await.unwrap().session.is_none());
    assert_eq!(
        m.resolve(&holding(&second)).await.unwrap().user(),
        Some("bob")
    );
}

#[tokio::test]
async fn a_cookie_that_does_not_verify_is_anonymous() {
    let m = manager(options(false, false, false));
    let (_, cookie) = logged_in(&m).await;
    let pair = cookie.split(';').next().unwrap();
    let last = pair.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &pair[..pair.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    for bad in [tampered.as_str(), "sid=", "sid=abc.def", "other=1"] {
        let cur = m.resolve(&holding(bad)).await.unwrap();
        assert!(cur.session.is_none(), "{bad}");
        assert!(
            m.set_cookie(&cur, false).is_none(),
            "{bad}: no cookie for nobody"
        );
    }
}

#[tokio::test]
async fn only_what_is_stored_makes_a_session() {
    // save_uninitialized = false: a visitor costs nothing.
    let m = manager(options(true, false, false));
    let mut cur = RequestSession::default();
    m.ensure_uninitialized(&mut cur, &Client::default())
        .await
        .unwrap();
    assert!(cur.session.is_none());
    assert!(m.set_cookie(&cur, false).is_none());
    // save_uninitialized = true: an anonymous session and its cookie.
    let m = manager(options(false, false, true));
    m.ensure_uninitialized(&mut cur, &Client::default())
        .await
        .unwrap();
    assert!(cur.session.as_deref().is_some_and(|s| s.user().is_none()));
    assert!(m.set_cookie(&cur, false).is_some());
}

#[tokio::test]
async fn resave_writes_an_unchanged_session_back_once() {
    for resave in [false, true] {
        let m = manager(options(false, resave, false));
        let (_, cookie) = logged_in(&m).await;
        let before = m.writes();
        let cur = m.resolve(&holding(&cookie)).await.unwrap();
        m.finish(&cur).await;
        assert_eq!(m.writes() - before, u64::from(resave), "resave={resave}");
        // Written during the request already: not twice.
        let (cur, _) = logged_in(&m).await;
        let before = m.writes();
        m.finish(&cur).await;
        assert_eq!(m.writes(), before);
    }
}
