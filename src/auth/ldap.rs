//! Sign-in with a directory account (`[auth.ldap]`): Active Directory,
//! OpenLDAP, LLDAP, through `ldap3`.
//!
//! A password sign-in for a name the users file does not have comes here
//! ([`super::password`]; the users file wins for the names it has):
//!
//! 1. An empty password is refused before anything is sent: a simple bind
//!    with one is an *unauthenticated* bind, which many servers accept
//!    (RFC 4513 §5.1.2) and which would prove nothing.
//! 2. The service account (`bind_dn`, its password from env or file) finds
//!    the user: `user_filter` with `{user}` replaced by the typed name,
//!    escaped per RFC 4515 (`*`, `(`, `)`, `\` and NUL become `\2a`, …), so
//!    a typed name can never widen the filter. Exactly one entry, or nobody.
//! 3. A bind as that entry's DN with the typed password proves the password.
//!    When nobody was found, a bind with a DN that does not exist is made
//!    anyway, so an unknown name and a wrong password cost the same round
//!    trips and look the same.
//! 4. The user name is the entry's `user_attribute` as the directory spells
//!    it; groups (`memberOf`, or a group search) become roles through
//!    `roles_map`, as with OpenID Connect. Both go through the identity
//!    alphabet; a name outside it cannot sign in, a group outside it is left out.
//!
//! A directory that cannot be reached or answers with an error is
//! [`Checked::Unavailable`]: a clear failure on the login page (503), never
//! a sign-in. The service account's connection is kept and shared (an
//! `ldap3` connection carries many operations at once) and made again when
//! it breaks; each user bind has a connection of its own, closed after it.
//! Every operation has `timeout`. What a lookup found (the DN, the name,
//! the groups) is kept `cache_ttl` (moka), so a group change reaches the
//! next sign-in within that time; a session keeps the roles it signed in with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::names;

/// The result code of a bind with wrong credentials (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;
/// Most roles taken from one account's groups.
const MAX_ROLES: usize = 64;
/// Most lookups remembered at once.
const CACHE_CAPACITY: u64 = 10_000;

/// Where a user's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Groups {
    /// An attribute of the user's entry holding group DNs (`memberOf`).
    Attribute(String),
    /// A search under `base_dn` with `filter`, `{dn}` replaced by the
    /// user's DN (escaped): `(member={dn})`.
    Search { base_dn: String, filter: String },
}

/// `[auth.ldap]`, validated.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LdapOptions {
    /// `ldaps://host[:port]`, or `ldap://` with StartTLS (or plain, on a
    /// loopback address, when `allow_plain`).
    pub url: String,
    pub start_tls: bool,
    pub bind_dn: String,
    pub bind_password: String,
    pub base_dn: String,
    /// An LDAP filter with `{user}` once.
    pub user_filter: String,
    /// The attribute whose value is the user name (`uid`, `sAMAccountName`).
    pub user_attribute: String,
    pub groups: Groups,
    /// A group's name (its DN's first value) to a role; others stay as named.
    pub roles_map: BTreeMap<String, String>,
    pub timeout: Duration,
    pub cache_ttl: Duration,
}

impl std::fmt::Debug for LdapOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapOptions")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("base_dn", &self.base_dn)
            .finish_non_exhaustive()
    }
}

/// What the directory said of a typed name and password.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The password is right: the user name, roles, and the attributes
    /// asked for (claim, value).
    User(String, Vec<String>, Vec<(String, String)>),
    /// Nobody by that name, or a wrong password: one answer for both.
    Invalid,
    /// The directory could not be asked.
    Unavailable,
}

/// An account as a lookup found it.
#[derive(Debug)]
struct Account {
    dn: String,
    user: String,
    roles: Vec<String>,
    /// The attributes asked for, by claim (`email` is `mail`, `name` is
    /// `displayName`, any other claim the attribute of its name).
    attributes: Vec<(String, String)>,
}

/// The directory: its settings, the service connection, the lookups kept.
pub(crate) struct Directory {
    options: LdapOptions,
    service: tokio::sync::Mutex<Option<Ldap>>,
    found: moka::sync::Cache<String, Arc<Account>>,
}

