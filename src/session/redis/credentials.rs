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
//! - `p cred:used`: a hash of id to the last use (unix seconds).
//!
//! Reads on the request path go through the store's deadline and breaker
//! ([`RedisStore::call`]); listing uses the admin connection.

use async_trait::async_trait;
use redis::AsyncCommands as _;

use super::RedisStore;

/// How long an expired key's record stays, listed as expired.
const EXPIRED_KEPT: u64 = 7 * 24 * 3600;
use crate::session::credentials::{ApiKeyRecord, Home};
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
}
