//! `[auth.ldap]`: the directory's URL and how it is protected (`ldaps://`,
//! or `ldap://` with StartTLS; plain only when `allow_plain` and on a
//! loopback address), the service account (its password from env or file),
//! the filters (`{user}` once in `user_filter`, `{dn}` once in
//! `group_filter`), the attribute names and the roles map (each role in the
//! identity alphabet), and the durations.

use std::path::Path;

use super::Validator;
use crate::auth::ldap::{Groups, LdapOptions};
use crate::auth::names;
use crate::config::raw::RawLdap;

/// An attribute name or OID: what `ldap3` will send as it is.
fn is_attribute(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b';')
}

/// A filter in parentheses with `placeholder` exactly once.
fn is_filter(f: &str, placeholder: &str) -> bool {
    f.starts_with('(') && f.ends_with(')') && f.matches(placeholder).count() == 1
}

impl Validator {
    pub(super) fn ldap(&mut self, raw: RawLdap, base: &Path) -> Option<LdapOptions> {
        let before = self.problems.len();
        let url = url::Url::parse(&raw.url).ok();
        let loopback = match url.as_ref().and_then(|u| u.host()) {
            // ldap:// is not a special scheme: its host stays a string.
            Some(url::Host::Domain(d)) => {
                d == "localhost"
                    || d.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_loopback())
            }
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        };
        match url.as_ref().map(url::Url::scheme) {
            Some("ldaps") if !raw.start_tls => {}
            Some("ldaps") => self.problem(
                "auth.ldap.start_tls",
                "ldaps:// is TLS already; StartTLS is for ldap://",
            ),
            Some("ldap") if raw.start_tls => {}
            Some("ldap") if raw.allow_plain && loopback => {}
            Some("ldap") => self.problem(
                "auth.ldap.url",
                format!("{:?} would send passwords in clear: use ldaps://, or start_tls = true (allow_plain is for a loopback test server only)", raw.url),
            ),
            _ => self.problem(
                "auth.ldap.url",
                format!("must be an ldaps:// or ldap:// URL (got {:?})", raw.url),
            ),
        }
        if url
            .as_ref()
            .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            self.problem(
                "auth.ldap.url",
                "must not carry credentials: bind_dn and bind_password say who binds",
            );
        }
        let bind_password = self.secret_text("auth.ldap.bind_password", &raw.bind_password, base);
        for (key, dn) in [("bind_dn", &raw.bind_dn), ("base_dn", &raw.base_dn)] {
            if dn.is_empty() || !dn.contains('=') {
                self.problem(
                    &format!("auth.ldap.{key}"),
                    format!("must be a DN like \"dc=example,dc=com\" (got {dn:?})"),
                );
            }
        }
        if !is_filter(&raw.user_filter, "{user}") {
            self.problem(
                "auth.ldap.user_filter",
                format!("must be a filter in parentheses with {{user}} once, like \"(&(objectClass=person)(uid={{user}}))\" (got {:?})", raw.user_filter),
            );
        }
        for (key, a) in [
            ("user_attribute", &raw.user_attribute),
            ("group_attribute", &raw.group_attribute),
        ] {
            if !is_attribute(a) {
                self.problem(
                    &format!("auth.ldap.{key}"),
                    format!("must be an attribute name (got {a:?})"),
                );
            }
        }
        let groups = match raw.group_base_dn {
            Some(base_dn) => {
                if !is_filter(&raw.group_filter, "{dn}") {
                    self.problem(
                        "auth.ldap.group_filter",
                        format!("must be a filter in parentheses with {{dn}} once, like \"(member={{dn}})\" (got {:?})", raw.group_filter),
                    );
                }
                Groups::Search {
                    base_dn,
                    filter: raw.group_filter,
                }
            }
            None => Groups::Attribute(raw.group_attribute),
        };
        for (group, role) in &raw.roles_map {
            if let Err(rule) = names::check_role(role) {
                self.problem(
                    &format!("auth.ldap.roles_map.{group:?}"),
                    format!("{rule} (got {role:?})"),
                );
            }
        }
        let timeout = self.duration("auth.ldap.timeout", &raw.timeout);
        let cache_ttl = self.duration("auth.ldap.cache_ttl", &raw.cache_ttl);
        if self.problems.len() > before {
            return None;
        }
        Some(LdapOptions {
            url: raw.url,
            start_tls: raw.start_tls,
            bind_dn: raw.bind_dn,
            bind_password: bind_password?,
            base_dn: raw.base_dn,
            user_filter: raw.user_filter,
            user_attribute: raw.user_attribute,
            groups,
            roles_map: raw.roles_map,
            timeout: timeout?,
            cache_ttl: cache_ttl?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{minimal, problems, NODE_PASSWORD_VAR};

    fn with_ldap(keys: &str) -> Vec<String> {
        problems(&minimal(&format!(
            "[auth.ldap]\nbind_dn = \"cn=svc,dc=example,dc=com\"\nbind_password = {{ env = \"{NODE_PASSWORD_VAR}\" }}\nbase_dn = \"dc=example,dc=com\"\n{keys}\n"
        )))
    }

    #[test]
    fn passwords_never_travel_in_clear_to_a_remote_directory() {
        assert!(with_ldap("url = \"ldaps://dc.example.com\"").is_empty());
        assert!(with_ldap("url = \"ldap://dc.example.com\"\nstart_tls = true").is_empty());
        assert!(with_ldap("url = \"ldap://127.0.0.1:3389\"\nallow_plain = true").is_empty());
        for (keys, want) in [
            (
                "url = \"ldap://dc.example.com\"",
                "auth.ldap.url: \"ldap://dc.example.com\" would send passwords in clear",
            ),
            (
                "url = \"ldap://dc.example.com\"\nallow_plain = true",
                "would send passwords in clear",
            ),
            (
                "url = \"ldaps://dc.example.com\"\nstart_tls = true",
                "auth.ldap.start_tls",
            ),
            (
                "url = \"https://dc.example.com\"",
                "must be an ldaps:// or ldap:// URL",
            ),
            (
                "url = \"ldaps://u:p@dc.example.com\"",
                "must not carry credentials",
            ),
        ] {
            let p = with_ldap(keys);
            assert!(p.iter().any(|l| l.contains(want)), "{keys}: {p:?}");
        }
    }

    #[test]
    fn filters_attributes_and_roles_are_checked() {
        let url = "url = \"ldaps://dc.example.com\"\n";
        for (keys, want) in [
            ("user_filter = \"uid={user}\"", "auth.ldap.user_filter"),
            ("user_filter = \"(uid=alice)\"", "auth.ldap.user_filter"),
            (
                "user_filter = \"(|(uid={user})(mail={user}))\"",
                "auth.ldap.user_filter",
            ),
            (
                "group_base_dn = \"ou=g,dc=x\"\ngroup_filter = \"(member=x)\"",
                "auth.ldap.group_filter",
            ),
            ("user_attribute = \"uid)(x\"", "auth.ldap.user_attribute"),
            (
                "roles_map = { \"admins\" = \"a,b\" }",
                "auth.ldap.roles_map",
            ),
            ("timeout = \"0s\"", "auth.ldap.timeout"),
        ] {
            let p = with_ldap(&format!("{url}{keys}"));
            assert!(p.iter().any(|l| l.starts_with(want)), "{keys}: {p:?}");
        }
    }
}
