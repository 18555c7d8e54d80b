//! The security part of the metadata: users with their hashed bearer tokens, and ACLs (Kafka's
//! model: principal × resource × operation, allow or deny, deny wins). Replicated through the
//! metadata group like topics, so every node authorizes from its own replica.

use std::collections::{BTreeMap, BTreeSet};

use raftka_protocol::{
    AclBinding, Operation, PatternType, Permission, ResourceType, TokenInfo, UserInfo,
};
use serde::{Deserialize, Serialize};

/// A stored token: only its SHA-256 (hex); the token itself never enters the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Creation time, ms since the Unix epoch (the proposer's clock).
    pub created_ms: u64,
}

/// Users and ACLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Users by name: their tokens by id.
    pub users: BTreeMap<String, BTreeMap<String, StoredToken>>,
    /// Every ACL.
    pub acls: BTreeSet<AclBinding>,
}

/// A change to users or ACLs. New variants go last (the log stores them by position).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SecurityCommand {
    /// Create a user without tokens.
    CreateUser {
        /// Name.
        name: String,
    },
    /// Delete a user and its tokens (its ACLs stay, as in Kafka).
    DeleteUser {
        /// Name.
        name: String,
    },
    /// Give a user a token (its hash).
    AddToken {
        /// User.
        user: String,
        /// Token id.
        id: String,
        /// The stored form.
        token: StoredToken,
    },
    /// Revoke one of a user's tokens.
    RevokeToken {
        /// User.
        user: String,
        /// Token id.
        id: String,
    },
    /// Add an ACL (no-op when present).
    AddAcl(AclBinding),
    /// Remove an ACL.
    RemoveAcl(AclBinding),
}

/// The result of a [`SecurityCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityReply {
    /// Applied; for user commands, the user afterwards (or as deleted); for token
    /// revocation the revoked token.
    Done {
        /// The user concerned, when the command names one.
        user: Option<UserInfo>,
        /// The token concerned, for a revocation.
        token: Option<TokenInfo>,
    },
    /// An ACL that was already there: nothing changed.
    AclExisted,
    /// A user of that name exists; nothing changed.
    UserExists,
    /// No such user (or token of the user); nothing changed.
    UserNotFound,
    /// No such ACL; nothing changed.
    AclNotFound,
}

impl Security {
    /// The user's public view.
    pub fn user_info(&self, name: &str) -> Option<UserInfo> {
        self.users.get(name).map(|tokens| {
            let mut tokens: Vec<TokenInfo> = tokens
                .iter()
                .map(|(id, t)| TokenInfo {
                    id: id.clone(),
                    created_ms: t.created_ms,
                })
                .collect();
            tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
            UserInfo {
                name: name.to_string(),
                tokens,
            }
        })
    }

    /// The user a token hash belongs to.
    pub fn user_of_hash(&self, hash: &str) -> Option<&str> {
        self.users.iter().find_map(|(name, tokens)| {
            tokens
                .values()
                .any(|t| t.hash == hash)
                .then_some(name.as_str())
        })
    }

    /// Applies a command (deterministic: the same on every replica).
    pub fn apply(&mut self, cmd: SecurityCommand) -> SecurityReply {
        let done = |user: Option<UserInfo>| SecurityReply::Done { user, token: None };
        match cmd {
            SecurityCommand::CreateUser { name } => {
                if self.users.contains_key(&name) {
                    return SecurityReply::UserExists;
                }
                self.users.insert(name.clone(), BTreeMap::new());
                done(self.user_info(&name))
            }
            SecurityCommand::DeleteUser { name } => {
                let info = self.user_info(&name);
                match self.users.remove(&name) {
                    Some(_) => done(info),
                    None => SecurityReply::UserNotFound,
                }
            }
            SecurityCommand::AddToken { user, id, token } => match self.users.get_mut(&user) {
                Some(tokens) => {
                    tokens.insert(id, token);
                    done(self.user_info(&user))
                }
                None => SecurityReply::UserNotFound,
            },
            SecurityCommand::RevokeToken { user, id } => {
                match self.users.get_mut(&user).and_then(|t| t.remove(&id)) {
                    Some(t) => SecurityReply::Done {
                        user: self.user_info(&user),
                        token: Some(TokenInfo {
                            id,
                            created_ms: t.created_ms,
                        }),
                    },
                    None => SecurityReply::UserNotFound,
                }
            }
            SecurityCommand::AddAcl(acl) => {
                if self.acls.insert(acl) {
                    done(None)
                } else {
                    SecurityReply::AclExisted
                }
            }
            SecurityCommand::RemoveAcl(acl) => {
                if self.acls.remove(&acl) {
                    done(None)
                } else {
                    SecurityReply::AclNotFound
                }
            }
        }
    }

