//! The local control API: HTTP + JSON, a WebSocket event stream, and Prometheus metrics.
//!
//! Bound to loopback by default. Every route except `GET /api/health`, `POST /api/signin` and
//! the web client (`/`, `/assets/*`) needs `Authorization: Bearer <token>` (the token lives in
//! the data directory, mode 0600); the WebSocket also takes it as `?access_token=`, since
//! browsers cannot set headers on WebSockets. `docs/openapi.yaml` describes every route.

mod admission;
mod consent;
mod membership;
#[cfg(test)]
mod openapi;
mod routes;
mod web;

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use demls_api::{ErrorBody, ErrorDetail};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::runtime::{CommandError, NodeHandle};

/// The OpenAPI description served at `/api/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");

/// What the handlers share.
pub struct ApiState {
    node: NodeHandle,
    token: String,
    signin_code: Mutex<Option<String>>,
}

impl ApiState {
    /// State for `node`, accepting `token`, with a one-time sign-in code.
    pub fn new(node: NodeHandle, token: String, signin_code: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            node,
            token,
            signin_code: Mutex::new(signin_code),
        })
    }

    /// Takes the one-time code if `code` matches it.
    fn redeem(&self, code: &str) -> bool {
        let mut slot = self.signin_code.lock().unwrap_or_else(|e| e.into_inner());
        let ok = slot
            .as_deref()
            .is_some_and(|expected| same(expected.as_bytes(), code.as_bytes()));
        if ok {
            *slot = None;
        }
        ok
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error response: `{"error": {"code": ..., "message": ...}}`.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let (status, code) = match &e {
            CommandError::UnknownGroup(_) => (StatusCode::NOT_FOUND, "unknown_group"),
            CommandError::Joining(_) => (StatusCode::CONFLICT, "joining"),
            CommandError::JoinRefused { .. } => (StatusCode::FORBIDDEN, "join_refused"),
            CommandError::GroupExists(_) => (StatusCode::CONFLICT, "group_exists"),
            CommandError::UnknownProposal(_) => (StatusCode::NOT_FOUND, "unknown_proposal"),
            CommandError::Removed { .. } => (StatusCode::GONE, "removed"),
            CommandError::NoSuchRequest { .. } => (StatusCode::NOT_FOUND, "no_such_request"),
            CommandError::ProposalClosed { .. } => (StatusCode::CONFLICT, "proposal_closed"),
            CommandError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            CommandError::Refused(engine) => (StatusCode::UNPROCESSABLE_ENTITY, engine.kind()),
            CommandError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            CommandError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The bearer token of a request: the `Authorization` header, or `access_token` in the query.
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    from_header.or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
    })
}

async fn require_token(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = presented_token(request.headers(), request.uri().query());
    match token {
        Some(t) if same(t.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_token",
            "send Authorization: Bearer <token> (the token is in the node's data directory)",
        )
        .into_response(),
    }
}

/// The routes open to anyone, and those that need the token.
fn routes() -> (OpenApiRouter<Arc<ApiState>>, OpenApiRouter<Arc<ApiState>>) {
    let open = OpenApiRouter::new()
        .routes(routes!(web::index))
        .routes(routes!(web::asset))
        .routes(routes!(routes::health_check))
        .routes(routes!(routes::signin));
    let protected = OpenApiRouter::new()
        .routes(routes!(routes::openapi))
        .routes(routes!(routes::node))
        .routes(routes!(routes::vote_policy))
        .routes(routes!(routes::groups, routes::create_group))
        .routes(routes!(routes::group))
        .routes(routes!(membership::join_route, routes::join))
        .routes(routes!(membership::roster_route))
        .routes(routes!(consent::invite))
        .routes(routes!(consent::join_ticket))
        .routes(routes!(consent::requests))
        .routes(routes!(consent::decide))
        .routes(routes!(routes::leave))
        .routes(routes!(routes::rotate))
        .routes(routes!(routes::set_name))
        .routes(routes!(routes::members))
        .routes(routes!(routes::health))
        .routes(routes!(routes::proposals, routes::propose))
        .routes(routes!(routes::vote))
        .routes(routes!(routes::messages, routes::send))
        .routes(routes!(routes::events_socket))
        .routes(routes!(routes::event_log))
        .routes(routes!(routes::metrics));
    (open, protected)
}

/// Every route.
pub fn router(state: Arc<ApiState>) -> Router {
    let (open, protected) = routes();
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let (router, _) = open.merge(protected).split_for_parts();
    router.with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_token(&headers, Some("a=1&access_token=xyz")),
            Some("xyz")
        );
        assert_eq!(presented_token(&headers, None), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            presented_token(&headers, Some("access_token=xyz")),
            Some("abc")
        );
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
