//! The dashboard's HTTP server: the listening socket, the routes, and the
//! state every request shares.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use super::auth::{self, Token};
use super::{api, page, sse};
use crate::cli::{CliError, Context};
use crate::store::{RedisTarget, Store};

/// What every request reads: the town, and how to check it may.
pub struct Shared {
    pub ctx: Context,
    pub store: Store,
    /// The Redis of `store`, for the event stream's own connections.
    pub target: RedisTarget,
    pub token: Token,
    pub read_only_public: bool,
}

/// A dashboard bound to its address, not yet serving.
pub struct Dashboard {
    listener: TcpListener,
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
}

impl Dashboard {
    /// Binds `addr` (port 0: a free one) and draws the token.
    pub async fn bind(
        ctx: Context,
        store: Store,
        target: RedisTarget,
        addr: SocketAddr,
        read_only_public: bool,
    ) -> Result<Self, CliError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| CliError::Io {
                what: format!(
                    "cannot listen on `{addr}` for the dashboard (another program may use it; \
                     `--addr 127.0.0.1:0` picks a free port)"
                ),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| CliError::Io {
            what: "cannot read the dashboard's address".into(),
            source,
        })?;
        let token = Token::random()?;
        let url = format!("http://{addr}/?token={}", token.as_str());
        Ok(Self {
            listener,
            addr,
            url,
            shared: Arc::new(Shared {
                ctx,
                store,
                target,
                token,
                read_only_public,
            }),
        })
    }

    /// The URL to open, with the token.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the future is dropped (the event streams never end by
    /// themselves, so there is no graceful shutdown to wait for).
    pub async fn serve(self) -> Result<(), CliError> {
        let app = router(self.shared);
        axum::serve(self.listener, app)
            .await
            .map_err(|source| CliError::Io {
                what: "the dashboard's server stopped".into(),
                source,
            })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/api/town", get(api::town))
        .route("/api/tasks", get(api::tasks))
        .route("/api/tasks/{id}", get(api::task))
        .route("/api/tasks/{id}/retry", post(api::retry))
        .route("/api/tasks/{id}/cancel", post(api::cancel))
        .route("/api/tasks/{id}/answer", post(api::answer))
        .route("/api/history", get(api::history))
        .route("/api/events", get(sse::events))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require,
        ))
        .with_state(shared)
}
