//! The client listener's TLS certificates: chains and keys loaded from PEM
//! files, checked to belong together, and held where rustls asks for them at
//! every handshake, so a reload swaps them under running listeners. A
//! listener may have several, chosen by the name the client asks for (SNI):
//! exact names first, then a wildcard one label deep (`*.example.com` is
//! `app.example.com`, not `a.b.example.com`, as TLS clients check), then the
//! listener's first pair, for clients that send no name or an unknown one.
//! The names are the certificate's own (its DNS subject alternative names),
//! or given in the config. The name a connection asked for is kept with it
//! ([`Sni`]), so a request can be held to it (`proxy::host`).
//!
//! pingora's rustls listener loads its pair once at start (and panics on a bad
//! one: pingora#619, #927, open); it also takes a certificate resolver instead
//! (PR #877). [`Certificates`] is that
//! resolver: each handshake reads the current pair, one atomic load, and a
//! reload stores a new pair. Connections already open keep the session they
//! negotiated; the next handshake gets the new pair. Protocol versions (1.2 and
//! 1.3 only) and ALPN are pingora's listener settings (see `server`).

use std::collections::HashMap;
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

/// A certificate chain (leaf first) and its private key, checked to match,
/// and the names it is served for.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub key: Arc<CertifiedKey>,
    /// Lower case; `*.example.com` for a wildcard. The leaf's DNS names
    /// unless the config gives them.
    pub names: Vec<String>,
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
        let names = dns_names(chain[0].as_ref());
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| Error::Mismatch {
            cert: cert_file.to_owned(),
            key: key_file.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Pair {
            key: Arc::new(key),
            names,
        })
    }
}

/// The DNS names of a leaf certificate's subject alternative names, lower
/// case; none when it has none or cannot be read (it was checked to go with
/// its key already: a certificate without names serves only as a default).
fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The name a TLS connection asked for (SNI), canonical; kept with the
/// connection's digest (pingora's `SslDigest` extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sni(pub String);

/// Records each connection's SNI at the end of its handshake.
pub(crate) struct RecordSni;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for RecordSni {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let name = tls.server_name()?;
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        Some(Arc::new(Sni(name)))
    }
}

/// One `[[server.tls]]`: addresses that speak TLS, and their pairs (the
/// first is the default).
#[derive(Debug, Clone)]
pub(crate) struct TlsListener {
    pub listen: Vec<std::net::SocketAddr>,
    pub pairs: Vec<Pair>,
}

/// The crypto pingora's rustls build uses (ring), installed as the process
/// default on first use: pingora's listener asks for the default.
fn provider() -> Arc<pingora::tls::CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    pingora::tls::CryptoProvider::get_default()
        .cloned()
        .expect("installed just above")
}

/// The pairs one TLS listener serves, by name.
#[derive(Debug)]
struct Served {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Served {
    /// # Panics
    /// On no pairs: validation requires one.
    fn of(pairs: &[Pair]) -> Served {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        // The first pair naming a name serves it.
        for p in pairs {
            for n in &p.names {
                match n.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()),
                    None => exact.entry(n.clone()),
                }
                .or_insert_with(|| p.key.clone());
            }
        }
        Served {
            default: pairs[0].key.clone(),
            exact,
            wildcard,
        }
    }

    fn for_name(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

/// The current pairs of one TLS listener, read at each handshake.
#[derive(Debug)]
pub(crate) struct Certificates {
    current: ArcSwap<Served>,
}

impl Certificates {
    /// Serve `pairs` until [`Certificates::replace`].
    pub(crate) fn new(pairs: &[Pair]) -> Arc<Certificates> {
        Arc::new(Certificates {
            current: ArcSwap::from_pointee(Served::of(pairs)),
        })
    }

    /// Serve `pairs` from the next handshake on.
    pub(crate) fn replace(&self, pairs: &[Pair]) {
        self.current.store(Arc::new(Served::of(pairs)));
    }

    /// The pair served now to a client asking for `name`.
    #[cfg(test)]
    fn current(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        self.current.load().for_name(name)
    }
}

/// The pair for the name the client asks for (SNI), or the default.
impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().for_name(hello.server_name()))
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
        pair_for(&["localhost"])
    }

    fn pair_for(names: &[&str]) -> (String, String) {
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn the_name_a_client_asks_for_picks_the_pair() {
        let dir = tempdir();
        let load = |n: &str, names: &[&str]| {
            let (c, k) = pair_for(names);
            Pair::load(
                &write(&dir, &format!("{n}.c"), &c),
                &write(&dir, &format!("{n}.k"), &k),
            )
            .unwrap()
        };
        let default = load("d", &["localhost"]);
        let app = load("a", &["app.example.com", "App2.Example.com"]);
        let wild = load("w", &["*.example.org"]);
        assert_eq!(app.names, ["app.example.com", "app2.example.com"]);
        let certs = Certificates::new(&[default.clone(), app.clone(), wild.clone()]);
        let cases = [
            (None, &default),
            (Some("localhost"), &default),
            (Some("APP.example.com."), &app),
            (Some("app2.example.com"), &app),
            (Some("x.example.org"), &wild),
            // A wildcard is one label deep, and not its own domain.
            (Some("a.b.example.org"), &default),
            (Some("example.org"), &default),
            (Some("other.test"), &default),
        ];
        for (name, want) in cases {
            assert_eq!(certs.current(name).cert, want.key.cert, "{name:?}");
        }
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
        let certs = Certificates::new(std::slice::from_ref(&one));
        assert_eq!(certs.current(None).cert, one.key.cert);
        certs.replace(std::slice::from_ref(&two));
        assert_eq!(certs.current(None).cert, two.key.cert);
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
