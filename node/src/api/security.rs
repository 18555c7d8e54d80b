//! Users, tokens and ACLs (`/v1/security/...`): listing needs `describe` on the cluster,
//! changing needs `alter` on the cluster (or the bootstrap admin token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use raftka_protocol::{
    AclBinding, CreateUserRequest, Operation, ResourceType, TokenCreated, UserInfo, WhoAmI,
};

use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::acl::{SecurityCommand, SecurityReply, StoredToken};
use crate::auth::{hash_token, new_token, Caller};
use crate::cluster::metadata::{MetaCommand, MetaResponse};
use crate::config::AuthMode;
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;

/// Longest user name.
const MAX_USER_NAME: usize = 128;

fn validate_user_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name != "*"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "user names are 1-{MAX_USER_NAME} characters of [a-zA-Z0-9._@-]"
        )))
    }
}

fn validate_acl(acl: &AclBinding) -> Result<(), ApiError> {
    if acl.principal != "*" {
        validate_user_name(&acl.principal)
            .map_err(|_| ApiError::bad_request("principal: a user name, or * for every user"))?;
    }
    if acl.resource_type != ResourceType::Cluster
        && (acl.resource_name.is_empty() || acl.resource_name.len() > 249)
    {
        return Err(ApiError::bad_request(
            "resource_name: 1-249 characters (* with literal: every name)",
        ));
    }
    Ok(())
}

/// Runs a security command on the metadata leader.
async fn apply(node: &Node, cmd: SecurityCommand) -> Result<SecurityReply, ApiError> {
    match node.meta_write(MetaCommand::Security(cmd)).await? {
        MetaResponse::Security(reply) => Ok(reply),
        other => Err(ApiError::internal(format!(
            "unexpected metadata reply {other:?}"
        ))),
    }
}

fn refused(reply: SecurityReply, what: &str) -> ApiError {
    match reply {
        SecurityReply::UserExists => {
            ApiError::new(ErrorCode::UserExists, format!("user '{what}' exists"))
        }
        SecurityReply::UserNotFound => ApiError::new(
            ErrorCode::UserNotFound,
            format!("no such user or token: {what}"),
        ),
        SecurityReply::AclNotFound => ApiError::new(ErrorCode::AclNotFound, "no such ACL"),
        other => ApiError::internal(format!("unexpected security reply {other:?}")),
    }
}

/// `GET /v1/security/whoami`.
pub async fn whoami(State(node): State<Node>, caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        principal: caller.principal.name().to_string(),
        auth_required: node.config().auth == AuthMode::Required,
        superuser: caller.principal.is_superuser(),
    })
}

/// `GET /v1/security/users`.
pub async fn users(
    State(node): State<Node>,
    caller: Caller,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    caller.cluster(Operation::Describe)?;
    node.catch_up_metadata().await?;
    Ok(Json(node.with_metadata(|m| {
        m.security
            .users
            .keys()
            .filter_map(|name| m.security.user_info(name))
            .collect()
    })))
}

/// `POST /v1/security/users`.
pub async fn create_user(
    State(node): State<Node>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    validate_user_name(&req.name)?;
    match apply(
        &node,
        SecurityCommand::CreateUser {
            name: req.name.clone(),
        },
    )
    .await?
    {
        SecurityReply::Done { user: Some(u), .. } => Ok((StatusCode::CREATED, Json(u))),
        other => Err(refused(other, &req.name)),
    }
}

/// `DELETE /v1/security/users/{name}`: the user and its tokens (its ACLs stay).
pub async fn delete_user(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<UserInfo>, ApiError> {
    caller.cluster(Operation::Alter)?;
    match apply(&node, SecurityCommand::DeleteUser { name: name.clone() }).await? {
        SecurityReply::Done { user: Some(u), .. } => Ok(Json(u)),
        other => Err(refused(other, &name)),
    }
}

/// `POST /v1/security/users/{name}/tokens`: a new token, shown only in this reply (the
/// metadata keeps its hash).
pub async fn create_token(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    let (token, id) = new_token();
    let created_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let cmd = SecurityCommand::AddToken {
        user: name.clone(),
        id: id.clone(),
        token: StoredToken {
            hash: hash_token(&token),
            created_ms,
        },
    };
    match apply(&node, cmd).await? {
        SecurityReply::Done { .. } => Ok((
            StatusCode::CREATED,
            Json(TokenCreated {
                user: name,
                id,
                token,
            }),
        )),
        other => Err(refused(other, &name)),
    }
}

/// `DELETE /v1/security/users/{name}/tokens/{id}`.
pub async fn revoke_token(
    State(node): State<Node>,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    let cmd = SecurityCommand::RevokeToken {
        user: name.clone(),
        id: id.clone(),
    };
    match apply(&node, cmd).await? {
        SecurityReply::Done { token: Some(t), .. } => Ok(Json(t)),
        other => Err(refused(other, &format!("{name} token {id}"))),
    }
}

/// `GET /v1/security/acls`.
pub async fn acls(
    State(node): State<Node>,
    caller: Caller,
) -> Result<Json<Vec<AclBinding>>, ApiError> {
    caller.cluster(Operation::Describe)?;
    node.catch_up_metadata().await?;
    Ok(Json(node.with_metadata(|m| {
        m.security.acls.iter().cloned().collect()
    })))
}

/// `POST /v1/security/acls`: 201 when added, 200 when it was there already.
pub async fn create_acl(
    State(node): State<Node>,
    caller: Caller,
    ApiJson(acl): ApiJson<AclBinding>,
) -> Result<impl IntoResponse, ApiError> {
    caller.cluster(Operation::Alter)?;
    validate_acl(&acl)?;
    match apply(&node, SecurityCommand::AddAcl(acl.clone())).await? {
        SecurityReply::Done { .. } => Ok((StatusCode::CREATED, Json(acl))),
        SecurityReply::AclExisted => Ok((StatusCode::OK, Json(acl))),
        other => Err(refused(other, "")),
    }
}

/// `DELETE /v1/security/acls?principal=…&resource_type=…&resource_name=…&pattern_type=…&operation=…&permission=…`.
pub async fn delete_acl(
    State(node): State<Node>,
    caller: Caller,
    ApiQuery(query): ApiQuery,
) -> Result<Json<AclBinding>, ApiError> {
    caller.cluster(Operation::Alter)?;
    let object: serde_json::Map<String, serde_json::Value> = query
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let acl: AclBinding = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::bad_request(format!("the ACL to delete: {e}")))?;
    match apply(&node, SecurityCommand::RemoveAcl(acl.clone())).await? {
        SecurityReply::Done { .. } => Ok(Json(acl)),
        other => Err(refused(other, "")),
    }
}