    /// Whether `user` may do `op` on the resource: a matching deny wins, then a matching allow
    /// permits, and nothing matching denies. An allow of `read`, `write`, `delete` or `alter`
    /// implies `describe` (as in Kafka); `all` matches every operation.
    pub fn authorize(&self, user: &str, resource: ResourceType, name: &str, op: Operation) -> bool {
        let mut allowed = false;
        for acl in self.acls.iter().filter(|a| {
            (a.principal == user || a.principal == "*")
                && a.resource_type == resource
                && name_matches(a, name)
        }) {
            match acl.permission {
                Permission::Deny if acl.operation == op || acl.operation == Operation::All => {
                    return false
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= implies(acl.operation, op),
            }
        }
        allowed
    }
}

fn name_matches(acl: &AclBinding, name: &str) -> bool {
    if acl.resource_type == ResourceType::Cluster {
        return true;
    }
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == "*" || acl.resource_name == name,
        PatternType::Prefixed => name.starts_with(&acl.resource_name),
    }
}

fn implies(granted: Operation, wanted: Operation) -> bool {
    granted == wanted
        || granted == Operation::All
        || (wanted == Operation::Describe
            && matches!(
                granted,
                Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
            ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        principal: &str,
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            principal: principal.into(),
            resource_type,
            resource_name: name.into(),
            pattern_type,
            operation,
            permission,
        }
    }

    #[test]
    fn deny_wins_and_nothing_matching_denies() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let mut s = Security::default();
        assert!(
            !s.authorize("alice", Topic, "orders", Read),
            "no ACL: denied"
        );
        s.apply(SecurityCommand::AddAcl(acl(
            "alice", Topic, "ord", Prefixed, Read, Allow,
        )));
        assert!(s.authorize("alice", Topic, "orders", Read));
        assert!(
            s.authorize("alice", Topic, "orders", Describe),
            "read implies describe"
        );
        assert!(!s.authorize("alice", Topic, "orders", Write));
        assert!(!s.authorize("alice", Topic, "payments", Read));
        assert!(!s.authorize("bob", Topic, "orders", Read));
        assert!(
            !s.authorize("alice", Group, "orders", Read),
            "another resource type"
        );
        s.apply(SecurityCommand::AddAcl(acl(
            "*", Topic, "orders", Literal, All, Deny,
        )));
        assert!(
            !s.authorize("alice", Topic, "orders", Read),
            "a deny for everyone wins"
        );
        assert!(s.authorize("alice", Topic, "order-2", Read));
        s.apply(SecurityCommand::AddAcl(acl(
            "bob", Topic, "*", Literal, All, Allow,
        )));
        assert!(
            s.authorize("bob", Topic, "anything", Delete),
            "wildcard name, all ops"
        );
        assert!(
            !s.authorize("bob", Topic, "orders", Read),
            "still denied where denied"
        );
        s.apply(SecurityCommand::AddAcl(acl(
            "carol", Cluster, "", Literal, Alter, Allow,
        )));
        assert!(s.authorize("carol", Cluster, "kafka-cluster", Alter));
        assert!(s.authorize("carol", Cluster, "", Describe));
    }

    #[test]
    fn users_and_tokens() {
        let mut s = Security::default();
        let token = |h: &str| StoredToken {
            hash: h.into(),
            created_ms: 5,
        };
        assert!(matches!(
            s.apply(SecurityCommand::AddToken {
                user: "alice".into(),
                id: "t1".into(),
                token: token("h1")
            }),
            SecurityReply::UserNotFound
        ));
        s.apply(SecurityCommand::CreateUser {
            name: "alice".into(),
        });
        assert_eq!(
            s.apply(SecurityCommand::CreateUser {
                name: "alice".into()
            }),
            SecurityReply::UserExists
        );
        s.apply(SecurityCommand::AddToken {
            user: "alice".into(),
            id: "t1".into(),
            token: token("h1"),
        });
        assert_eq!(s.user_of_hash("h1"), Some("alice"));
        assert_eq!(s.user_of_hash("h2"), None);
        let revoked = s.apply(SecurityCommand::RevokeToken {
            user: "alice".into(),
            id: "t1".into(),
        });
        assert!(matches!(
            revoked,
            SecurityReply::Done { token: Some(_), .. }
        ));
        assert_eq!(
            s.user_of_hash("h1"),
            None,
            "a revoked token no longer names anyone"
        );
        assert!(matches!(
            s.apply(SecurityCommand::DeleteUser {
                name: "alice".into()
            }),
            SecurityReply::Done { .. }
        ));
        assert!(s.users.is_empty());
    }
}
