//! The credential store's home beside the Redis sessions ([`Home`]), so every
//! instance sees the same API keys and a revocation on one is seen by all.
//!
//! Layout, under the store's prefix `p` (every command names one key, so it
//! works on a cluster too):
//! - `p cred:key:<id>`: the record as JSON; an expiring key's record stays
//!   [`EXPIRED_KEPT`] past its expiry (`PXAT`), so it is still listed as
//!   expired and a client still sending it is told so rather than counted as
//!   guessing an unknown key, as with the file home;
//! - `p cred:keys:<owner>` and `p cred:keys`: sets of ids, per owner and all,
//!   for listing without a scan (ids whose record has gone are pruned);
//! - `p cred:used`: a hash of id to the last use (unix seconds);
//! - `p cred:factor:<user>`: a user's second factors as JSON, and
//!   `p cred:factors`: the set of users that have a record;
//! - `p cred:once:<token>`: a code already used (`SET NX PX`), until its window ends;
//! - `p cred:fail:<user>`: failed factor codes, expiring a window after the first;
//! - `p cred:handle:<uuid>`: the user of a WebAuthn user handle (passkey sign-in).
//!
//! Reads on the request path go through the store's deadline and breaker
//! ([`RedisStore::call`]); listing uses the admin connection.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands as _;

use super::RedisStore;

/// How long an expired key's record stays, listed as expired.
const EXPIRED_KEPT: u64 = 7 * 24 * 3600;
use crate::session::credentials::{ApiKeyRecord, FactorRecord, Home};
use crate::session::StoreError;

impl RedisStore {
    fn cred_key(&self, id: &str) -> String {
        format!("{}cred:key:{id}", self.config.prefix)
    }

    fn cred_index(&self, owner: Option<&str>) -> String {
        match owner {
            Some(o) => format!("{}cred:keys:{o}", self.config.prefix),
            None => format!("{}cred:keys", self.config.prefix),
        }
    }

    fn cred_used(&self) -> String {
        format!("{}cred:used", self.config.prefix)
    }

    fn cred_index_factors(&self) -> String {
        format!("{}cred:factors", self.config.prefix)
    }

    fn cred(&self, kind: &str, name: &str) -> String {
        format!("{}cred:{kind}:{name}", self.config.prefix)
    }
}

/// One attempt more, and the window starts with the first: atomically, so a
/// crash between the two steps cannot leave a count that never expires.
const COUNT_ATTEMPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// One attempt back (it passed), never below zero, the window kept.
const REFUND_ATTEMPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn parse(json: Option<String>) -> Option<ApiKeyRecord> {
    // A record this version cannot read is no key.
    json.and_then(|j| serde_json::from_str(&j).ok())
}

