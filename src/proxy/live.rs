//! The gate of the current config generation, swapped whole on reload.
//!
//! A [`Gate`] is immutable: the rules, upstreams, session options and login of
//! one config. [`Live`] is what pingora runs: at each request it takes the
//! current gate (one atomic load and a reference count) and hands every phase
//! of that request to the same gate. So a request is decided by the old config
//! or by the new one from start to end, never by a mix, and a reload never
//! waits for requests in flight.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use super::{Ctx, Downstream, Gate};
use crate::session::SessionStore;

/// The current gate, shared by every worker and by the reloader that swaps it.
pub struct Live<S> {
    current: Arc<ArcSwap<Gate<S>>>,
}

impl<S> Live<S> {
    /// Serve whatever gate `current` holds.
    pub fn new(current: Arc<ArcSwap<Gate<S>>>) -> Self {
        Live { current }
    }
}

/// One request's state and the gate that serves it.
pub struct Pinned<S> {
    gate: Arc<Gate<S>>,
    ctx: Ctx,
}

#[async_trait]
impl<S: SessionStore> ProxyHttp for Live<S> {
    type CTX = Pinned<S>;

    fn new_ctx(&self) -> Pinned<S> {
        let gate = self.current.load_full();
        let ctx = gate.new_ctx();
        Pinned { gate, ctx }
    }

    async fn request_filter(&self, session: &mut Downstream, p: &mut Pinned<S>) -> Result<bool> {
        p.gate.request_filter(session, &mut p.ctx).await
    }

    async fn upstream_peer(
        &self,
        session: &mut Downstream,
        p: &mut Pinned<S>,
    ) -> Result<Box<HttpPeer>> {
        p.gate.upstream_peer(session, &mut p.ctx).await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Downstream,
        req: &mut RequestHeader,
        p: &mut Pinned<S>,
    ) -> Result<()> {
        p.gate
            .upstream_request_filter(session, req, &mut p.ctx)
            .await
    }

    async fn response_filter(
        &self,
        session: &mut Downstream,
        resp: &mut ResponseHeader,
        p: &mut Pinned<S>,
    ) -> Result<()> {
        p.gate.response_filter(session, resp, &mut p.ctx).await
    }

    fn request_summary(&self, session: &Downstream, p: &Pinned<S>) -> String {
        p.gate.request_summary(session, &p.ctx)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Downstream,
        e: &Error,
        p: &mut Pinned<S>,
    ) -> FailToProxy {
        p.gate.fail_to_proxy(session, e, &mut p.ctx).await
    }

    async fn logging(&self, session: &mut Downstream, e: Option<&Error>, p: &mut Pinned<S>) {
        p.gate.logging(session, e, &mut p.ctx).await;
    }
}
