//! The credential store's home beside the memory session store: one JSON file
//! (`store.credentials_file`), read at start and rewritten whole at each
//! change, atomically: a temporary file in the same directory, fsync, rename
//! over the old one, fsync of the directory. One instance owns the file.
//!
//! Last use is kept in memory and written with the next change, or at most
//! once per [`USED_WRITE_EVERY`] when only uses changed, so a busy key does
//! not rewrite the file per request.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ApiKeyRecord, Home};
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
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