#[async_trait]
impl Home for RedisStore {
    async fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key = self.cred_key(id);
        let json: Option<String> = self.call(|mut c| async move { c.get(key).await }).await?;
        Ok(parse(json))
    }

    async fn put(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let key = self.cred_key(&record.id);
        let json = serde_json::to_string(record).expect("records serialise");
        let expires_ms = record.expires_at.map(|s| (s + EXPIRED_KEPT) * 1000);
        self.call_admin(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(json);
            if let Some(at) = expires_ms {
                cmd.arg("PXAT").arg(at);
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await?;
        for index in [self.cred_index(Some(&record.owner)), self.cred_index(None)] {
            let id = record.id.clone();
            self.call_admin(|mut c| async move { c.sadd::<_, _, ()>(index, id).await })
                .await?;
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key = self.cred_key(id);
        let taken: Option<String> = {
            let script = &self.take_script;
            self.call_admin(|mut c| async move { script.key(key).invoke_async(&mut c).await })
                .await?
        };
        let record = parse(taken);
        if let Some(r) = &record {
            for index in [self.cred_index(Some(&r.owner)), self.cred_index(None)] {
                let id = id.to_owned();
                self.call_admin(|mut c| async move { c.srem::<_, _, ()>(index, id).await })
                    .await?;
            }
            let (used, id) = (self.cred_used(), id.to_owned());
            self.call_admin(|mut c| async move { c.hdel::<_, _, ()>(used, id).await })
                .await?;
        }
        Ok(record)
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let index = self.cred_index(owner);
        let ids: Vec<String> = {
            let index = index.clone();
            self.call_admin(|mut c| async move { c.smembers(index).await })
                .await?
        };
        let used = self.cred_used();
        let last: std::collections::HashMap<String, u64> = self
            .call_admin(|mut c| async move { c.hgetall(used).await })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let key = self.cred_key(&id);
            let json: Option<String> = self
                .call_admin(|mut c| async move { c.get(key).await })
                .await?;
            match parse(json) {
                Some(mut r) => {
                    r.last_used_at = last.get(&id).copied().or(r.last_used_at);
                    out.push(r);
                }
                // Expired by Redis: prune it from the index.
                None => {
                    let index = index.clone();
                    self.call_admin(|mut c| async move { c.srem::<_, _, ()>(index, id).await })
                        .await?;
                }
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn used(&self, id: &str, at: u64) -> Result<(), StoreError> {
        let (used, id) = (self.cred_used(), id.to_owned());
        self.call_admin(|mut c| async move { c.hset::<_, _, _, ()>(used, id, at).await })
            .await
    }

    async fn factors(&self, user: &str) -> Result<Option<FactorRecord>, StoreError> {
        let key = self.cred("factor", user);
        let json: Option<String> = self.call(|mut c| async move { c.get(key).await }).await?;
        // A record this version cannot read is an error, never "no factor":
        // else a damaged record would turn a user's second factor off.
        match json {
            None => Ok(None),
            Some(j) => serde_json::from_str(&j).map(Some).map_err(|e| {
                StoreError::Unavailable(format!("an unreadable second-factor record: {e}"))
            }),
        }
    }

    async fn put_factors(&self, record: &FactorRecord) -> Result<(), StoreError> {
        let key = self.cred("factor", &record.user);
        let json = serde_json::to_string(record).expect("records serialise");
        self.call_admin(|mut c| async move { c.set::<_, _, ()>(key, json).await })
            .await?;
        if let Some(handle) = &record.handle {
            let (key, user) = (self.cred("handle", handle), record.user.clone());
            self.call_admin(|mut c| async move { c.set::<_, _, ()>(key, user).await })
                .await?;
        }
        let (index, user) = (self.cred_index_factors(), record.user.clone());
        self.call_admin(|mut c| async move { c.sadd::<_, _, ()>(index, user).await })
            .await
    }

    async fn remove_factors(&self, user: &str) -> Result<bool, StoreError> {
        if let Some(handle) = self.factors(user).await?.and_then(|r| r.handle) {
            let key = self.cred("handle", &handle);
            self.call_admin(|mut c| async move { c.del::<_, ()>(key).await })
                .await?;
        }
        let key = self.cred("factor", user);
        let n: u32 = self
            .call_admin(|mut c| async move { c.del(key).await })
            .await?;
        let (index, user) = (self.cred_index_factors(), user.to_owned());
        self.call_admin(|mut c| async move { c.srem::<_, _, ()>(index, user).await })
            .await?;
        Ok(n > 0)
    }

    async fn list_factors(&self) -> Result<Vec<FactorRecord>, StoreError> {
        let index = self.cred_index_factors();
        let users: Vec<String> = self
            .call_admin(|mut c| async move { c.smembers(index).await })
            .await?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            if let Some(r) = self.factors(&user).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = self.cred("once", token);
        let set: Option<String> = self
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn factor_attempt(&self, user: &str, window: Duration) -> Result<u32, StoreError> {
        let key = self.cred("fail", user);
        self.call(|mut c| async move {
            redis::Script::new(COUNT_ATTEMPT)
                .key(key)
                .arg(millis(window))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    async fn factor_refund(&self, user: &str) -> Result<(), StoreError> {
        let key = self.cred("fail", user);
        self.call(|mut c| async move {
            redis::Script::new(REFUND_ATTEMPT)
                .key(key)
                .invoke_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn user_of_handle(&self, handle: &str) -> Result<Option<String>, StoreError> {
        let key = self.cred("handle", handle);
        self.call(|mut c| async move { c.get(key).await }).await
    }

    async fn link(&self, link: &str, user: &str, ttl: Duration) -> Result<(), StoreError> {
        let (key, user) = (self.cred("link", link), user.to_owned());
        self.call(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(user)
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn linked(&self, link: &str) -> Result<Option<String>, StoreError> {
        let key = self.cred("link", link);
        self.call(|mut c| async move { c.get(key).await }).await
    }
}
