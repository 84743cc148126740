//! A throwaway OpenLDAP server (Debian's `slapd`) for the `[auth.ldap]`
//! tests: its own config file and database in a scratch folder, on an
//! ephemeral loopback port, the memberof overlay on (as Active Directory
//! keeps `memberOf`), filled through `ldapadd` like a real directory, and
//! killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use super::process::{free_addr, Proc, ScratchDir};

pub const LDAP_BASE: &str = "dc=example,dc=test";
pub const LDAP_ADMIN: &str = "cn=admin,dc=example,dc=test";
pub const LDAP_ADMIN_PASSWORD: &str = "ldap-admin-password";
/// The service account sessiongate binds as.
pub const LDAP_SERVICE: &str = "cn=sessiongate,ou=services,dc=example,dc=test";
pub const LDAP_SERVICE_PASSWORD: &str = "ldap-service-password";

/// A throwaway slapd; killed on drop.
pub struct Slapd {
    pub addr: SocketAddr,
    proc: Option<Proc>,
    dir: ScratchDir,
}

impl Slapd {
    /// Start slapd and load `ldif` (the entries under [`LDAP_BASE`], after
    /// the base, `ou=people`, `ou=groups`, `ou=services` and the service account).
    pub fn start(ldif: &str) -> Slapd {
        let dir = ScratchDir::create();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {pid}
database mdb
maxsize 16777216
suffix \"{LDAP_BASE}\"
rootdn \"{LDAP_ADMIN}\"
rootpw {LDAP_ADMIN_PASSWORD}
directory {data}
overlay memberof
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
",
                pid = dir.path().join("slapd.pid").display(),
                data = data.display(),
            ),
        )
        .unwrap();
        let mut slapd = Slapd {
            addr: free_addr(),
            proc: None,
            dir,
        };
        slapd.run(&conf);
        slapd.add(&format!(
            "dn: {LDAP_BASE}
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: ou=people,{LDAP_BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{LDAP_BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{LDAP_BASE}
objectClass: organizationalUnit
ou: services

dn: {LDAP_SERVICE}
objectClass: person
cn: sessiongate
sn: service
userPassword: {LDAP_SERVICE_PASSWORD}

{ldif}"
        ));
        slapd
    }

    /// Start slapd on `self.addr`, in the foreground, and wait for it.
    fn run(&mut self, conf: &std::path::Path) {
        let mut proc = Proc::spawn(
            "slapd",
            Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(conf)
                .arg("-h")
                .arg(format!("ldap://{}/", self.addr))
                .args(["-d", "0"]),
            self.dir.path().join("slapd.log"),
        )
        .expect("slapd (install it: apt-get install -y slapd ldap-utils, or run ./test.sh)");
        proc.wait_listening(self.addr);
        self.proc = Some(proc);
    }

    /// Add entries with `ldapadd`, as the directory's administrator.
    pub fn add(&self, ldif: &str) {
        let file = self.dir.path().join("add.ldif");
        std::fs::write(&file, ldif).unwrap();
        let out = Command::new("ldapadd")
            .args(["-x", "-H", &format!("ldap://{}", self.addr)])
            .args(["-D", LDAP_ADMIN, "-w", LDAP_ADMIN_PASSWORD, "-f"])
            .arg(&file)
            .output()
            .expect("ldapadd (apt-get install -y ldap-utils, or run ./test.sh)");
        assert!(
            out.status.success(),
            "ldapadd: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop the server (the directory is down); [`Slapd::restart`] brings it back.
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Start it again on the same port, with the same data.
    pub fn restart(&mut self) {
        let conf: PathBuf = self.dir.path().join("slapd.conf");
        self.run(&conf);
    }
}

/// A user entry under `ou=people` with `uid`, password, `mail`
/// `<uid>@example.test`, and optional `employeeType` (the tests' "disabled" marker).
pub fn ldap_user(uid: &str, password: &str, employee_type: Option<&str>) -> String {
    let escaped = ldap_dn_value(uid);
    let mut e = format!(
        "dn: uid={escaped},ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\nmail: {uid}@example.test\n"
    );
    if let Some(t) = employee_type {
        e.push_str(&format!("employeeType: {t}\n"));
    }
    e + "\n"
}

/// A group entry under `ou=groups` with its members' uids.
pub fn ldap_group(cn: &str, members: &[&str]) -> String {
    let mut e = format!("dn: cn={cn},ou=groups,{LDAP_BASE}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        e.push_str(&format!(
            "member: uid={},ou=people,{LDAP_BASE}\n",
            ldap_dn_value(m)
        ));
    }
    e + "\n"
}

/// A value escaped for a DN (RFC 4514): the specials get a backslash.
fn ldap_dn_value(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
