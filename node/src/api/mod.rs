//! The public HTTP API (v1), with one JSON error shape for every failure.
//!
//! Request and reply types are `raftka-protocol`'s. Every error is an [`ApiError`], including
//! extractor rejections (bad JSON, bad path segment, bad query) and unknown routes. The errors
//! of every request that is not a GET or HEAD carry `outcome` (set in [`request_span`]), so a
//! writer always learns whether its write definitely did not happen.
//!
//! [`routes`] is the one list of public routes; [`openapi`] describes each of them in the
//! OpenAPI document served at `GET /openapi.json`, and a test keeps the two in step.

pub mod cluster;
pub mod extract;
pub mod fetch;
pub mod groups;
pub mod membership;
pub mod openapi;
pub mod produce;
pub mod security;
pub mod topics;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode, RequestContext, REQUEST};
use crate::node::Node;

/// Every public route: its path template and its handlers. [`router`] registers exactly these,
/// and the OpenAPI test (`tests/openapi.rs`) walks this list, so a route added here without
/// an entry in [`openapi::ApiDoc`] fails that test.
pub fn routes() -> Vec<(&'static str, MethodRouter<Node>)> {
    vec![
        ("/v1/topics", get(topics::list).post(topics::create)),
        (
            "/v1/topics/{topic}",
            get(topics::get).patch(topics::alter).delete(topics::delete),
        ),
        (
            "/v1/topics/{topic}/configs",
            get(topics::configs).patch(topics::alter_configs),
        ),
        ("/v1/topics/{topic}/records", post(produce::produce)),
        (
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(fetch::records),
        ),
        (
            "/v1/topics/{topic}/partitions/{partition}/offsets",
            get(fetch::offsets),
        ),
        ("/v1/groups", get(groups::list)),
        (
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        ),
        ("/v1/groups/{group}/members", post(groups::join)),
        ("/v1/groups/{group}/members/{member}", delete(groups::leave)),
        (
            "/v1/groups/{group}/members/{member}/heartbeat",
            post(groups::heartbeat),
        ),
        (
            "/v1/groups/{group}/members/{member}/release",
            post(groups::release),
        ),
        (
            "/v1/groups/{group}/offsets",
            get(groups::committed).post(groups::commit),
        ),
        ("/v1/groups/{group}/offsets/reset", post(groups::reset)),
        ("/v1/cluster", get(cluster::cluster)),
        (
            "/v1/cluster/rebalance-leaders",
            post(cluster::rebalance_leaders),
        ),
        (
            "/v1/cluster/reassignments",
            get(membership::reassignments).post(membership::reassign),
        ),
        ("/v1/cluster/rebalance", post(membership::rebalance)),
        ("/v1/cluster/nodes/{id}", delete(membership::remove)),
        (
            "/v1/cluster/nodes/{id}/decommission",
            post(membership::decommission),
        ),
        ("/v1/security/whoami", get(security::whoami)),
        (
            "/v1/security/users",
            get(security::users).post(security::create_user),
        ),
        ("/v1/security/users/{name}", delete(security::delete_user)),
        (
            "/v1/security/users/{name}/tokens",
            post(security::create_token),
        ),
        (
            "/v1/security/users/{name}/tokens/{id}",
            delete(security::revoke_token),
        ),
        (
            "/v1/security/acls",
            get(security::acls)
                .post(security::create_acl)
                .delete(security::delete_acl),
        ),
        ("/healthz", get(cluster::healthz)),
        ("/readyz", get(cluster::readyz)),
        ("/metrics", get(crate::metrics::serve)),
        (openapi::SPEC_PATH, get(openapi::serve)),
    ]
}

/// The public router: [`routes`], one JSON error shape for unknown routes and methods, the
/// body limit and authentication.
pub fn router(node: Node) -> Router {
    let body_limit = node.config().max_request_bytes;
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            crate::auth::authenticate,
        ))
        // Compressed bodies both ways, as Kafka compresses batches: a request body with
        // `Content-Encoding: gzip` or `zstd` is decompressed on the way in (the body limit
        // applies to what it decompresses to), and a reply is compressed when the client's
        // `Accept-Encoding` asks for gzip or zstd (replies under 32 bytes stay as they are).
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(check_content_encoding))
        .with_state(node)
}

/// The request body encodings [`router`] decompresses.
const CONTENT_ENCODINGS: [&str; 3] = ["identity", "gzip", "zstd"];

/// Refuses a request body in an encoding the node does not decompress with a `415` in the
/// error shape (the decompression layer's own refusal has no body).
async fn check_content_encoding(req: Request, next: Next) -> Response {
    if let Some(v) = req.headers().get(axum::http::header::CONTENT_ENCODING) {
        let given = v.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        if !CONTENT_ENCODINGS.contains(&given.as_str()) {
            return ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Encoding '{given}' is not supported: send the body as is, or in \
                     one of {}",
                    CONTENT_ENCODINGS[1..].join(", ")
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

/// Longest accepted request URI (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most accepted bytes of request headers (names and values).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a client.
const MAX_REQUEST_ID_BYTES: usize = 64;

/// The request's id: the client's `x-request-id` when it is a sane token (1 to 64 of
/// `A-Z a-z 0-9 - _ . :`), so a caller or a forwarding node can follow it through the logs;
/// otherwise a new random one (16 hex digits).
fn request_id(req: &Request) -> Arc<str> {
    let given = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_BYTES
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    match given {
        Some(id) => Arc::from(id),
        None => Arc::from(format!("{:016x}", rand::random::<u64>())),
    }
}

/// Wraps each request in a `request` span with its id (so every log line of the request
/// carries it), echoed in `x-request-id` and in every error body; marks writes (so their errors
/// carry `outcome`); refuses an oversized URI or header block in the JSON error shape.
pub async fn request_span(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, principal = tracing::field::Empty);
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let uri_bytes = req.uri().path().len() + req.uri().query().map_or(0, str::len);
    let too_large = if uri_bytes > MAX_URI_BYTES {
        Some(format!("the request URI exceeds {MAX_URI_BYTES} bytes"))
    } else if header_bytes > MAX_HEADER_BYTES {
        Some(format!(
            "the request headers exceed {MAX_HEADER_BYTES} bytes"
        ))
    } else {
        None
    };
    let answer = async move {
        match too_large {
            Some(why) => ApiError::new(ErrorCode::PayloadTooLarge, why).into_response(),
            None => next.run(req).await,
        }
    };
    let context = RequestContext {
        is_write,
        id: id.clone(),
    };
    let started = std::time::Instant::now();
    let mut resp = REQUEST
        .scope(context, answer)
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "answered"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// The full application: public API plus the secret-guarded internal routes.
pub fn app(node: Node) -> Router {
    router(node.clone())
        .merge(crate::raft::rpc::router(node.clone()))
        .layer(middleware::from_fn_with_state(
            node,
            crate::metrics::http::track,
        ))
        .layer(middleware::from_fn(request_span))
}
