//! The proxy of the current config generation, swapped whole on reload.
//!
//! A [`Proxy`] is immutable: the rules, upstreams, session options and auth of
//! one config. [`CurrentProxy`] is what pingora runs: at each request it takes the
//! current proxy (one atomic load and a reference count) and hands every phase
//! of that request to the same proxy. So a request is decided by the old config
//! or by the new one from start to end, never by a mix, and a reload never
//! waits for requests in flight.
//!
//! Each phase runs [`in_request`], so every event it logs carries the request
//! id; the id is settled first thing ([`Proxy::note_peer`]).

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use super::request_id::{in_request, LogId};
use super::{Ctx, Downstream, Proxy};
use crate::session::SessionStore;

/// The current proxy, shared by every worker and by the reloader that swaps it.
pub(crate) struct CurrentProxy<S> {
    current: Arc<ArcSwap<Proxy<S>>>,
}

impl<S> CurrentProxy<S> {
    /// Serve whatever proxy `current` holds.
    pub(crate) fn new(current: Arc<ArcSwap<Proxy<S>>>) -> Self {
        CurrentProxy { current }
    }
}

/// One request's state and the proxy generation that serves it.
pub(crate) struct ProxyCtx<S> {
    proxy: Arc<Proxy<S>>,
    ctx: Ctx,
}

#[async_trait]
impl<S: SessionStore> ProxyHttp for CurrentProxy<S> {
    type CTX = ProxyCtx<S>;

    fn new_ctx(&self) -> ProxyCtx<S> {
        let proxy = self.current.load_full();
        let ctx = proxy.new_ctx();
        ProxyCtx { proxy, ctx }
    }

    async fn request_filter(&self, session: &mut Downstream, p: &mut ProxyCtx<S>) -> Result<bool> {
        p.proxy.note_peer(session, &mut p.ctx);
        let id = LogId::of(&p.ctx.id);
        in_request(id, p.proxy.request_filter(session, &mut p.ctx)).await
    }

    async fn upstream_peer(
        &self,
        session: &mut Downstream,
        p: &mut ProxyCtx<S>,
    ) -> Result<Box<HttpPeer>> {
        let id = LogId::of(&p.ctx.id);
        in_request(id, p.proxy.upstream_peer(session, &mut p.ctx)).await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Downstream,
        req: &mut RequestHeader,
        p: &mut ProxyCtx<S>,
    ) -> Result<()> {
        let id = LogId::of(&p.ctx.id);
        in_request(
            id,
            p.proxy.upstream_request_filter(session, req, &mut p.ctx),
        )
        .await
    }

    async fn response_filter(
        &self,
        session: &mut Downstream,
        resp: &mut ResponseHeader,
        p: &mut ProxyCtx<S>,
    ) -> Result<()> {
        let id = LogId::of(&p.ctx.id);
        in_request(id, p.proxy.response_filter(session, resp, &mut p.ctx)).await
    }

    fn request_summary(&self, session: &Downstream, p: &ProxyCtx<S>) -> String {
        p.proxy.request_summary(session, &p.ctx)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Downstream,
        e: &Error,
        p: &mut ProxyCtx<S>,
    ) -> FailToProxy {
        let id = LogId::of(&p.ctx.id);
        in_request(id, p.proxy.fail_to_proxy(session, e, &mut p.ctx)).await
    }

    async fn logging(&self, session: &mut Downstream, e: Option<&Error>, p: &mut ProxyCtx<S>) {
        let id = LogId::of(&p.ctx.id);
        in_request(id, p.proxy.logging(session, e, &mut p.ctx)).await;
    }
}
