//! The client listener's TLS certificates: a chain and key loaded from PEM
//! files, checked to belong together, and held where rustls asks for them at
//! every handshake, so a reload swaps them under running listeners.
//!
//! pingora's rustls listener loads its pair once at start (and panics on a bad
//! one: pingora#619, #927, open); it also takes a certificate resolver instead
//! (PR #877). [`Certificates`] is that
//! resolver: each handshake reads the current pair, one atomic load, and a
//! reload stores a new pair. Connections already open keep the session they
//! negotiated; the next handshake gets the new pair. Protocol versions (1.2 and
//! 1.3 only) and ALPN are pingora's listener settings (see `server`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

/// Why a certificate pair was not loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")]
    NoKey { path: PathBuf },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    /// The key is unsupported, or is not the key of the first certificate.
    #[error("{key} does not go with {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// A certificate chain (leaf first) and its private key, checked to match.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub key: Arc<CertifiedKey>,
}

impl Pair {
    /// Load and check `cert_file` (PEM chain, leaf first) and `key_file`.
    ///
    /// # Errors
    /// An unreadable file, no certificate or key in it, an unsupported key,
    /// or a key that is not the leaf certificate's.
    pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<Pair, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })
        };
        let pem = |path: &Path, message: std::io::Error| Error::Pem {
            path: path.to_owned(),
            message: message.to_string(),
        };
        let chain = rustls_pemfile::certs(&mut read(cert_file)?.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(cert_file, e))?;
        if chain.is_empty() {
            return Err(Error::NoCertificate {
                path: cert_file.to_owned(),
            });
        }
        let key = rustls_pemfile::private_key(&mut read(key_file)?.as_slice())
            .map_err(|e| pem(key_file, e))?
            .ok_or_else(|| Error::NoKey {
                path: key_file.to_owned(),
            })?;
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| Error::Mismatch {
            cert: cert_file.to_owned(),
            key: key_file.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Pair { key: Arc::new(key) })
    }
}

/// One `[[server.tls]]`: addresses that speak TLS, and their pair.
#[derive(Debug, Clone)]
pub(crate) struct TlsListener {
    pub listen: Vec<std::net::SocketAddr>,
    pub pair: Pair,
}

/// The crypto pingora's rustls build uses (ring), installed as the process
/// default on first use: pingora's listener asks for the default.
fn provider() -> Arc<pingora::tls::CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    pingora::tls::CryptoProvider::get_default()
        .cloned()
        .expect("installed just above")
}

/// The current pair of one TLS listener, read at each handshake.
#[derive(Debug)]
pub(crate) struct Certificates {
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    /// Serve `pair` until [`Certificates::replace`].
    pub(crate) fn new(pair: &Pair) -> Arc<Certificates> {
        Arc::new(Certificates {
            current: ArcSwap::new(pair.key.clone()),
        })
    }

    /// Serve `pair` from the next handshake on.
    pub(crate) fn replace(&self, pair: &Pair) {
        self.current.store(pair.key.clone());
    }

    /// The pair served now.
    #[cfg(test)]
    fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

/// One certificate per listener, whatever name the client asks for (SNI): the
/// operator's certificate says which names it is for, and clients check that.
impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pair_pem() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_and_a_mismatched_one_is_refused() {
        let dir = tempdir();
        let (cert, key) = pair_pem();
        let (_, other_key) = pair_pem();
        let c = write(&dir, "cert.pem", &cert);
        let k = write(&dir, "key.pem", &key);
        let wrong = write(&dir, "other.pem", &other_key);
        assert!(Pair::load(&c, &k).is_ok());
        let e = Pair::load(&c, &wrong).unwrap_err().to_string();
        assert!(e.contains("does not go with"), "{e}");
    }

    #[test]
    fn files_without_pem_items_name_what_is_missing() {
        let dir = tempdir();
        let (cert, key) = pair_pem();
        let c = write(&dir, "cert.pem", &cert);
        let k = write(&dir, "key.pem", &key);
        let junk = write(&dir, "junk.pem", "not pem at all\n");
        let e = Pair::load(&junk, &k).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = Pair::load(&c, &junk).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
        let e = Pair::load(&dir.join("absent.pem"), &k)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read"), "{e}");
        // A key file that holds only a certificate is not a key.
        let e = Pair::load(&c, &c).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
    }

    #[test]
    fn replace_changes_what_the_next_handshake_gets() {
        let dir = tempdir();
        let (c1, k1) = pair_pem();
        let (c2, k2) = pair_pem();
        let one = Pair::load(&write(&dir, "c1", &c1), &write(&dir, "k1", &k1)).unwrap();
        let two = Pair::load(&write(&dir, "c2", &c2), &write(&dir, "k2", &k2)).unwrap();
        let certs = Certificates::new(&one);
        assert_eq!(certs.current().cert, one.key.cert);
        certs.replace(&two);
        assert_eq!(certs.current().cert, two.key.cert);
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sessiongate-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
