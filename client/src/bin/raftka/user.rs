//! `raftka user create|list|delete|token|revoke|whoami`: users and their bearer tokens.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use raftka_client::{Client, TokenCreated, UserInfo, WhoAmI};

use crate::output::{Out, Table};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (without tokens: see `raftka user token`). Needs alter on the cluster.
    #[command(after_help = "Example:\n  raftka user create alice")]
    Create {
        /// User name: 1-128 characters of [a-zA-Z0-9._@-].
        name: String,
    },
    /// List users and their tokens (ids and creation times; a token's secret is never shown
    /// again after `raftka user token`). Needs describe on the cluster.
    List,
    /// Delete a user and revoke all its tokens. Its ACLs stay, and would apply to a new user
    /// of the same name. Needs alter on the cluster.
    Delete {
        /// User name.
        name: String,
    },
    /// Create a bearer token for a user and print it: with table output, the token alone on
    /// stdout (the id and a reminder go to stderr), so `$(raftka user token alice)` captures
    /// it. It is shown only this once. Needs alter on the cluster.
    #[command(after_help = "\
Examples:
  raftka user token alice > alice.token
  RAFTKA_TOKEN=$(raftka user token alice) raftka user whoami
  raftka user token alice -o json      # {\"user\":\"alice\",\"id\":\"…\",\"token\":\"…\"}")]
    Token {
        /// User name.
        name: String,
    },
    /// Revoke one of a user's tokens (ids as `raftka user list` shows them). Needs alter on
    /// the cluster.
    #[command(after_help = "Example:\n  raftka user revoke alice 5f1c2a9e")]
    Revoke {
        /// User name.
        name: String,
        /// The token's id.
        token_id: String,
    },
    /// Who the node takes the caller for (the principal of --token), whether it requires
    /// authentication, and whether ACLs bind the caller.
    Whoami,
}

pub async fn run(client: &Client, cmd: UserCommand, out: &Out) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Create { name } => {
            let user = client
                .create_user(&name)
                .await
                .with_context(|| format!("create user {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&user)?);
            } else {
                println!(
                    "created user {}; make it a token with: raftka user token {}",
                    user.name, user.name
                );
            }
        }
        UserCommand::List => {
            let users = client.list_users().await.context("list users")?;
            if out.json() {
                out.print_json(&serde_json::to_value(&users)?);
            } else if users.is_empty() {
                println!("no users");
            } else {
                users_table(&users).print(out);
            }
        }
        UserCommand::Delete { name } => {
            let user = client
                .delete_user(&name)
                .await
                .with_context(|| format!("delete user {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&user)?);
            } else {
                println!(
                    "deleted user {} and its {} token(s)",
                    user.name,
                    user.tokens.len()
                );
            }
        }
        UserCommand::Token { name } => {
            let created = client
                .create_token(&name)
                .await
                .with_context(|| format!("create a token for user {name}"))?;
            if out.json() {
                out.print_json(&serde_json::to_value(&created)?);
            } else {
                println!("{}", created.token);
                eprintln!("{}", token_hint(&created));
            }
        }
        UserCommand::Revoke { name, token_id } => {
            let token = client
                .revoke_token(&name, &token_id)
                .await
                .with_context(|| format!("revoke token {token_id} of user {name}"))?;
            if out.json() {
                out.print_json(&serde_json::json!({
                    "user": name, "id": token.id, "created_ms": token.created_ms, "revoked": true
                }));
            } else {
                println!("revoked token {} of user {name}", token.id);
            }
        }
        UserCommand::Whoami => {
            let me = client.whoami().await.context("whoami")?;
            if out.json() {
                out.print_json(&serde_json::to_value(&me)?);
            } else {
                print!("{}", whoami_text(&me));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per token (a user without tokens gets one row with `-`).
fn users_table(users: &[UserInfo]) -> Table {
    let mut table = Table::new(vec!["USER", "TOKEN", "CREATED"]);
    for u in users {
        if u.tokens.is_empty() {
            table.row(vec![u.name.as_str().into(), "-".into(), "-".into()]);
        }
        for t in &u.tokens {
            table.row(vec![
                u.name.as_str().into(),
                t.id.as_str().into(),
                utc(t.created_ms).into(),
            ]);
        }
    }
    table
}

/// The stderr line after a new token (which goes to stdout alone).
fn token_hint(created: &TokenCreated) -> String {
    format!(
        "created token {id} for user {user}; it is shown only this once, store it now \
         (revoke it with: raftka user revoke {user} {id})",
        id = created.id,
        user = created.user
    )
}

fn whoami_text(me: &WhoAmI) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    format!(
        "principal      {}\nauth required  {}\nsuperuser      {}\n",
        me.principal,
        yes(me.auth_required),
        if me.superuser {
            "yes (ACLs do not apply)"
        } else {
            "no (ACLs apply)"
        }
    )
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SSZ` (UTC).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{ColorChoice, Format};
    use raftka_client::TokenInfo;

    #[test]
    fn utc_formats_epoch_millis() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_796_474_693_999), "2026-12-05 12:44:53Z");
    }

    #[test]
    fn users_table_has_a_row_per_token() {
        let users = vec![
            UserInfo {
                name: "alice".into(),
                tokens: vec![
                    TokenInfo {
                        id: "t1".into(),
                        created_ms: 0,
                    },
                    TokenInfo {
                        id: "t2".into(),
                        created_ms: 86_400_000,
                    },
                ],
            },
            UserInfo {
                name: "bob".into(),
                tokens: vec![],
            },
        ];
        let out = Out::new(Format::Table, ColorChoice::Never);
        assert_eq!(
            users_table(&users).render(&out),
            "\
USER   TOKEN  CREATED
alice  t1     1970-01-01 00:00:00Z
alice  t2     1970-01-02 00:00:00Z
bob    -      -
"
        );
    }

    #[test]
    fn token_hint_names_the_id_but_not_the_token() {
        let created = TokenCreated {
            user: "alice".into(),
            id: "t9".into(),
            token: "the-secret".into(),
        };
        let hint = token_hint(&created);
        assert!(hint.contains("t9") && hint.contains("shown only this once"));
        assert!(hint.contains("raftka user revoke alice t9"));
        assert!(!hint.contains("the-secret"));
    }

    #[test]
    fn whoami_says_whether_acls_apply() {
        let me = WhoAmI {
            principal: "alice".into(),
            auth_required: true,
            superuser: false,
        };
        assert_eq!(
            whoami_text(&me),
            "principal      alice\nauth required  yes\nsuperuser      no (ACLs apply)\n"
        );
    }
}
