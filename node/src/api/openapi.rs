//! The OpenAPI 3 document of the public API, generated from the code and served at
//! `GET /openapi.json`.
//!
//! Each handler carries a `#[utoipa::path]` attribute (its path, parameters, body and the
//! statuses it answers); the request and reply types derive their schemas in `raftka-protocol`
//! (feature `openapi`, so the client never compiles utoipa). [`ApiDoc`] gathers them, and
//! [`CommonResponses`] adds what every operation shares rather than repeating it on each
//! handler: the statuses any request can get (`401` under `--auth required`, `413` for an
//! oversized URI or header block, and for `/v1` the cluster's `500`/`503`/`504`), the
//! `x-request-id` header of every reply, and the optional bearer token.
//!
//! Invariant: every route of [`super::routes`] is an operation here with exactly the methods
//! the router serves (checked by `tests/openapi.rs`), and every reply of the server matches the
//! document (checked by `scripts/openapi-test.sh`, which runs schemathesis against a node).

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::OPEN_PATHS;
use crate::error::ApiError;

/// Where the document is served.
pub const SPEC_PATH: &str = "/openapi.json";

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer_auth";

/// The OpenAPI document of the public API (the `/internal` node-to-node routes are not part of
/// it: they need the cluster secret and change without notice).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Raftka HTTP API",
        version = "1",
        description = "A Raft-replicated, Kafka-style event log over HTTP/JSON. Any node serves \
            any request. Every error has one JSON shape (`ErrorBody`); clients branch on \
            `error_code`, never on `message`. Reference: docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::topics::list,
        super::topics::create,
        super::topics::get,
        super::topics::alter,
        super::topics::delete,
        super::topics::configs,
        super::topics::alter_configs,
        super::produce::produce,
        super::fetch::records,
        super::fetch::offsets,
        super::groups::list,
        super::groups::describe,
        super::groups::delete,
        super::groups::join,
        super::groups::leave,
        super::groups::heartbeat,
        super::groups::release,
        super::groups::committed,
        super::groups::commit,
        super::groups::reset,
        super::cluster::cluster,
        super::cluster::rebalance_leaders,
        super::membership::reassignments,
        super::membership::reassign,
        super::membership::rebalance,
        super::membership::remove,
        super::membership::decommission,
        super::security::whoami,
        super::security::users,
        super::security::create_user,
        super::security::delete_user,
        super::security::create_token,
        super::security::revoke_token,
        super::security::acls,
        super::security::create_acl,
        super::security::delete_acl,
        super::cluster::healthz,
        super::cluster::readyz,
        crate::metrics::serve,
        serve,
    ),
    components(schemas(raftka_protocol::ErrorBody)),
    modifiers(&CommonResponses),
    tags(
        (name = "topics", description = "Topic administration"),
        (name = "records", description = "Produce and fetch records, partition offsets"),
        (name = "groups", description = "Consumer groups: membership, offsets, administration"),
        (name = "cluster", description = "Cluster state, leader balance, partition moves, membership"),
        (name = "security", description = "Users, bearer tokens and ACLs"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Adds to every operation what all of them share (see the module docs).
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed only with `--auth required`: the bootstrap admin token or a \
                         user's token (`POST /v1/security/users/{name}/tokens`).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            let v1 = path.starts_with("/v1/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(op, open, v1);
            }
        }
    }
}

/// An error reply in the one JSON error shape.
fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn add_common(op: &mut Operation, open: bool, v1: bool) {
    let mut common = vec![(
        "413",
        "`payload_too_large`: the request URI is over 8 KiB or its headers over 64 KiB (and, \
         where the operation takes a body, the body is over `--max-request-bytes`)",
    )];
    if open {
        // No token needed; one that is sent is ignored.
        op.security = Some(vec![SecurityRequirement::default()]);
    } else {
        op.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
        ]);
        common.push((
            "401",
            "`unauthenticated`: the node runs with `--auth required` and the request has no \
             valid bearer token",
        ));
    }
    if v1 {
        common.extend([
            (
                "500",
                "`internal` or `storage_failed`: an unexpected server error; a write's outcome \
                 is unknown",
            ),
            (
                "503",
                "`leader_not_available`, `not_leader`, `not_ready` or `write_outcome_unknown`: \
                 an election, a node starting or stopping; retriable",
            ),
            (
                "504",
                "`timeout`: the leader did not answer in time (`--request-timeout-ms`); \
                 retriable, a write's outcome is unknown",
            ),
        ]);
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    }
    let request_id = HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        )
        .description(Some(
            "The request's id: the caller's own when it sent a sane one, else a new one",
        ))
        .build();
    for response in op.responses.responses.values_mut() {
        if let utoipa::openapi::RefOr::T(r) = response {
            r.headers
                .entry(super::REQUEST_ID_HEADER.to_string())
                .or_insert_with(|| request_id.clone());
        }
    }
}

/// The document as served: [`ApiDoc`] with the `x-request-id` header marked `required` (every
/// reply carries it; utoipa's header type has no `required` field). Built once.
///
/// # Errors
/// The document did not serialize (a bug: it is plain data).
pub fn document() -> Result<&'static serde_json::Value, String> {
    static DOCUMENT: OnceLock<Result<serde_json::Value, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut doc = serde_json::to_value(ApiDoc::openapi()).map_err(|e| e.to_string())?;
            if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
                for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
                    for op in item.values_mut() {
                        let Some(responses) =
                            op.get_mut("responses").and_then(|r| r.as_object_mut())
                        else {
                            continue;
                        };
                        for response in responses.values_mut() {
                            let path = format!("/headers/{}", super::REQUEST_ID_HEADER);
                            if let Some(header) =
                                response.pointer_mut(&path).and_then(|h| h.as_object_mut())
                            {
                                header.insert("required".into(), serde_json::Value::Bool(true));
                            }
                        }
                    }
                }
            }
            Ok(doc)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the public API",
            body = Object, content_type = "application/json"),
        (status = 500, description = "`internal`: the document could not be built", body = raftka_protocol::ErrorBody),
    )
)]
pub async fn serve() -> Result<Json<&'static serde_json::Value>, ApiError> {
    document()
        .map(Json)
        .map_err(|e| ApiError::internal(format!("the OpenAPI document: {e}")))
}
