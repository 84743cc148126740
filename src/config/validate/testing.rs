//! What the config tests share (test builds only): a minimal valid config to
//! vary, parsing it with the secrets every test agrees on, the assertion that
//! a config is refused with a given message, and a scratch directory for the
//! files a config names.
//!
//! It holds no test of its own; each area's tests sit in the area's file.

use std::path::{Path, PathBuf};

use crate::config::{Config, ParseError};

/// The variable the minimal config's session secret is read from. Tests run
/// in parallel threads of one process, so each variable here is only ever set
/// to its one value below, by [`parse_in`].
pub(super) const SECRET_VAR: &str = "SESSIONGATE_TEST_SECRET_CONFIG";
/// [`SECRET_VAR`]'s value: 32 bytes, the shortest secret accepted.
pub(super) const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// A variable holding [`SHORT_SECRET`], 21 bytes: too short to sign with.
pub(super) const SHORT_SECRET_VAR: &str = "SESSIONGATE_TEST_SHORT_SECRET";
pub(super) const SHORT_SECRET: &str = "tooshort-secret-value";
/// A variable holding a Redis nodes' password (text, no length rule).
pub(super) const NODE_PASSWORD_VAR: &str = "SG_TEST_CLUSTER_PASSWORD";
pub(super) const NODE_PASSWORD: &str = "cluster-password";
/// A variable no test sets: a secret that names it is missing.
pub(super) const UNSET_VAR: &str = "SESSIONGATE_TEST_UNSET_VAR";

/// The smallest valid config (one listener, one secret, one upstream), with
/// `extra` appended.
pub(in crate::config) fn minimal(extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[session]
secrets = [{{ env = "{SECRET_VAR}" }}]
[upstream.app]
addrs = ["127.0.0.1:9"]
{extra}
"#
    )
}

/// [`minimal`] with `lines` added at the top of one of its tables: `[server]`,
/// `[session]` or `[upstream.app]`.
pub(super) fn minimal_with(table: &str, lines: &str) -> String {
    let text = minimal("");
    let header = format!("{table}\n");
    assert!(text.contains(&header), "the minimal config has no {table}");
    text.replacen(&header, &format!("{header}{lines}\n"), 1)
}

/// Parse `text` with relative files resolved against the current directory.
pub(in crate::config) fn parse(text: &str) -> Result<Config, ParseError> {
    parse_in(text, Path::new("."))
}

/// Parse `text` with relative files resolved against `base`.
pub(super) fn parse_in(text: &str, base: &Path) -> Result<Config, ParseError> {
    for (var, value) in [
        (SECRET_VAR, SECRET),
        (SHORT_SECRET_VAR, SHORT_SECRET),
        (NODE_PASSWORD_VAR, NODE_PASSWORD),
    ] {
        // Every caller sets the same value (see SECRET_VAR), so a test
        // reading one while another writes it reads that value either way.
        std::env::set_var(var, value);
    }
    Config::parse(text, base)
}

/// The problems `text` is refused with, in order; a syntax error as one
/// `syntax: ` line; none if it is valid.
pub(in crate::config) fn problems(text: &str) -> Vec<String> {
    problems_in(text, Path::new("."))
}

/// [`problems`], with relative files resolved against `base`.
pub(super) fn problems_in(text: &str, base: &Path) -> Vec<String> {
    match parse_in(text, base) {
        Err(ParseError::Invalid { problems, .. }) => problems,
        Err(ParseError::Syntax(s)) => vec![format!("syntax: {s}")],
        Ok(_) => vec![],
    }
}

/// The config `text` describes, or a panic that lists its problems.
pub(super) fn valid(text: &str) -> Config {
    valid_in(text, Path::new("."))
}

/// [`valid`], with relative files resolved against `base`.
pub(super) fn valid_in(text: &str, base: &Path) -> Config {
    match parse_in(text, base) {
        Ok(c) => c,
        Err(ParseError::Invalid { problems, .. }) => panic!("refused: {problems:#?}\n{text}"),
        Err(ParseError::Syntax(s)) => panic!("syntax: {s}\n{text}"),
    }
}

/// Assert that one of `text`'s problems starts with `want`: the whole
/// message where it is fixed, its start where an OS error's text follows.
pub(super) fn assert_refused(text: &str, want: &str) {
    assert_refused_in(text, Path::new("."), want);
}

/// [`assert_refused`], with relative files resolved against `base`.
pub(super) fn assert_refused_in(text: &str, base: &Path, want: &str) {
    let p = problems_in(text, base);
    assert!(
        p.iter().any(|x| x.starts_with(want)),
        "missing {want:?} in {p:#?}\n{text}"
    );
}

/// A directory of its own for one test's files, removed when dropped.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn new() -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sessiongate-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Write `contents` to `name` in the directory; its full path.
    pub(super) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