impl Directory {
    pub(crate) fn new(options: LdapOptions) -> Directory {
        Directory {
            found: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(options.cache_ttl)
                .build(),
            options,
            service: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn options(&self) -> &LdapOptions {
        &self.options
    }

    /// Check `password` for the name typed as `typed` (already in its
    /// canonical form: the throttle's).
    pub(crate) async fn check(&self, typed: &str, password: &str, claims: &[&str]) -> Checked {
        // NUL ends a C string: some servers would read less than was typed.
        if password.is_empty() || typed.is_empty() || password.contains('\0') {
            return Checked::Invalid;
        }
        let account = match self.found.get(typed) {
            Some(a) => Some(a),
            None => match self.lookup(typed, claims).await {
                Ok(Some(a)) => {
                    let a = Arc::new(a);
                    self.found.insert(typed.to_owned(), a.clone());
                    Some(a)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(target: "auth", error = %e, "directory lookup failed");
                    return Checked::Unavailable;
                }
            },
        };
        // Nobody: a bind all the same, with a DN that names nobody.
        let dn = account.as_ref().map_or_else(
            || format!("cn=sessiongate-nobody,{}", self.options.base_dn),
            |a| a.dn.clone(),
        );
        match (self.bind(&dn, password).await, account) {
            (Ok(0), Some(a)) => {
                Checked::User(a.user.clone(), a.roles.clone(), a.attributes.clone())
            }
            // Nobody: whatever the server said of the made-up DN (49, or
            // 32 "no such object"), the same answer as a wrong password.
            (Ok(_), None) | (Ok(INVALID_CREDENTIALS), Some(_)) => Checked::Invalid,
            (Ok(rc), Some(_)) => {
                tracing::error!(target: "auth", rc, "directory bind failed");
                Checked::Unavailable
            }
            (Err(e), _) => {
                tracing::error!(target: "auth", error = %e, "directory bind failed");
                Checked::Unavailable
            }
        }
    }

    /// A connection to the directory, per the settings.
    async fn connect(&self) -> ldap3::result::Result<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.options.timeout)
            .set_starttls(self.options.start_tls);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.options.url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The service account's connection, bound, made again when it broke.
    async fn service(&self) -> ldap3::result::Result<Ldap> {
        let mut held = self.service.lock().await;
        if let Some(l) = held.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
        }
        let mut ldap = self.connect().await?;
        ldap.with_timeout(self.options.timeout)
            .simple_bind(&self.options.bind_dn, &self.options.bind_password)
            .await?
            .success()?;
        *held = Some(ldap.clone());
        Ok(ldap)
    }

    /// Forget the service connection (it failed): the next lookup makes one.
    async fn drop_service(&self) {
        *self.service.lock().await = None;
    }

