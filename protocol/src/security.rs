//! Principals, their bearer tokens, and ACLs (Kafka's model): who may do what to which
//! topic, group or the cluster.

use serde::{Deserialize, Serialize};

/// The kind of resource an ACL is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    /// A topic (produce, fetch, describe, alter, delete, create).
    Topic,
    /// A consumer group (join, commit, describe, delete).
    Group,
    /// The cluster itself (status, membership, users and ACLs).
    Cluster,
}

/// How an ACL's resource name matches.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    /// The exact name, or every name when it is `*`.
    #[default]
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

/// What an ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Fetch records, read offsets; for a group: be a member, commit.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics or groups.
    Delete,
    /// Change configs, partitions, membership, users and ACLs.
    Alter,
    /// See that it exists and how it is (implied by every other operation, as in Kafka).
    Describe,
    /// Every operation.
    All,
}

impl Operation {
    /// The wire name (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
            Operation::All => "all",
        }
    }
}

/// Allow or deny; a matching deny wins over any allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Allow.
    Allow,
    /// Deny (wins).
    Deny,
}

impl Permission {
    /// The wire name (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        }
    }
}

/// One ACL: `principal` may (or may not) do `operation` on the matching resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AclBinding {
    /// A user's name, or `*` for every authenticated user.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^(\*|[a-zA-Z0-9._@-]{1,128})$", example = "alice")
    )]
    pub principal: String,
    /// The resource kind.
    pub resource_type: ResourceType,
    /// The resource name, 1-249 characters (`*` with `literal`: every one; ignored for
    /// `cluster`).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 249, example = "orders")
    )]
    pub resource_name: String,
    /// How the name matches.
    #[serde(default)]
    pub pattern_type: PatternType,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// `POST /v1/security/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUserRequest {
    /// The user's name: 1-128 characters of `[a-zA-Z0-9._@-]`, not `*`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[a-zA-Z0-9._@-]+$",
            example = "alice"
        )
    )]
    pub name: String,
}

/// A token as listed (its secret is never shown again after creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The token's id (to revoke it).
    pub id: String,
    /// When it was created, in ms since the Unix epoch.
    pub created_ms: u64,
}

/// A user and its tokens (`GET /v1/security/users`, `POST /v1/security/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Name.
    pub name: String,
    /// Tokens, oldest first.
    #[serde(default)]
    pub tokens: Vec<TokenInfo>,
}

/// `POST /v1/security/users/{name}/tokens`: the new token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// The user.
    pub user: String,
    /// The token's id (to revoke it).
    pub id: String,
    /// The bearer token: send it as `Authorization: Bearer <token>`. Stored only hashed.
    pub token: String,
}

/// The caller, as the node sees it (`GET /v1/security/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The principal: a user's name, `admin` for the bootstrap token, `anonymous` with auth
    /// off.
    pub principal: String,
    /// Whether the node requires authentication.
    pub auth_required: bool,
    /// Whether ACLs are bypassed (the bootstrap admin, or auth off).
    pub superuser: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_names() {
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Create,
            Operation::Delete,
            Operation::Alter,
            Operation::Describe,
            Operation::All,
        ] {
            assert_eq!(serde_json::to_value(op).unwrap(), op.name());
        }
        for p in [Permission::Allow, Permission::Deny] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
    }
}
