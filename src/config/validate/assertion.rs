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
