//! The request's session, before anything is decided: loaded from its
//! cookie, re-checked at its provider when due (`auth::oidc::fresh`), taken
//! over from an Express app's express-session (`auth::import`), or made
//! anonymous with `save_uninitialized`.

use pingora::prelude::*;

use super::{client_info, store_error, Ctx, Downstream, Proxy};
use crate::auth::import::Imported;
use crate::session::SessionStore;

impl<S: SessionStore> Proxy<S> {
    /// The request's session from its cookie (and a new anonymous one with
    /// `save_uninitialized`). `Ok(true)` when the store cannot answer.
    pub(super) async fn load_session(&self, session: &Downstream, ctx: &mut Ctx) -> Result<bool> {
        // A store that cannot answer must not turn a signed-in user into an
        // anonymous one: public routes go on without a session, the rest get 503.
        match self.sessions.resolve(&session.req_header().headers).await {
            Ok(cur) => ctx.cur = cur,
            Err(e) => {
                tracing::error!(error = %e, "session store unavailable");
                ctx.store_down = true;
                return Ok(true);
            }
        }
        // A provider's re-check, when one is due (`auth::oidc::fresh`): a
        // field test for every other session.
        if ctx.cur.session.as_ref().is_some_and(|s| s.fresh.is_some()) {
            self.auth.keep_fresh(&mut ctx.cur, &self.sessions).await;
        }
        // No signed-in session of ours (an anonymous one of
        // save_uninitialized's included): the Express app's, with `[import]`.
        if ctx.cur.user().is_none() && self.auth.import.is_some() {
            let client = client_info(session, ctx);
            let headers = &session.req_header().headers;
            match self
                .auth
                .import_session(headers, &mut ctx.cur, &self.sessions, &client)
                .await
            {
                Imported::Nothing => {}
                Imported::Done { clear } | Imported::Refused { clear } => ctx.import_clear = clear,
                Imported::Unavailable => {
                    ctx.store_down = true;
                    return Ok(true);
                }
            }
        }
        if self.sessions.config().save_uninitialized && ctx.cur.session.is_none() {
            let client = client_info(session, ctx);
            self.sessions
                .ensure_uninitialized(&mut ctx.cur, &client)
                .await
                .map_err(store_error)?;
        }
        Ok(false)
    }
}
