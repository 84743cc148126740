//! TLS for the gate's `[[server.tls]]` listener: a throwaway certificate
//! authority ([`Ca`]) with a `localhost` leaf, the config block naming its
//! files, a gate started with both ([`tls_gate`]), and curl as the client
//! that checks them ([`curl`]). The HTTP/2 frames tests write by hand stay
//! in their own test module.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::backend::Backend;
use super::config::standard_config;
use super::gate::{Gate, SECRET};
use super::process::free_addr;
use super::wait::wait_for;

/// A throwaway certificate authority and a `localhost` leaf it signed.
pub struct Ca {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    ca_key: rcgen::KeyPair,
    ca_cert: rcgen::Certificate,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        Ca {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            ca_key,
            ca_cert: ca,
        }
    }

    /// Another leaf this CA signs, for `names` (DNS names, `*.` wildcards
    /// allowed; the first is its common name too): its certificate and key, PEM.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let owned = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(owned).unwrap();
        // The first name as the subject too, so a client can tell which was served.
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let leaf = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        (leaf.pem(), key.serialize_pem())
    }

    /// Write `cert.pem` and `key.pem` into `dir` (atomically: a rename each).
    pub fn install(&self, dir: &Path) {
        for (name, text) in [("cert.pem", &self.cert_pem), ("key.pem", &self.key_pem)] {
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
    }

    /// The CA certificate as a file for curl's `--cacert`.
    pub fn ca_file(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// The `[[server.tls]]` block for `addr` with the files `Ca::install` writes.
pub fn tls_section(addr: SocketAddr) -> String {
    format!(
        "\n[[server.tls]]\nlisten = [\"{addr}\"]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n"
    )
}

/// A gate with a plain and a TLS listener, its certificate from `ca`:
/// `server` keys (they land in the `[server]` section the harness opens),
/// then [`standard_config`] with `extra`. Returns once the TLS listener
/// serves `/public` to curl.
pub fn tls_gate(backend: &Backend, ca: &Ca, server: &str, extra: &str) -> (Gate, SocketAddr) {
    let tls = free_addr();
    let config = format!(
        "{server}\n{}{}",
        standard_config(backend.addr, extra),
        tls_section(tls)
    );
    let gate = Gate::start_with(
        &config,
        &[("cert.pem", &ca.cert_pem), ("key.pem", &ca.key_pem)],
        &[("TEST_SECRET", SECRET)],
    );
    let ca_file = ca.ca_file(gate.dir(), "ca.pem");
    wait_for(Duration::from_secs(10), "the TLS listener", || {
        curl(tls, &ca_file, "/public", &["--http1.1"]).status == 200
    });
    (gate, tls)
}

/// What curl saw: the HTTP version, the status, the headers and the body.
#[derive(Debug)]
pub struct Curl {
    pub ok: bool,
    pub version: String,
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

/// `curl https://localhost:<port><path>` trusting only `ca`, with `args`.
pub fn curl(tls: SocketAddr, ca: &Path, path: &str, args: &[&str]) -> Curl {
    curl_at("localhost", tls, ca, path, args)
}

/// `curl https://<name>:<port><path>`, `name` resolved to the listener
/// (the name is the TLS SNI and the Host), trusting only `ca`.
pub fn curl_at(name: &str, tls: SocketAddr, ca: &Path, path: &str, args: &[&str]) -> Curl {
    let port = tls.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .args(["-D", "-", "-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .expect("curl (Debian package curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, last) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (version, status) = last.split_once(' ').unwrap_or(("", "0"));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    Curl {
        ok: out.status.success(),
        version: version.to_owned(),
        status: status.parse().unwrap_or(0),
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
