//! The credential store's home beside the memory session store: one JSON file
//! (`store.credentials_file`), read at start and rewritten whole at each
//! change, atomically: a temporary file in the same directory, fsync, rename
//! over the old one, fsync of the directory. One instance owns the file.
//!
//! Last use is kept in memory and written with the next change, or at most
//! once per [`USED_WRITE_EVERY`] when only uses changed, so a busy key does
//! not rewrite the file per request.
//!
//! The second factor's counters (failed codes, codes used) live in memory:
//! one instance owns the file, and its windows are minutes long, so only a
//! restart forgets them (documented in the README; with Redis they survive).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ApiKeyRecord, FactorRecord, Home};
use crate::session::StoreError;

/// Uses alone rewrite the file at most this often.
const USED_WRITE_EVERY: Duration = Duration::from_secs(60);

/// The file's contents.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Contents {
    /// The format; 1 today.
    version: u32,
    #[serde(default)]
    api_keys: BTreeMap<String, ApiKeyRecord>,
    /// By user.
    #[serde(default)]
    factors: BTreeMap<String, FactorRecord>,
}

/// Most entries each in-memory counter keeps: past it, the expired ones are
/// dropped, and if none has expired the count fails closed (a 503). Entries
/// are made only by codes that passed and by failures of users whose
/// password passed, so real use stays far below it.
const MAX_COUNTED: usize = 100_000;

/// Expiring entries in memory: the file home's `first_use` and failure counts.
#[derive(Default)]
struct Counted {
    /// Key to (count, until).
    entries: HashMap<String, (u32, Instant)>,
}

impl Counted {
    /// Add one to `key` (a new window of `ttl` if it has none); the count.
    /// `None` when the map is full of live entries: the caller fails closed
    /// rather than forget a code that was used or a failure that was counted.
    fn add(&mut self, key: &str, ttl: Duration) -> Option<u32> {
        let now = Instant::now();
        if self.entries.len() >= MAX_COUNTED && !self.entries.contains_key(key) {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= MAX_COUNTED {
                return None;
            }
        }
        let e = self.entries.entry(key.to_owned()).or_insert((0, now + ttl));
        if e.1 <= now {
            *e = (0, now + ttl);
        }
        e.0 = e.0.saturating_add(1);
        Some(e.0)
    }

