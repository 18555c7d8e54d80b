//! Users, tokens and ACLs (`/v1/security/...`): listing needs `describe` on the cluster,
//! changing needs `alter` on the cluster (or the bootstrap admin token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use raftka_protocol::{
    AclBinding, CreateUserRequest, ErrorBody, Operation, PatternType, Permission, ResourceType,
    TokenCreated, TokenInfo, UserInfo, WhoAmI,
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

/// The caller as the node sees it (`GET /v1/security/whoami`).
#[utoipa::path(
    get,
    path = "/v1/security/whoami",
    tag = "security",
    operation_id = "whoami",
    responses((status = 200, description = "The caller", body = WhoAmI))
)]
pub async fn whoami(State(node): State<Node>, caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        principal: caller.principal.name().to_string(),
        auth_required: node.config().auth == AuthMode::Required,
        superuser: caller.principal.is_superuser(),
    })
}

/// Lists the users and their tokens' ids (`GET /v1/security/users`).
#[utoipa::path(
    get,
    path = "/v1/security/users",
    tag = "security",
    operation_id = "list_users",
    responses(
        (status = 200, description = "The users, by name", body = Vec<UserInfo>),
        (status = 403, description = "`forbidden`: no `describe` on the cluster", body = ErrorBody),
    )
)]
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

/// Creates a user, with no token yet (`POST /v1/security/users`).
#[utoipa::path(
    post,
    path = "/v1/security/users",
    tag = "security",
    operation_id = "create_user",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserInfo),
        (status = 400, description = "`bad_request`: malformed JSON or a bad name", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 409, description = "`user_exists`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/security/users/{name}",
    tag = "security",
    operation_id = "delete_user",
    params(("name" = String, Path, description = "The user's name", example = "mallory")),
    responses(
        (status = 200, description = "The removed user", body = UserInfo),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/security/users/{name}/tokens",
    tag = "security",
    operation_id = "create_token",
    params(("name" = String, Path, description = "The user's name", example = "alice")),
    responses(
        (status = 201, description = "The new token, shown this once", body = TokenCreated),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    )
)]
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

/// Revokes a token (`DELETE /v1/security/users/{name}/tokens/{id}`).
#[utoipa::path(
    delete,
    path = "/v1/security/users/{name}/tokens/{id}",
    tag = "security",
    operation_id = "revoke_token",
    params(
        ("name" = String, Path, description = "The user's name", example = "alice"),
        ("id" = String, Path, description = "The token's id", example = "3f2a9c01d4e5"),
    ),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`user_not_found`: no such user or token", body = ErrorBody),
    )
)]
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

/// Lists the ACLs (`GET /v1/security/acls`).
#[utoipa::path(
    get,
    path = "/v1/security/acls",
    tag = "security",
    operation_id = "list_acls",
    responses(
        (status = 200, description = "Every ACL", body = Vec<AclBinding>),
        (status = 403, description = "`forbidden`: no `describe` on the cluster", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/security/acls",
    tag = "security",
    operation_id = "create_acl",
    request_body = AclBinding,
    responses(
        (status = 200, description = "The ACL existed already", body = AclBinding),
        (status = 201, description = "Added", body = AclBinding),
        (status = 400, description = "`bad_request`: malformed JSON, a bad principal or resource name", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/security/acls",
    tag = "security",
    operation_id = "delete_acl",
    params(
        ("principal" = String, Query, description = "A user's name, or `*`", example = "alice"),
        ("resource_type" = ResourceType, Query, description = "The resource kind"),
        ("resource_name" = String, Query, description = "The resource name", example = "orders"),
        ("pattern_type" = Option<PatternType>, Query, description = "How the name matches (default `literal`)"),
        ("operation" = Operation, Query, description = "The operation"),
        ("permission" = Permission, Query, description = "Allow or deny"),
    ),
    responses(
        (status = 200, description = "The removed ACL", body = AclBinding),
        (status = 400, description = "`bad_request`: a field missing or not one of its values", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the cluster", body = ErrorBody),
        (status = 404, description = "`acl_not_found`", body = ErrorBody),
    )
)]
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
