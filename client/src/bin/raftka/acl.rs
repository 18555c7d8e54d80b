//! `raftka acl add|list|remove`: who may do what to which topic, group or the cluster
//! (Kafka's ACL model: principal × resource × operation, allow or deny, deny wins).

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use raftka_client::{
    AclBinding, Client, ErrorCode, Operation, PatternType, Permission, ResourceType,
};

use crate::output::{colored, Cell, Color, Out, Table};

/// The resource name the CLI gives cluster ACLs (as Kafka names it; the node ignores the name
/// of a cluster ACL when it checks one).
pub const CLUSTER_NAME: &str = "kafka-cluster";

const ACL_HELP: &str = "\
Operations: read (fetch, offsets; for a group: be a member, commit), write (produce), create
(topics), delete (topics, groups), alter (configs, partitions, membership, users and ACLs),
describe (see it; implied by each of the others), all.

A deny that matches wins over every allow; with nothing matching, the request is refused.
--principal '*' means every authenticated user; --topic '*' (or --group '*') every name.

Examples:
  raftka acl add --principal alice --topic orders --operation write
  raftka acl add --principal alice --topic orders- --prefixed --operation read,describe
  raftka acl add --principal billing --group billing --operation read
  raftka acl add --principal ops --cluster --operation alter
  raftka acl add --principal '*' --topic secret --operation all --deny";

#[derive(Subcommand)]
pub enum AclCommand {
    /// Add ACLs (one per --operation). Adding one that exists already changes nothing.
    /// Needs alter on the cluster.
    #[command(after_help = ACL_HELP)]
    Add(AclSpec),
    /// List ACLs, optionally only a principal's or a resource's. Needs describe on the
    /// cluster.
    #[command(after_help = "\
Examples:
  raftka acl list
  raftka acl list --principal alice
  raftka acl list --topic orders -o json")]
    List(AclFilter),
    /// Remove ACLs: the ones equal to what the same flags would add. Needs alter on the
    /// cluster.
    #[command(after_help = "\
Examples:
  raftka acl remove --principal alice --topic orders --operation write
  raftka acl remove --principal ops --cluster --operation alter")]
    Remove(AclSpec),
}

/// `--operation` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OperationArg {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    All,
}

impl From<OperationArg> for Operation {
    fn from(o: OperationArg) -> Self {
        match o {
            OperationArg::Read => Operation::Read,
            OperationArg::Write => Operation::Write,
            OperationArg::Create => Operation::Create,
            OperationArg::Delete => Operation::Delete,
            OperationArg::Alter => Operation::Alter,
            OperationArg::Describe => Operation::Describe,
            OperationArg::All => Operation::All,
        }
    }
}

