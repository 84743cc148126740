//! `[assertion]`: the keys, issuer and lifetime of the signed identity, and
//! the `upstream.<name>.assertion_audience` that asks for it, which needs those
//! keys.
//!
//! The keys are read and parsed now (Ed25519 PEM); signing is
//! `proxy::assertion`'s.

use std::path::Path;
use std::time::Duration;

use super::Validator;
use crate::config::raw::RawAssertion;
use crate::proxy::assertion::{AssertionKey, AssertionOptions};
use crate::proxy::UpstreamOptions;

impl Validator {
    /// `[assertion]`: the signing keys (files, Ed25519 PEM), issuer and lifetime.
    pub(super) fn assertion(
        &mut self,
        raw: &RawAssertion,
        base: &Path,
    ) -> Option<AssertionOptions> {
        let ttl = self.duration("assertion.ttl", &raw.ttl);
        if let Some(t) = ttl {
            if t < Duration::from_secs(2) || t > Duration::from_secs(60) {
                self.problem(
                    "assertion.ttl",
                    format!("must be 2s to 60s (got {:?})", raw.ttl),
                );
            }
        }
        if raw.keys.is_empty() {
            self.problem(
                "assertion.keys",
                "at least one key, e.g. keys = [{ file = \"assertion.pem\" }]",
            );
        }
        if raw.issuer.is_empty() {
            self.problem("assertion.issuer", "must not be empty");
        }
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let key = format!("assertion.keys[{i}]");
            let Some(file) = &k.file else {
                self.problem(&key, "give file = \"path\" (a PEM key file)");
                continue;
            };
            let path = base.join(file);
            self.files.push(path.clone());
            match std::fs::read(&path) {
                Ok(pem) => match AssertionKey::from_pem(&pem) {
                    Ok(k) => keys.push(k),
                    Err(e) => self.problem(&key, format!("{}: {e}", path.display())),
                },
                Err(e) => self.problem(&key, format!("cannot read {}: {e}", path.display())),
            }
        }
        let ttl = ttl.filter(|t| (2..=60).contains(&t.as_secs()))?;
        (keys.len() == raw.keys.len() && !keys.is_empty() && !raw.issuer.is_empty()).then(|| {
            AssertionOptions {
                issuer: raw.issuer.clone(),
                ttl,
                keys,
            }
        })
    }

    /// Each `upstream.<name>.assertion_audience`: only with `[assertion]`
    /// keys to sign with, and printable as a JWT `aud`.
    pub(super) fn assertion_audiences(
        &mut self,
        upstreams: &[UpstreamOptions],
        assertion: Option<&AssertionOptions>,
    ) {
        for u in upstreams {
            match &u.assertion_audience {
                Some(aud) if assertion.is_none() => self.problem(
                    &format!("upstream.{}.assertion_audience", u.name),
                    format!("{aud:?} needs [assertion] keys to sign with"),
                ),
                Some(aud) if aud.is_empty() || !aud.bytes().all(|b| b.is_ascii_graphic()) => self
                    .problem(
                        &format!("upstream.{}.assertion_audience", u.name),
                        format!("must be printable ASCII without spaces (got {aud:?})"),
                    ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        assert_refused, assert_refused_in, minimal, minimal_with, valid, valid_in, Scratch,
        SECRET_VAR,
    };
    use super::*;

    /// The minimal config with `lines` in `[assertion]`.
    fn assertion(lines: &str) -> String {
        minimal(&format!("[assertion]\n{lines}\n"))
    }

    /// An Ed25519 PKCS#8 PEM key written to `name` in `dir`.
    fn ed25519(dir: &Scratch, name: &str) -> std::path::PathBuf {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        dir.write(name, pair.serialize_pem())
    }

    #[test]
    fn assertion_defaults_apply_when_unset() {
        assert!(valid(&minimal("")).assertion.is_none());
        let dir = Scratch::new();
        let key = ed25519(&dir, "a.pem");
        let c = valid_in(&assertion("keys = [{ file = \"a.pem\" }]"), dir.path());
        let a = c.assertion.expect("assertion options");
        assert_eq!(a.issuer, "sessiongate");
        assert_eq!(a.ttl, Duration::from_secs(60));
        assert_eq!(a.keys.len(), 1);
        assert_eq!(c.files, [key]);
    }

    #[test]
    fn keys_keep_their_order_and_audiences_need_them() {
        let dir = Scratch::new();
        ed25519(&dir, "new.pem");
        ed25519(&dir, "old.pem");
        let text = minimal_with("[upstream.app]", "assertion_audience = \"app\"")
            + "[assertion]\nkeys = [{ file = \"new.pem\" }, { file = \"old.pem\" }]\nissuer = \"gate\"\nttl = \"2s\"\n";
        let c = valid_in(&text, dir.path());
        let a = c.assertion.expect("assertion options");
        let kid = |f: &str| {
            let pem = std::fs::read(dir.path().join(f)).unwrap();
            AssertionKey::from_pem(&pem).unwrap().kid
        };
        // The first signs: the order is the config's.
        let kids: Vec<&str> = a.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [kid("new.pem"), kid("old.pem")]);
        assert_eq!((a.issuer.as_str(), a.ttl), ("gate", Duration::from_secs(2)));
        assert_eq!(c.upstreams[0].assertion_audience.as_deref(), Some("app"));
    }

    #[test]
    fn each_assertion_refusal_names_its_key_and_value() {
        let dir = Scratch::new();
        ed25519(&dir, "a.pem");
        let p256 = dir.write(
            "p256.pem",
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
        let with_key =
            |lines: &str| assertion(&format!("keys = [{{ file = \"a.pem\" }}]\n{lines}"));
        let audience = |aud: &str| {
            minimal_with("[upstream.app]", &format!("assertion_audience = \"{aud}\""))
                + "[assertion]\nkeys = [{ file = \"a.pem\" }]\n"
        };
        let cases = [
            (
                with_key("ttl = \"1s\""),
                "assertion.ttl: must be 2s to 60s (got \"1s\")".to_owned(),
            ),
            (
                with_key("ttl = \"61s\""),
                "assertion.ttl: must be 2s to 60s (got \"61s\")".to_owned(),
            ),
            (
                with_key("ttl = \"0s\""),
                "assertion.ttl: must be greater than zero (got \"0s\")".to_owned(),
            ),
            (
                assertion(""),
                "assertion.keys: at least one key, e.g. keys = [{ file = \"assertion.pem\" }]".to_owned(),
            ),
            (
                with_key("issuer = \"\""),
                "assertion.issuer: must not be empty".to_owned(),
            ),
            (
                assertion(&format!("keys = [{{ env = \"{SECRET_VAR}\" }}]")),
                "assertion.keys[0]: give file = \"path\" (a PEM key file)".to_owned(),
            ),
            (
                assertion("keys = [{ file = \"a.pem\" }, { file = \"absent.pem\" }]"),
                format!("assertion.keys[1]: cannot read {}: ", dir.path().join("absent.pem").display()),
            ),
            (
                assertion("keys = [{ file = \"p256.pem\" }]"),
                format!(
                    "assertion.keys[0]: {}: not an Ed25519 key (make one with: openssl genpkey -algorithm ed25519)",
                    p256.display()
                ),
            ),
            (
                audience("a b"),
                "upstream.app.assertion_audience: must be printable ASCII without spaces (got \"a b\")".to_owned(),
            ),
            (
                audience(""),
                "upstream.app.assertion_audience: must be printable ASCII without spaces (got \"\")".to_owned(),
            ),
        ];
        for (text, want) in cases {
            assert_refused_in(&text, dir.path(), &want);
        }
        // Without [assertion] there is nothing to sign with.
        assert_refused(
            &minimal_with("[upstream.app]", "assertion_audience = \"app\""),
            "upstream.app.assertion_audience: \"app\" needs [assertion] keys to sign with",
        );
    }
}
