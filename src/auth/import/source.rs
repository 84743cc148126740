//! Where the app's sessions are read: connect-redis's Redis (one key per
//! session, `<prefix><id>`), or a dump file of `{ "<id>": <session> }` that
//! any other store can export (connect-pg-simple, connect-mongo,
//! memorystore, session-file-store).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// A record longer than this is not read (an app's session is a few KB;
/// a huge one would cost memory and time on the request path).
pub(crate) const MAX_RECORD: usize = 64 * 1024;
/// Each call to the app's Redis.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Where the records are, as configured.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SourceOptions {
    /// `redis_url` (with `redis_password` filled in) and `redis_prefix`.
    Redis { url: String, prefix: String },
    /// `dump_file`.
    Dump(PathBuf),
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The URL may carry the password.
            SourceOptions::Redis { prefix, .. } => write!(f, "Redis {{ prefix: {prefix:?}, .. }}"),
            SourceOptions::Dump(p) => write!(f, "Dump({})", p.display()),
        }
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Looked {
    Found(Value),
    NotFound,
    /// Not JSON, not a string key, or past [`MAX_RECORD`].
    Broken,
}

pub(crate) enum Source {
    Redis {
        client: redis::Client,
        prefix: String,
        /// One multiplexed connection, made at the first import and
        /// reconnected by redis-rs after a failure (as the store's is).
        conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    },
    /// The dump, read once; an entry leaves it when its session is taken
    /// over with `old_cookie = "clear"`.
    Dump(Mutex<HashMap<String, Value>>),
}

impl Source {
    /// # Errors
    /// An invalid Redis URL, or a dump file that cannot be read or is not a
    /// JSON object.
    pub(crate) fn new(options: &SourceOptions) -> Result<Source, String> {
        match options {
            SourceOptions::Redis { url, prefix } => Ok(Source::Redis {
                client: redis::Client::open(url.as_str())
                    .map_err(|e| format!("import.redis_url: {e}"))?,
                prefix: prefix.clone(),
                conn: tokio::sync::OnceCell::new(),
            }),
            SourceOptions::Dump(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("import.dump_file: cannot read {}: {e}", path.display())
                })?;
                let all: HashMap<String, Value> = serde_json::from_str(&text).map_err(|e| {
                    format!("import.dump_file: not a JSON object of sessions by id: {e}")
                })?;
                Ok(Source::Dump(Mutex::new(all)))
            }
        }
    }

    /// The record of session `id` (already checked against the strict
    /// pattern). With Redis: one `GETRANGE` capped at [`MAX_RECORD`], with
    /// the id as the key's argument, never in a pattern.
    ///
    /// # Errors
    /// The app's Redis cannot be reached.
    pub(crate) async fn get(&self, id: &str) -> Result<Looked, String> {
        match self {
            Source::Redis {
                client,
                prefix,
                conn,
            } => {
                let key = format!("{prefix}{id}");
                let got: redis::RedisResult<Vec<u8>> = call(client, conn, |mut c| async move {
                    redis::cmd("GETRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(MAX_RECORD)
                        .query_async(&mut c)
                        .await
                })
                .await?;
                match got {
                    Ok(b) if b.is_empty() => Ok(Looked::NotFound),
                    Ok(b) if b.len() > MAX_RECORD => Ok(Looked::Broken),
                    Ok(b) => Ok(serde_json::from_slice(&b).map_or(Looked::Broken, Looked::Found)),
                    // WRONGTYPE: a hash or a list under the key.
                    Err(e) if e.code() == Some("WRONGTYPE") => Ok(Looked::Broken),
                    Err(e) => Err(e.to_string()),
                }
            }
            Source::Dump(all) => {
                let all = all
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(match all.get(id) {
                    None => Looked::NotFound,
                    Some(v) if serde_json::to_vec(v).map_or(true, |b| b.len() > MAX_RECORD) => {
                        Looked::Broken
                    }
                    Some(v) => Looked::Found(v.clone()),
                })
            }
        }
    }

    /// Remove session `id`'s record: its cookie has been taken over.
    ///
    /// # Errors
    /// The app's Redis cannot be reached.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), String> {
        match self {
            Source::Redis {
                client,
                prefix,
                conn,
            } => {
                let key = format!("{prefix}{id}");
                let _: i64 = call(client, conn, |mut c| async move {
                    redis::cmd("DEL").arg(&key).query_async(&mut c).await
                })
                .await?
                .map_err(|e| e.to_string())?;
                Ok(())
            }
            Source::Dump(all) => {
                all.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(id);
                Ok(())
            }
        }
    }
}

/// One call on the shared connection (made first if need be), bounded by
/// [`TIMEOUT`] as a whole.
async fn call<T, F, Fut>(
    client: &redis::Client,
    conn: &tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    f: F,
) -> Result<redis::RedisResult<T>, String>
where
    F: FnOnce(redis::aio::ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let work = async {
        let conn = conn
            .get_or_try_init(|| async {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_with_config(client.clone(), cfg).await
            })
            .await
            .map_err(|e| e.to_string())?
            .clone();
        Ok(f(conn).await)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| "the app's Redis did not answer in time".to_owned())?
}
