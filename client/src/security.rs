//! Users, bearer tokens and ACLs (`/v1/security/…`): who the caller is, and the admin calls
//! that manage who may do what.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftka_client::Error> {
//! use raftka_client::{AclBinding, Client, Operation, PatternType, Permission, ResourceType};
//! let admin = Client::new(["127.0.0.1:19091"])?.with_token("the-bootstrap-admin-token")?;
//! admin.create_user("alice").await?;
//! let token = admin.create_token("alice").await?; // `token.token` is shown only this once
//! admin
//!     .create_acl(&AclBinding {
//!         principal: "alice".into(),
//!         resource_type: ResourceType::Topic,
//!         resource_name: "orders".into(),
//!         pattern_type: PatternType::Literal,
//!         operation: Operation::Write,
//!         permission: Permission::Allow,
//!     })
//!     .await?;
//! let alice = Client::new(["127.0.0.1:19091"])?.with_token(&token.token)?;
//! assert_eq!(alice.whoami().await?.principal, "alice");
//! # Ok(()) }
//! ```
//!
//! With authentication required, a request without a valid token fails with
//! [`ErrorCode::Unauthenticated`](crate::ErrorCode::Unauthenticated) and one whose principal
//! lacks the ACL with [`ErrorCode::Forbidden`](crate::ErrorCode::Forbidden) (see
//! [`Error::error_code`]).

use raftka_protocol::{AclBinding, CreateUserRequest, TokenCreated, TokenInfo, UserInfo, WhoAmI};
use reqwest::Method;
use serde::Serialize;

use crate::client::Client;
use crate::error::Error;

impl Client {
    /// The caller as the node sees it: its principal, whether the node requires
    /// authentication, and whether ACLs bind it (`GET /v1/security/whoami`).
    ///
    /// # Errors
    /// `unauthenticated` as [`Error::Server`] when auth is required and the token is missing
    /// or invalid; transport errors.
    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        self.call_json(Method::GET, "/v1/security/whoami", None)
            .await
    }

    /// Every user and its tokens (ids and creation times; never the secrets).
    ///
    /// # Errors
    /// `unauthenticated`, `forbidden` as [`Error::Server`]; transport errors.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, Error> {
        self.call_json(Method::GET, "/v1/security/users", None)
            .await
    }

    /// Creates a user (without tokens: see [`Client::create_token`]).
    ///
    /// # Errors
    /// `user_exists`, `bad_request` (a bad name), `unauthenticated`, `forbidden` as
    /// [`Error::Server`].
    pub async fn create_user(&self, name: &str) -> Result<UserInfo, Error> {
        let request = CreateUserRequest {
            name: name.to_string(),
        };
        self.call_with_body(Method::POST, "/v1/security/users", &request)
            .await
    }

    /// Deletes a user and its tokens; returns the user as it was.
    ///
    /// # Errors
    /// `user_not_found`, `unauthenticated`, `forbidden` as [`Error::Server`].
    pub async fn delete_user(&self, name: &str) -> Result<UserInfo, Error> {
        self.call_json(Method::DELETE, &user_path(name, &[]), None)
            .await
    }

    /// Creates a bearer token for a user. The reply holds the token itself: the only time it
    /// is ever shown (the cluster stores only its hash).
    ///
    /// # Errors
    /// `user_not_found`, `unauthenticated`, `forbidden` as [`Error::Server`].
    pub async fn create_token(&self, user: &str) -> Result<TokenCreated, Error> {
        self.call_json(Method::POST, &user_path(user, &["tokens"]), None)
            .await
    }

    /// Revokes one of a user's tokens (by the id [`Client::create_token`] or
    /// [`Client::list_users`] gave); returns it.
    ///
    /// # Errors
    /// `user_not_found` (no such user, or no such token of the user), `unauthenticated`,
    /// `forbidden` as [`Error::Server`].
    pub async fn revoke_token(&self, user: &str, token_id: &str) -> Result<TokenInfo, Error> {
        self.call_json(
            Method::DELETE,
            &user_path(user, &["tokens", token_id]),
            None,
        )
        .await
    }

    /// Every ACL.
    ///
    /// # Errors
    /// `unauthenticated`, `forbidden` as [`Error::Server`]; transport errors.
    pub async fn list_acls(&self) -> Result<Vec<AclBinding>, Error> {
        self.call_json(Method::GET, "/v1/security/acls", None).await
    }

    /// Adds an ACL; adding one that exists already changes nothing and succeeds.
    ///
    /// # Errors
    /// `bad_request`, `unauthenticated`, `forbidden` as [`Error::Server`].
    pub async fn create_acl(&self, acl: &AclBinding) -> Result<AclBinding, Error> {
        self.call_with_body(Method::POST, "/v1/security/acls", acl)
            .await
    }

    /// Removes the ACL equal to `acl` (every field); returns it.
    ///
    /// # Errors
    /// `acl_not_found`, `unauthenticated`, `forbidden` as [`Error::Server`].
    pub async fn delete_acl(&self, acl: &AclBinding) -> Result<AclBinding, Error> {
        self.call_json(Method::DELETE, &acl_delete_path(acl)?, None)
            .await
    }
}

/// `/v1/security/users/{name}/{rest…}`, every segment percent-encoded.
fn user_path(name: &str, rest: &[&str]) -> String {
    let mut path = String::from("/v1/security/users/");
    path.push_str(&encode_segment(name));
    for segment in rest {
        path.push('/');
        path.push_str(&encode_segment(segment));
    }
    path
}