    /// Take one off `key`, if it is counted.
    fn take_one(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

struct State {
    contents: Contents,
    /// Uses not yet written, and when the file was last written.
    dirty: bool,
    written: Instant,
}

/// The file home.
pub(crate) struct FileHome {
    path: PathBuf,
    state: Mutex<State>,
    /// Writers one at a time, in order (the state lock is not held while writing).
    writing: tokio::sync::Mutex<()>,
    /// Tokens used once ([`Home::first_use`]).
    used_once: Mutex<Counted>,
    /// Failed factor codes per user.
    failures: Mutex<Counted>,
    /// Provider subjects and sessions to users ([`Home::link`]): in memory,
    /// like the memory store's sessions they find.
    links: Mutex<HashMap<String, (String, Instant)>>,
}

impl FileHome {
    /// Read `path`, or start empty when it does not exist yet (it is created
    /// at the first key).
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a credential file.
    pub(crate) fn open(path: &Path) -> Result<FileHome, String> {
        let contents = match std::fs::read(path) {
            Ok(bytes) => parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                version: 1,
                ..Contents::default()
            },
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(FileHome {
            path: path.to_owned(),
            state: Mutex::new(State {
                contents,
                dirty: false,
                written: Instant::now(),
            }),
            writing: tokio::sync::Mutex::new(()),
            used_once: Mutex::default(),
            failures: Mutex::default(),
            links: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        locked(&self.state)
    }

    /// Change the contents with `change` and write them; on a failed write
    /// the change is undone, so memory never says what the file does not.
    async fn change<T>(&self, change: impl FnOnce(&mut Contents) -> T) -> Result<T, StoreError> {
        let _one_writer = self.writing.lock().await;
        let (before, after, out) = {
            let mut s = self.state();
            let before = s.contents.clone();
            let out = change(&mut s.contents);
            (before, s.contents.clone(), out)
        };
        match self.write(&after).await {
            Ok(()) => {
                let mut s = self.state();
                s.dirty = false;
                s.written = Instant::now();
                Ok(out)
            }
            Err(e) => {
                self.state().contents = before;
                Err(e)
            }
        }
    }

    async fn write(&self, contents: &Contents) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(contents).expect("records serialise");
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| StoreError::Unavailable(format!("credentials file: {e}")))
    }
}

fn full() -> StoreError {
    StoreError::Unavailable(format!(
        "more than {MAX_COUNTED} second-factor codes in use at once"
    ))
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Replace `path` with `bytes`: all of them or none.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        // Hashes only, but still no one else's business.
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The contents of a credentials file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Contents, String> {
    let c: Contents =
        serde_json::from_slice(bytes).map_err(|e| format!("not a credentials file: {e}"))?;
    if c.version != 1 {
        return Err(format!(
            "version {} is not one this sessiongate reads (1)",
            c.version
        ));
    }
    Ok(c)
}

#[async_trait]
impl Home for FileHome {
    async fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.state().contents.api_keys.get(id).cloned())
    }

    async fn put(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.change(|c| {
            c.api_keys.insert(record.id.clone(), record);
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        if !self.state().contents.api_keys.contains_key(id) {
            return Ok(None);
        }
        self.change(|c| c.api_keys.remove(id)).await
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let s = self.state();
        Ok(s.contents
            .api_keys
            .values()
            .filter(|k| owner.is_none_or(|o| k.owner == o))
            .cloned()
            .collect())
    }

    async fn used(&self, id: &str, at: u64) -> Result<(), StoreError> {
        let due = {
            let mut s = self.state();
            match s.contents.api_keys.get_mut(id) {
                Some(k) => k.last_used_at = Some(at),
                None => return Ok(()),
            }
            s.dirty = true;
            s.written.elapsed() >= USED_WRITE_EVERY
        };
        if due {
            self.change(|_| ()).await?;
        }
        Ok(())
    }

    async fn factors(&self, user: &str) -> Result<Option<FactorRecord>, StoreError> {
        Ok(self.state().contents.factors.get(user).cloned())
    }

    async fn put_factors(&self, record: &FactorRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.change(|c| {
            c.factors.insert(record.user.clone(), record);
        })
        .await
    }

    async fn remove_factors(&self, user: &str) -> Result<bool, StoreError> {
        if !self.state().contents.factors.contains_key(user) {
            return Ok(false);
        }
        self.change(|c| c.factors.remove(user).is_some()).await
    }

    async fn list_factors(&self) -> Result<Vec<FactorRecord>, StoreError> {
        Ok(self.state().contents.factors.values().cloned().collect())
    }

    async fn first_use(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        match locked(&self.used_once).add(token, ttl) {
            Some(n) => Ok(n == 1),
            None => Err(full()),
        }
    }

    async fn factor_attempt(&self, user: &str, window: Duration) -> Result<u32, StoreError> {
        locked(&self.failures).add(user, window).ok_or_else(full)
    }

    async fn factor_refund(&self, user: &str) -> Result<(), StoreError> {
        locked(&self.failures).take_one(user);
        Ok(())
    }

    async fn link(&self, link: &str, user: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut links = locked(&self.links);
        if links.len() >= MAX_COUNTED && !links.contains_key(link) {
            links.retain(|_, (_, until)| *until > now);
            if links.len() >= MAX_COUNTED {
                return Err(StoreError::Unavailable(format!(
                    "more than {MAX_COUNTED} provider sign-ins remembered at once"
                )));
            }
        }
        links.insert(link.to_owned(), (user.to_owned(), now + ttl));
        Ok(())
    }

    async fn linked(&self, link: &str) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(locked(&self.links)
            .get(link)
            .filter(|(_, until)| *until > now)
            .map(|(user, _)| user.clone()))
    }

    async fn user_of_handle(&self, handle: &str) -> Result<Option<String>, StoreError> {
        // One instance's users: a scan of memory, no index to keep.
        Ok(self
            .state()
            .contents
            .factors
            .values()
            .find(|r| r.handle.as_deref() == Some(handle))
            .map(|r| r.user.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, owner: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            owner: owner.into(),
            roles: vec!["deploy".into()],
            name: "ci".into(),
            hash: "00".repeat(32),
            created_at: 1,
            expires_at: None,
            created_by: "admin".into(),
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_the_file_is_private() {
        let dir = std::env::temp_dir().join(format!("sg-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("credentials.json");
        let _ = std::fs::remove_file(&path);
        let home = FileHome::open(&path).unwrap();
        home.put(&record("a1", "alice")).await.unwrap();
        home.put(&record("b2", "bob")).await.unwrap();
        assert_eq!(home.remove("b2").await.unwrap().unwrap().owner, "bob");
        assert_eq!(home.remove("b2").await.unwrap(), None);
        let again = FileHome::open(&path).unwrap();
        assert_eq!(again.list(None).await.unwrap(), vec![record("a1", "alice")]);
        assert_eq!(again.list(Some("bob")).await.unwrap(), vec![]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        std::fs::write(&path, b"{\"version\":1,\"api_keys\":{},\"x\":1}").unwrap();
        assert!(
            FileHome::open(&path).is_err(),
            "an unknown field is refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