/// The flags of `acl add` and `acl remove`: one ACL per operation.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("resource").required(true).args(["topic", "group", "cluster"])))]
pub struct AclSpec {
    /// The user the ACL is about (`User:` prefix accepted), or `*` for every authenticated
    /// user.
    #[arg(long)]
    principal: String,
    /// A topic name (with --prefixed: every topic whose name starts with it; `*`: every
    /// topic).
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group name (with --prefixed: every group whose name starts with it; `*`:
    /// every group).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The cluster itself (status, membership, topic creation, users and ACLs).
    #[arg(long)]
    cluster: bool,
    /// Match every name that starts with --topic's or --group's NAME.
    #[arg(long, conflicts_with = "cluster")]
    prefixed: bool,
    /// Operations, comma-separated or repeated.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    operation: Vec<OperationArg>,
    /// Deny instead of allow (a matching deny wins over every allow).
    #[arg(long)]
    deny: bool,
}

impl AclSpec {
    /// The bindings these flags name, one per distinct operation, in the given order.
    pub fn bindings(&self) -> Vec<AclBinding> {
        let (resource_type, resource_name) = match (&self.topic, &self.group) {
            (Some(t), _) => (ResourceType::Topic, t.clone()),
            (None, Some(g)) => (ResourceType::Group, g.clone()),
            (None, None) => (ResourceType::Cluster, CLUSTER_NAME.to_string()),
        };
        let mut ops: Vec<Operation> = Vec::new();
        for o in &self.operation {
            let op = Operation::from(*o);
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
        ops.into_iter()
            .map(|operation| AclBinding {
                principal: principal(&self.principal),
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type: if self.prefixed {
                    PatternType::Prefixed
                } else {
                    PatternType::Literal
                },
                operation,
                permission: if self.deny {
                    Permission::Deny
                } else {
                    Permission::Allow
                },
            })
            .collect()
    }
}

/// `acl list` filters; each narrows the list.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("resource").args(["topic", "group", "cluster"])))]
pub struct AclFilter {
    /// Only this principal's ACLs (those of `*` too are listed only with --principal '*').
    #[arg(long)]
    principal: Option<String>,
    /// Only the ACLs whose resource is this topic name (or prefix).
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// Only the ACLs whose resource is this group name (or prefix).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Only the cluster's ACLs.
    #[arg(long)]
    cluster: bool,
}

impl AclFilter {
    fn keeps(&self, acl: &AclBinding) -> bool {
        let principal_ok = self
            .principal
            .as_deref()
            .is_none_or(|p| acl.principal == principal(p));
        let resource_ok = match (&self.topic, &self.group, self.cluster) {
            (Some(t), _, _) => acl.resource_type == ResourceType::Topic && &acl.resource_name == t,
            (_, Some(g), _) => acl.resource_type == ResourceType::Group && &acl.resource_name == g,
            (_, _, true) => acl.resource_type == ResourceType::Cluster,
            _ => true,
        };
        principal_ok && resource_ok
    }
}

/// A principal as the node names it: `User:alice` → `alice`.
fn principal(p: &str) -> String {
    p.strip_prefix("User:").unwrap_or(p).to_string()
}

pub async fn run(client: &Client, cmd: AclCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        AclCommand::Add(spec) => {
            let mut added = Vec::new();
            for acl in spec.bindings() {
                let acl = client
                    .create_acl(&acl)
                    .await
                    .with_context(|| format!("add ACL: {}", describe(&acl)))?;
                if !out.json() {
                    println!("added ACL: {}", describe(&acl));
                }
                added.push(acl);
            }
            if out.json() {
                out.print_json(&serde_json::to_value(&added)?);
            }
        }
        AclCommand::List(filter) => {
            let acls: Vec<AclBinding> = client
                .list_acls()
                .await
                .context("list ACLs")?
                .into_iter()
                .filter(|a| filter.keeps(a))
                .collect();
            if out.json() {
                out.print_json(&serde_json::to_value(&acls)?);
            } else if acls.is_empty() {
                println!("no ACLs");
            } else {
                acl_table(&acls).print(out);
            }
        }
        AclCommand::Remove(spec) => {
            let mut removed = Vec::new();
            for acl in spec.bindings() {
                for acl in remove(client, &acl).await? {
                    if !out.json() {
                        println!("removed ACL: {}", describe(&acl));
                    }
                    removed.push(acl);
                }
            }
            if out.json() {
                out.print_json(&serde_json::to_value(&removed)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes `acl`. A cluster ACL's name means nothing, so for one the CLI removes every cluster
/// ACL otherwise equal to it, whatever name it was added with (through the API, say).
async fn remove(client: &Client, acl: &AclBinding) -> anyhow::Result<Vec<AclBinding>> {
    let context = || format!("remove ACL: {}", describe(acl));
    if acl.resource_type != ResourceType::Cluster {
        return Ok(vec![client.delete_acl(acl).await.with_context(context)?]);
    }
    let same = |a: &AclBinding| {
        AclBinding {
            resource_name: acl.resource_name.clone(),
            ..a.clone()
        } == *acl
    };
    let matching: Vec<AclBinding> = match client.list_acls().await {
        Ok(all) => all.into_iter().filter(same).collect(),
        // Without describe on the cluster: just the one with the CLI's name.
        Err(e) if e.error_code() == Some(ErrorCode::Forbidden) => vec![acl.clone()],
        Err(e) => return Err(e).with_context(context),
    };
    if matching.is_empty() {
        // Let the node say acl_not_found.
        return Ok(vec![client.delete_acl(acl).await.with_context(context)?]);
    }
    let mut removed = Vec::new();
    for a in matching {
        removed.push(client.delete_acl(&a).await.with_context(context)?);
    }
    Ok(removed)
}

/// `allow alice write on topic orders`, `deny every user all on topics prefixed tmp-`, …
pub fn describe(acl: &AclBinding) -> String {
    let who = if acl.principal == "*" {
        "every user".to_string()
    } else {
        acl.principal.clone()
    };
    format!(
        "{} {who} {} on {}",
        Permission::name(acl.permission),
        Operation::name(acl.operation),
        resource_text(acl)
    )
}

fn resource_text(acl: &AclBinding) -> String {
    let kind = match acl.resource_type {
        ResourceType::Topic => "topic",
        ResourceType::Group => "group",
        ResourceType::Cluster => return "the cluster".into(),
    };
    match acl.pattern_type {
        PatternType::Literal if acl.resource_name == "*" => format!("every {kind}"),
        PatternType::Literal => format!("{kind} {}", acl.resource_name),
        PatternType::Prefixed => format!("{kind}s prefixed {}", acl.resource_name),
    }
}

fn acl_table(acls: &[AclBinding]) -> Table {
    let mut table = Table::new(vec![
        "PRINCIPAL",
        "PERMISSION",
        "OPERATION",
        "RESOURCE",
        "NAME",
        "PATTERN",
    ]);
    for a in acls {
        let permission: Cell = match a.permission {
            Permission::Deny => colored("deny", Color::Red),
            Permission::Allow => "allow".into(),
        };
        table.row(vec![
            a.principal.as_str().into(),
            permission,
            Operation::name(a.operation).into(),
            match a.resource_type {
                ResourceType::Topic => "topic",
                ResourceType::Group => "group",
                ResourceType::Cluster => "cluster",
            }
            .into(),
            if a.resource_type == ResourceType::Cluster {
                "-".into()
            } else {
                a.resource_name.as_str().into()
            },
            match a.pattern_type {
                PatternType::Literal => "literal",
                PatternType::Prefixed => "prefixed",
            }
            .into(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{ColorChoice, Format};

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
    fn descriptions_read_as_sentences() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let cases = [
            (
                acl("alice", Topic, "orders", Literal, Write, Allow),
                "allow alice write on topic orders",
            ),
            (
                acl("*", Topic, "tmp-", Prefixed, All, Deny),
                "deny every user all on topics prefixed tmp-",
            ),
            (
                acl("bob", Group, "*", Literal, Read, Allow),
                "allow bob read on every group",
            ),
            (
                acl("ops", Cluster, CLUSTER_NAME, Literal, Alter, Allow),
                "allow ops alter on the cluster",
            ),
        ];
        for (a, text) in cases {
            assert_eq!(describe(&a), text);
        }
    }

    #[test]
    fn acl_table_lists_every_field() {
        let acls = vec![
            acl(
                "alice",
                ResourceType::Topic,
                "orders-",
                PatternType::Prefixed,
                Operation::Read,
                Permission::Allow,
            ),
            acl(
                "*",
                ResourceType::Cluster,
                CLUSTER_NAME,
                PatternType::Literal,
                Operation::Alter,
                Permission::Deny,
            ),
        ];
        let out = Out::new(Format::Table, ColorChoice::Never);
        assert_eq!(
            acl_table(&acls).render(&out),
            "\
PRINCIPAL  PERMISSION  OPERATION  RESOURCE  NAME     PATTERN
alice      allow       read       topic     orders-  prefixed
*          deny        alter      cluster   -        literal
"
        );
    }

    #[test]
    fn the_list_filter_narrows_by_principal_and_resource() {
        let a = acl(
            "alice",
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            Operation::Write,
            Permission::Allow,
        );
        let filter = |principal: Option<&str>, topic: Option<&str>, cluster: bool| AclFilter {
            principal: principal.map(Into::into),
            topic: topic.map(Into::into),
            group: None,
            cluster,
        };
        assert!(filter(None, None, false).keeps(&a));
        assert!(filter(Some("alice"), Some("orders"), false).keeps(&a));
        assert!(filter(Some("User:alice"), None, false).keeps(&a));
        assert!(!filter(Some("bob"), None, false).keeps(&a));
        assert!(!filter(None, Some("payments"), false).keeps(&a));
        assert!(!filter(None, None, true).keeps(&a));
    }
}