/// One path segment with everything but unreserved characters (`A-Za-z0-9-._~`) and `@`
/// percent-encoded, so a name can never add a segment or a query.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `DELETE /v1/security/acls?principal=…&…`: the binding's fields as query parameters, their
/// values as the JSON form names them (snake_case).
fn acl_delete_path(acl: &AclBinding) -> Result<String, Error> {
    let mut url = reqwest::Url::parse("http://localhost/v1/security/acls")
        .map_err(|e| Error::Config(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("principal", &acl.principal)
        .append_pair("resource_type", &wire_name(acl.resource_type)?)
        .append_pair("resource_name", &acl.resource_name)
        .append_pair("pattern_type", &wire_name(acl.pattern_type)?)
        .append_pair("operation", &wire_name(acl.operation)?)
        .append_pair("permission", &wire_name(acl.permission)?);
    Ok(format!(
        "{}?{}",
        url.path(),
        url.query().unwrap_or_default()
    ))
}

/// A unit enum's JSON name (`ResourceType::Topic` → `topic`).
fn wire_name(v: impl Serialize) -> Result<String, Error> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::Config("an ACL field has no name".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_server::{error_reply, TestServer};
    use raftka_protocol::{ErrorCode, Operation, PatternType, Permission, ResourceType};
    use serde_json::json;

    fn acl() -> AclBinding {
        AclBinding {
            principal: "alice".into(),
            resource_type: ResourceType::Group,
            resource_name: "billing-".into(),
            pattern_type: PatternType::Prefixed,
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[tokio::test]
    async fn every_call_uses_its_method_path_and_body_and_decodes_the_reply() {
        let server = TestServer::start(|seen| {
            let acl = serde_json::to_value(acl()).unwrap();
            let user = json!({"name": "alice", "tokens": [{"id": "t1", "created_ms": 5}]});
            let reply = match (seen.method.as_str(), seen.path.as_str()) {
                ("GET", "/v1/security/whoami") => {
                    json!({"principal": "alice", "auth_required": true, "superuser": false})
                }
                ("GET", "/v1/security/users") => json!([user]),
                ("POST", "/v1/security/users") if seen.body == r#"{"name":"alice"}"# => {
                    return (201, json!({"name": "alice", "tokens": []}).to_string())
                }
                ("POST", "/v1/security/users") => return error_reply(ErrorCode::UserExists),
                ("DELETE", "/v1/security/users/alice") => user,
                ("POST", "/v1/security/users/alice/tokens") => {
                    return (
                        201,
                        json!({"user": "alice", "id": "t2", "token": "secret"}).to_string(),
                    )
                }
                ("DELETE", "/v1/security/users/alice/tokens/t1") => {
                    json!({"id": "t1", "created_ms": 5})
                }
                ("GET", "/v1/security/acls") => json!([acl]),
                ("POST", "/v1/security/acls")
                    if serde_json::from_str::<serde_json::Value>(&seen.body).ok()
                        == Some(acl.clone()) =>
                {
                    return (201, acl.to_string())
                }
                ("DELETE", p) if p.starts_with("/v1/security/acls?principal=alice&") => acl,
                _ => return error_reply(ErrorCode::UserNotFound),
            };
            (200, reply.to_string())
        })
        .await;
        let client = Client::new([server.addr.as_str()]).unwrap();
        let me = client.whoami().await.unwrap();
        assert_eq!(
            (me.principal.as_str(), me.auth_required, me.superuser),
            ("alice", true, false)
        );
        let users = client.list_users().await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].tokens[0].id, "t1");
        assert_eq!(client.create_user("alice").await.unwrap().name, "alice");
        let exists = client.create_user("bob").await.unwrap_err();
        assert_eq!(exists.error_code(), Some(ErrorCode::UserExists));
        assert_eq!(client.delete_user("alice").await.unwrap().tokens.len(), 1);
        let created = client.create_token("alice").await.unwrap();
        assert_eq!(
            (created.id.as_str(), created.token.as_str()),
            ("t2", "secret")
        );
        assert_eq!(
            client.revoke_token("alice", "t1").await.unwrap().created_ms,
            5
        );
        let missing = client.revoke_token("alice", "t9").await.unwrap_err();
        assert_eq!(missing.error_code(), Some(ErrorCode::UserNotFound));
        assert_eq!(client.list_acls().await.unwrap(), vec![acl()]);
        assert_eq!(client.create_acl(&acl()).await.unwrap(), acl());
        assert_eq!(client.delete_acl(&acl()).await.unwrap(), acl());
        let delete = server.seen().last().unwrap().path.clone();
        assert_eq!(
            delete,
            "/v1/security/acls?principal=alice&resource_type=group&resource_name=billing-\
             &pattern_type=prefixed&operation=read&permission=allow"
        );
    }

    #[test]
    fn user_paths_encode_their_segments() {
        assert_eq!(user_path("alice", &[]), "/v1/security/users/alice");
        assert_eq!(
            user_path("svc.billing@prod", &["tokens", "t-1"]),
            "/v1/security/users/svc.billing@prod/tokens/t-1"
        );
        assert_eq!(
            user_path("a/b?c", &["tokens", "x y"]),
            "/v1/security/users/a%2Fb%3Fc/tokens/x%20y"
        );
    }

    #[test]
    fn acl_delete_query_names_every_field_in_snake_case() {
        let acl = AclBinding {
            principal: "*".into(),
            resource_type: ResourceType::Topic,
            resource_name: "orders&x=1".into(),
            pattern_type: PatternType::Prefixed,
            operation: Operation::Describe,
            permission: Permission::Deny,
        };
        assert_eq!(
            acl_delete_path(&acl).ok().as_deref(),
            Some(
                "/v1/security/acls?principal=*&resource_type=topic&resource_name=orders%26x%3D1\
                 &pattern_type=prefixed&operation=describe&permission=deny"
            )
        );
    }
}
