//! A session manager over a memory store, for unit tests here and in
//! the layers above (the pages).

use super::*;
use crate::session::cookie::{SameSite, Secure};
use crate::session::memory::{MemoryOptions, MemoryStore};

pub(crate) fn options(rolling: bool, resave: bool, save_uninitialized: bool) -> SessionOptions {
    SessionOptions {
        secrets: vec![Secret::new(
            b"manager-test-secret-0123456789abcdef".to_vec(),
        )],
        save_uninitialized,
        resave,
        rolling,
        idle_timeout: Duration::from_secs(600),
        absolute_timeout: Duration::from_secs(3600),
        capacity: 100,
        anonymous_capacity: 100,
        max_per_user: 10,
        cookie: CookieAttrs {
            name: "sid".into(),
            path: "/".into(),
            domain: None,
            http_only: true,
            secure: Secure::Auto,
            same_site: SameSite::Lax,
            max_age: None,
        },
    }
}

pub(crate) fn manager(o: SessionOptions) -> SessionManager<MemoryStore> {
    let store = MemoryStore::new(MemoryOptions {
        capacity: o.capacity,
        anonymous_capacity: o.anonymous_capacity,
        idle_timeout: o.idle_timeout,
        max_per_user: o.max_per_user,
    });
    SessionManager::new(o, Arc::new(store))
}