    /// The one account `typed` names, if any.
    async fn lookup(&self, typed: &str, claims: &[&str]) -> ldap3::result::Result<Option<Account>> {
        let o = &self.options;
        let filter = o.user_filter.replace("{user}", &ldap_escape(typed));
        let mut wanted = vec![o.user_attribute.as_str()];
        if let Groups::Attribute(a) = &o.groups {
            wanted.push(a);
        }
        wanted.extend(claims.iter().map(|c| attribute_of(c)));
        let mut ldap = self.service().await?;
        let found = ldap
            .with_timeout(o.timeout)
            .search(&o.base_dn, Scope::Subtree, &filter, wanted)
            .await
            .and_then(|r| r.success());
        let entries = match found {
            Ok((entries, _)) => entries,
            Err(e) => {
                self.drop_service().await;
                return Err(e);
            }
        };
        // Two entries for one name: nobody, rather than a guess.
        if entries.len() > 1 {
            tracing::warn!(target: "auth", "a name matched more than one directory entry: refused");
        }
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry);
        let Some(user) = first(&entry, &o.user_attribute) else {
            return Ok(None);
        };
        if names::check_user(&user).is_err() {
            tracing::warn!(target: "auth", "a directory user name outside the identity alphabet cannot sign in");
            return Ok(None);
        }
        let groups = match &o.groups {
            // Attribute names are case-insensitive (`memberOf`, `memberof`).
            Groups::Attribute(a) => entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                .map(|(_, dns)| dns.iter().filter_map(|dn| rdn_value(dn)).collect())
                .unwrap_or_default(),
            Groups::Search { base_dn, filter } => {
                let filter = filter.replace("{dn}", &ldap_escape(entry.dn.as_str()));
                let (found, _) = ldap
                    .with_timeout(o.timeout)
                    .search(base_dn, Scope::Subtree, &filter, vec!["1.1"])
                    .await?
                    .success()?;
                found
                    .into_iter()
                    .filter_map(|e| rdn_value(&SearchEntry::construct(e).dn))
                    .collect::<Vec<_>>()
            }
        };
        let attributes = claims
            .iter()
            .filter_map(|c| Some(((*c).to_owned(), first(&entry, attribute_of(c))?)))
            .collect();
        Ok(Some(Account {
            dn: entry.dn,
            user,
            roles: roles(&groups, &o.roles_map),
            attributes,
        }))
    }

    /// The result code of a bind as `dn` with `password`, on a connection of
    /// its own; an error when the server could not be asked.
    async fn bind(&self, dn: &str, password: &str) -> ldap3::result::Result<u32> {
        let mut ldap = self.connect().await?;
        let result = ldap
            .with_timeout(self.options.timeout)
            .simple_bind(dn, password)
            .await;
        let _ = ldap.unbind().await;
        Ok(result?.rc)
    }
}

/// The directory attribute a claim is read from: `mail` for `email`,
/// `displayName` for `name` (as Active Directory and inetOrgPerson have
/// them), and the attribute of the claim's own name for any other.
fn attribute_of(claim: &str) -> &str {
    match claim {
        "email" => "mail",
        "name" => "displayName",
        other => other,
    }
}

/// The first value of `attribute` in `entry`.
fn first(entry: &SearchEntry, attribute: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .and_then(|(_, v)| v.first().cloned())
}

/// A group's name: the value of its DN's first component
/// (`cn=staff,ou=groups,dc=example,dc=com` is `staff`), unescaped.
fn rdn_value(dn: &str) -> Option<String> {
    let mut rdn = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => rdn.push(chars.next()?),
            ',' | '+' => break,
            c => rdn.push(c),
        }
    }
    let (_, value) = rdn.split_once('=')?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Groups to roles: through the map, each in the identity alphabet, at most
/// [`MAX_ROLES`], no repeats.
fn roles(groups: &[String], map: &BTreeMap<String, String>) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for g in groups {
        let role = map.get(g).unwrap_or(g);
        if roles.len() < MAX_ROLES && names::check_role(role).is_ok() && !roles.contains(role) {
            roles.push(role.clone());
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_name_is_its_dns_first_value() {
        assert_eq!(
            rdn_value("cn=staff,ou=groups,dc=example,dc=com").as_deref(),
            Some("staff")
        );
        assert_eq!(
            rdn_value("CN=Domain Admins,CN=Users,DC=corp").as_deref(),
            Some("Domain Admins")
        );
        assert_eq!(rdn_value(r"cn=a\,b,ou=g").as_deref(), Some("a,b"));
        assert_eq!(rdn_value("cn=,ou=g"), None);
        assert_eq!(rdn_value("garbage"), None);
        assert_eq!(rdn_value(r"cn=x\"), None);
    }

    #[test]
    fn groups_become_roles_through_the_map_and_the_alphabet() {
        let map = BTreeMap::from([("admins".to_owned(), "admin".to_owned())]);
        let groups = ["admins", "staff", "a,b", "staff"].map(String::from);
        assert_eq!(roles(&groups, &map), ["admin", "staff"]);
    }

    #[test]
    fn typed_names_cannot_widen_a_filter() {
        let f = "(&(objectClass=person)(uid={user}))".replace("{user}", &ldap_escape("*)(uid=*"));
        assert_eq!(f, r"(&(objectClass=person)(uid=\2a\29\28uid=\2a))");
        assert_eq!(ldap_escape("a\0b\\"), r"a\00b\5c");
    }
}
