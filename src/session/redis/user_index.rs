//! The Redis store's per-user login index: `p user:<user>`, a sorted set
//! of that user's session keys scored by absolute expiry, which makes
//! revoke-all, a user's own page and `max_per_user` work without a scan.
//!
//! A login is ordered steps: the user's index gains the session as pending
//! (`~<key>`, `scripts/index.lua`) before its record is written, the entry is
//! confirmed after (`scripts/confirm.lua`), only confirmed entries are ended for
//! `max_per_user`, and an index entry is removed only after its record is
//! gone. So whatever two logins of one user do at once, and whatever step an
//! instance dies at, no live session is missing from its user's index
//! (revoke-all never misses one; at worst a dead entry waits for its expiry).
//!
//! It does not read sessions, write a record by itself (`mod.rs`: `put`), or
//! remove one (`mod.rs`: destroy, which takes the record, then the entry).

use std::sync::atomic::Ordering;

use redis::AsyncCommands;

use super::RedisStore;
use crate::session::{now_ms, Session, SessionKey, StoreError};

/// Add a session to its user's index and name the user's oldest sessions
/// past `max_per_user`, for the caller to end. The index is scored by
/// absolute expiry, which is creation + `absolute_timeout`, so the lowest
/// scores are the oldest sessions; the new one is never among those named.
pub(super) const INDEX: &str = include_str!("scripts/index.lua");

/// Turn a new session's pending index entry into a confirmed one.
pub(super) const CONFIRM: &str = include_str!("scripts/confirm.lua");

impl RedisStore {
    pub(super) fn user_key(&self, user: &str) -> String {
        format!("{}user:{}", self.config.prefix, user)
    }

    pub(super) async fn write(
        &self,
        s: &Session,
        only_if_exists: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        if Self::ttl_ms(s, now) == 0 {
            return Ok(false);
        }
        if only_if_exists {
            let ok: Option<String> = self.put(s, now, Some("XX")).await?;
            return Ok(ok.is_some());
        }
        let Some(user) = s.user() else {
            self.put::<()>(s, now, None).await?;
            return Ok(true);
        };
        // The index first (pending), the record, then the entry confirmed:
        // see the module doc and scripts/index.lua.
        let ended = self.index(user, s, now).await?;
        if let Err(e) = self.put::<()>(s, now, None).await {
            // Without a record the pending entry would only count against
            // max_per_user until it expires.
            let (index, pending) = (self.user_key(user), format!("~{}", s.key.to_hex()));
            let _ = self
                .call(|mut c| async move { c.zrem::<_, _, ()>(index, pending).await })
                .await;
            return Err(e);
        }
        self.confirm(user, s).await?;
        if !ended.is_empty() {
            self.end_displaced(user, ended).await?;
        }
        Ok(true)
    }

    /// `s`'s record is written: its pending index entry becomes confirmed.
    async fn confirm(&self, user: &str, s: &Session) -> Result<(), StoreError> {
        let mut confirm = self.confirm_script.prepare_invoke();
        confirm.key(self.user_key(user)).arg(s.key.to_hex());
        self.call(|mut c| async move { confirm.invoke_async::<()>(&mut c).await })
            .await
    }

    /// Add `s` to its user's index, pending; the keys of the user's
    /// confirmed sessions past `max_per_user` (oldest first).
    async fn index(&self, user: &str, s: &Session, now: u64) -> Result<Vec<String>, StoreError> {
        let mut inv = self.index_script.prepare_invoke();
        inv.key(self.user_key(user))
            .arg(s.absolute_expires_at)
            .arg(s.key.to_hex())
            .arg(now)
            .arg(self.max_per_user);
        let ended: Vec<String> = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        // The index holds only what this store wrote; still, never build a
        // key name from anything but a session key.
        Ok(ended
            .into_iter()
            .filter(|m| SessionKey::from_hex(m).is_some())
            .collect())
    }

    /// End sessions displaced by `max_per_user`: their records, then their
    /// entries in `user`'s index.
    async fn end_displaced(&self, user: &str, ended: Vec<String>) -> Result<(), StoreError> {
        let names: Vec<String> = ended
            .iter()
            .map(|m| format!("{}sess:{m}", self.config.prefix))
            .collect();
        // On a cluster, redis-rs splits one DEL per slot.
        let gone: u64 = self.call(|mut c| async move { c.del(names).await }).await?;
        let index = self.user_key(user);
        self.call(|mut c| async move { c.zrem::<_, _, ()>(index, ended).await })
            .await?;
        self.displaced.fetch_add(gone, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{RedisOptions, Servers};
    use super::*;
    use crate::session::SessionStore;

    /// The live sessions in mallory's index.
    async fn indexed(store: &RedisStore) -> Vec<SessionKey> {
        let live = store.list_user("mallory").await.unwrap();
        live.iter().map(|s| s.key).collect()
    }

    /// Regression: with a login split into one-key steps, a login of the
    /// same user that ran whole while another was between indexing and
    /// writing its record ended that not-yet-written session, dropped its
    /// index entry, and left it live outside the index: revoke-all missed it.
    #[tokio::test]
    async fn a_login_in_flight_is_never_dropped_from_the_index_by_another() {
        let server = super::super::tracking::tests::Server::start();
        let store = RedisStore::new(
            RedisOptions {
                servers: Servers::One(server.url()),
                prefix: "t:".into(),
                timeout: Duration::from_secs(2),
                local_ttl: Duration::from_secs(1),
                local_capacity: 100,
            },
            1,
        )
        .unwrap();
        let login = |at: u64| {
            let key = SessionKey::of(&crate::session::signing::SessionId::generate());
            let idle = Duration::from_secs(600);
            Session::new(
                key,
                Some("mallory".into()),
                vec![],
                serde_json::Map::new(),
                at,
                at + 3_600_000,
                idle,
            )
        };
        let now = now_ms();
        let (a, b) = (login(now), login(now + 1));
        // A's login has indexed A, not yet written it...
        assert!(store.index("mallory", &a, now).await.unwrap().is_empty());
        // ...when B's login runs whole (max_per_user = 1)...
        assert!(store.write(&b, false).await.unwrap());
        // ...and then A's goes on.
        store.put::<()>(&a, now, None).await.unwrap();
        store.confirm("mallory", &a).await.unwrap();
        let now_indexed = indexed(&store).await;
        assert!(
            now_indexed.contains(&a.key),
            "a live session is outside its user's index"
        );
        assert!(now_indexed.contains(&b.key));
        // The next login ends the confirmed ones past max_per_user.
        let c = login(now + 2);
        assert!(store.write(&c, false).await.unwrap());
        assert_eq!(
            indexed(&store).await,
            vec![c.key],
            "both older sessions ended"
        );
        assert!(store.peek(&a.key).await.unwrap().is_none());
        // Destroying a session removes its entry, confirmed or pending.
        assert!(store.destroy(&c.key).await.unwrap());
        assert!(store.list_user("mallory").await.unwrap().is_empty());
    }
}
