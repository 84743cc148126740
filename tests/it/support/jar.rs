//! A browser's cookie jar for one host: what `Set-Cookie` sets is sent back,
//! a cleared cookie is forgotten.

use std::collections::BTreeMap;

use super::{form, Gate, Req, Resp};

/// A browser's cookies for one gate: what `Set-Cookie` sets, sent back.
#[derive(Default, Clone)]
pub struct Jar(BTreeMap<String, String>);

impl Jar {
    pub fn take(&mut self, resp: &Resp) {
        for c in resp.all("set-cookie") {
            let pair = c.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let cleared = value.is_empty() || c.contains("Max-Age=0");
            if cleared {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Only the named cookie, as its own `Cookie` header.
    pub fn only(&self, name: &str) -> String {
        format!("{name}={}", self.0[name])
    }

    pub fn send(&mut self, req: Req) -> Resp {
        let req = if self.0.is_empty() {
            req
        } else {
            req.cookie(&self.header())
        };
        let resp = req.send();
        self.take(&resp);
        resp
    }

    /// As [`Jar::send`], but `None` when no answer came (a killed gate).
    pub fn try_send(&mut self, req: Req) -> Option<Resp> {
        let req = if self.0.is_empty() {
            req
        } else {
            req.cookie(&self.header())
        };
        let resp = req.send_or_why().ok()?;
        self.take(&resp);
        Some(resp)
    }

    pub fn get(&mut self, gate: &Gate, target: &str) -> Resp {
        self.send(gate.get(target).browser())
    }

    pub fn post(&mut self, gate: &Gate, target: &str, pairs: &[(&str, &str)]) -> Resp {
        self.send(form_post(gate, target, pairs))
    }

    /// As [`Jar::post`], but `None` when no answer came (a killed gate).
    pub fn try_post(&mut self, gate: &Gate, target: &str, pairs: &[(&str, &str)]) -> Option<Resp> {
        self.try_send(form_post(gate, target, pairs))
    }

    /// The password step: 303 on to the factor (or in).
    pub fn password(
        &mut self,
        gate: &Gate,
        (user, password, ..): (&str, &str, &str, bool),
    ) -> Resp {
        self.post(
            gate,
            "/.sessiongate/login",
            &[
                ("username", user),
                ("password", password),
                ("next", "/app?x=1"),
            ],
        )
    }
}

/// A same-origin form POST, as a browser sends it.
fn form_post(gate: &Gate, target: &str, pairs: &[(&str, &str)]) -> Req {
    gate.req("POST", target)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", "http://app.test")
        .body(&form(pairs))
}
