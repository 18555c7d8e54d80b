//! Who is calling, and may they: bearer-token authentication at the edge of the public API and
//! ACL checks in each handler.
//!
//! - With `--auth off` (the default) every caller is `anonymous` and may do everything.
//! - With `--auth required` every request but the health and metrics probes and the OpenAPI
//!   document needs `Authorization: Bearer <token>`: the bootstrap admin token
//!   (`--admin-token-file`, `RAFTKA_ADMIN_TOKEN`; a superuser, never stored) or a user's token
//!   (stored as its SHA-256 in the metadata). A missing or unknown token is
//!   `401 unauthenticated`; a known one without the ACL is `403 forbidden`, checked before the
//!   handler changes anything.
//! - Requests forwarded between nodes are not checked again: the node that received them from
//!   the client did, and the internal routes need the cluster secret.

pub mod acl;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use raftka_protocol::{Operation, ResourceType};
use sha2::{Digest, Sha256};

use crate::config::AuthMode;
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;

/// The name ACLs use for the cluster resource (any name matches it).
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// Paths that answer without authentication: liveness, readiness and metrics probes, and the
/// API's OpenAPI document.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Auth is off: everyone may do everything.
    Anonymous,
    /// The bootstrap admin token: a superuser.
    Admin,
    /// A user, by name; bound by ACLs.
    User(String),
}

impl Principal {
    /// The principal's name as shown to clients and in logs.
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Admin => "admin",
            Principal::User(name) => name,
        }
    }

    /// Whether ACLs are bypassed.
    pub fn is_superuser(&self) -> bool {
        matches!(self, Principal::Anonymous | Principal::Admin)
    }
}

/// SHA-256 of a token, hex: the only form in which a token is stored or compared.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (`rk_` and 32 random bytes in hex) and a short id for it.
pub fn new_token() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!(
        "rk_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let id = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    (token, id)
}

/// The middleware that names the caller of every public request (the [`Principal`] in the
/// request's extensions) and refuses, with `401 unauthenticated`, a request without a valid
/// token when auth is required.
pub async fn authenticate(State(node): State<Node>, mut req: Request, next: Next) -> Response {
    let config = node.config();
    let principal = match config.auth {
        AuthMode::Off => Ok(Principal::Anonymous),
        AuthMode::Required if OPEN_PATHS.contains(&req.uri().path()) => Ok(Principal::Anonymous),
        AuthMode::Required => {
            let token = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            match token {
                None => Err("authentication required: send Authorization: Bearer <token>"),
                Some(token) => {
                    let hash = hash_token(token);
                    if config
                        .admin_token
                        .as_deref()
                        .is_some_and(|admin| hash_token(admin) == hash)
                    {
                        Ok(Principal::Admin)
                    } else {
                        node.with_metadata(|m| {
                            m.security.user_of_hash(&hash).map(|u| u.to_string())
                        })
                        .map(Principal::User)
                        .ok_or("the bearer token is unknown or revoked")
                    }
                }
            }
        }
    };
    match principal {
        Ok(p) => {
            tracing::Span::current().record("principal", p.name());
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(why) => ApiError::new(ErrorCode::Unauthenticated, why).into_response(),
    }
}

/// The caller, for a handler's checks. Missing only when the authentication layer was not
/// applied, which fails closed (500) rather than open.
#[derive(Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    node: Node,
}

impl FromRequestParts<Node> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Node) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(|principal| Caller {
                principal,
                node: node.clone(),
            })
            .ok_or_else(|| ApiError::internal("no principal: the authentication layer is missing"))
    }
}

impl Caller {
    /// Whether the caller may do `op` on the resource.
    pub fn may(&self, resource: ResourceType, name: &str, op: Operation) -> bool {
        match &self.principal {
            Principal::Anonymous | Principal::Admin => true,
            Principal::User(user) => self
                .node
                .with_metadata(|m| m.security.authorize(user, resource, name, op)),
        }
    }

    /// `Ok` when the caller may do `op` on the resource, else `403 forbidden`.
    ///
    /// # Errors
    /// [`ErrorCode::Forbidden`].
    pub fn check(&self, resource: ResourceType, name: &str, op: Operation) -> Result<(), ApiError> {
        if self.may(resource, name, op) {
            return Ok(());
        }
        let what = match resource {
            ResourceType::Topic => format!("topic '{name}'"),
            ResourceType::Group => format!("group '{name}'"),
            ResourceType::Cluster => "the cluster".to_string(),
        };
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "principal '{}' lacks '{}' on {what}",
                self.principal.name(),
                op.name()
            ),
        ))
    }

    /// [`Caller::check`] on a topic.
    ///
    /// # Errors
    /// [`ErrorCode::Forbidden`].
    pub fn topic(&self, name: &str, op: Operation) -> Result<(), ApiError> {
        self.check(ResourceType::Topic, name, op)
    }

    /// Creating topic `name`: `create` on the cluster or on the topic (as in Kafka).
    ///
    /// # Errors
    /// [`ErrorCode::Forbidden`].
    pub fn topic_create(&self, name: &str) -> Result<(), ApiError> {
        if self.may(ResourceType::Cluster, CLUSTER_RESOURCE, Operation::Create) {
            return Ok(());
        }
        self.topic(name, Operation::Create)
    }

    /// [`Caller::check`] on a consumer group.
    ///
    /// # Errors
    /// [`ErrorCode::Forbidden`].
    pub fn group(&self, name: &str, op: Operation) -> Result<(), ApiError> {
        self.check(ResourceType::Group, name, op)
    }

    /// [`Caller::check`] on the cluster.
    ///
    /// # Errors
    /// [`ErrorCode::Forbidden`].
    pub fn cluster(&self, op: Operation) -> Result<(), ApiError> {
        self.check(ResourceType::Cluster, CLUSTER_RESOURCE, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, id_a) = new_token();
        let (b, id_b) = new_token();
        assert_ne!(a, b);
        assert_ne!(id_a, id_b);
        assert!(a.starts_with("rk_") && a.len() == 67, "{a}");
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 64);
        assert!(!hash_token(&a).contains(&a[3..]));
    }
}
