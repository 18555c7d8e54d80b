//! The CLI and the Rust client against real nodes that require authentication
//! (`RAFTKA_AUTH=required`, a bootstrap admin token): no token is refused with a hint, the admin
//! makes a user, a token and ACLs with `raftka user`/`raftka acl`, the user's token then works
//! for exactly what its ACLs allow (CLI and library: producer, consumer group, fetches sent to
//! partition leaders on any node), and a revoked token stops working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ok, Cluster};
use raftka_client::{
    Client, Consumer, ConsumerConfig, ErrorCode, NewRecord, Producer, ProducerConfig,
};

const ADMIN_TOKEN: &str = "admin-token-for-the-auth-cli-test-0123456789";

/// How `raftka` gets its token in one run.
enum Token<'a> {
    None,
    Flag(&'a str),
    Env(&'a str),
    File(&'a Path),
}

/// Runs `raftka ARGS` against `cluster` with only the given token source (none inherited).
fn raftka(cluster: &Cluster, token: Token<'_>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftka"));
    cmd.env("RAFTKA_BOOTSTRAP", &cluster.bootstrap)
        .env("NO_COLOR", "1")
        .env_remove("RAFTKA_TOKEN")
        .env_remove("RAFTKA_TOKEN_FILE");
    match token {
        Token::None => {}
        Token::Flag(t) => {
            cmd.args(["--token", t]);
        }
        Token::Env(t) => {
            cmd.env("RAFTKA_TOKEN", t);
        }
        Token::File(p) => {
            cmd.arg("--token-file").arg(p);
        }
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn raftka");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("raftka runs")
}

/// Asserts exit code 1 with the server's `code` on stderr; returns stderr.
fn refused(out: &Output, code: ErrorCode, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit 1, stdout: {} stderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let needle = format!("{} ({})", code.name(), code.number());
    assert!(stderr.contains(&needle), "{what}: {stderr}");
    stderr
}

fn json(out: &Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&ok(out, what)).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

#[test]
fn users_tokens_and_acls_through_the_cli_and_the_client() {
    let cluster = Cluster::start_with_env(
        3,
        0,
        &[
            ("RAFTKA_AUTH", "required"),
            ("RAFTKA_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let admin_file = dir.path().join("admin.token");
    std::fs::write(&admin_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let admin = Token::File(&admin_file);

    // Without a token, or with an unknown one: 401, exit 1, and a hint about the token.
    let e = refused(
        &raftka(&cluster, Token::None, &["topic", "list"], None),
        ErrorCode::Unauthenticated,
        "no token",
    );
    assert!(e.contains("RAFTKA_TOKEN"), "{e}");
    refused(
        &raftka(
            &cluster,
            Token::Flag("not-a-real-token"),
            &["user", "whoami"],
            None,
        ),
        ErrorCode::Unauthenticated,
        "unknown token",
    );

    // The bootstrap admin, from a token file.
    let me = json(
        &raftka(&cluster, admin, &["user", "whoami", "-o", "json"], None),
        "admin whoami",
    );
    assert_eq!(me["principal"], "admin");
    assert_eq!(me["auth_required"], true);
    assert_eq!(me["superuser"], true);
    let admin = || Token::File(&admin_file);
    ok(
        &raftka(
            &cluster,
            admin(),
            &["topic", "create", "orders", "-p", "3", "-r", "3"],
            None,
        ),
        "create topic",
    );
    let created = ok(
        &raftka(&cluster, admin(), &["user", "create", "alice"], None),
        "create user",
    );
    assert!(created.contains("created user alice"), "{created}");
    refused(
        &raftka(&cluster, admin(), &["user", "create", "alice"], None),
        ErrorCode::UserExists,
        "create user twice",
    );

    // `user token`: the token alone on stdout, the reminder on stderr.
    let out = raftka(&cluster, admin(), &["user", "token", "alice"], None);
    let stdout = ok(&out, "user token");
    let alice_token = stdout.trim().to_string();
    assert_eq!(
        stdout,
        format!("{alice_token}\n"),
        "only the token on stdout"
    );
    let hint = String::from_utf8_lossy(&out.stderr);
    assert!(hint.contains("shown only this once"), "{hint}");
    let users = json(
        &raftka(&cluster, admin(), &["user", "list", "-o", "json"], None),
        "user list",
    );
    assert_eq!(users[0]["name"], "alice");
    let token_id = users[0]["tokens"][0]["id"].as_str().unwrap().to_string();
    assert!(hint.contains(&token_id), "{hint}");
    let table = ok(
        &raftka(&cluster, admin(), &["user", "list"], None),
        "user list table",
    );
    assert!(
        table.starts_with("USER") && table.contains(&token_id),
        "{table}"
    );
    assert!(
        !table.contains(&alice_token),
        "a listed token is never shown"
    );

    // Alice is known but may do nothing yet: 403, nothing produced.
    let me = json(
        &raftka(
            &cluster,
            Token::Env(&alice_token),
            &["user", "whoami", "-o", "json"],
            None,
        ),
        "alice whoami",
    );
    assert_eq!(
        (me["principal"].as_str(), me["superuser"].as_bool()),
        (Some("alice"), Some(false))
    );
    let e = refused(
        &raftka(
            &cluster,
            Token::Env(&alice_token),
            &["produce", "orders"],
            Some("a\n"),
        ),
        ErrorCode::Forbidden,
        "produce without an ACL",
    );
    assert!(e.contains("acl add"), "{e}");

    // ACLs: write and read on the topic, read on her group.
    ok(
        &raftka(
            &cluster,
            admin(),
            &[
                "acl",
                "add",
                "--principal",
                "alice",
                "--topic",
                "orders",
                "--operation",
                "write,read",
            ],
            None,
        ),
        "acl add topic",
    );
    ok(
        &raftka(
            &cluster,
            admin(),
            &[
                "acl",
                "add",
                "--principal",
                "User:alice",
                "--group",
                "billing",
                "--operation",
                "read",
            ],
            None,
        ),
        "acl add group",
    );
    let acls = json(
        &raftka(
            &cluster,
            admin(),
            &["acl", "list", "--principal", "alice", "-o", "json"],
            None,
        ),
        "acl list",
    );
    assert_eq!(acls.as_array().map(Vec::len), Some(3), "{acls}");

    // The CLI with her token: produce, then read partition by partition.
    let lines: String = (0..30).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(
        &raftka(
            &cluster,
            Token::Flag(&alice_token),
            &["produce", "orders", "--key-separator", ":"],
            Some(&lines),
        ),
        "alice produce",
    );
    refused(
        &raftka(
            &cluster,
            Token::Env(&alice_token),
            &["topic", "delete", "orders"],
            None,
        ),
        ErrorCode::Forbidden,
        "delete without an ACL",
    );
    refused(
        &raftka(&cluster, Token::Env(&alice_token), &["user", "list"], None),
        ErrorCode::Forbidden,
        "user list without an ACL",
    );

    // The library with her token: a producer and a consumer group over all three nodes (the
    // producer and the fetches go straight to each partition's leader).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addrs: Vec<String> = (1..=3).map(|n| cluster.addr(n)).collect();
    rt.block_on(async {
        let anonymous = Client::new(&addrs).unwrap();
        let e = anonymous.list_topics().await.unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::Unauthenticated));
        let client = Client::new(&addrs)
            .unwrap()
            .with_token(&alice_token)
            .unwrap();
        assert!(!format!("{client:?}").contains(&alice_token));
        assert_eq!(client.whoami().await.unwrap().principal, "alice");
        let e = client.list_users().await.unwrap_err();
        assert_eq!(e.error_code(), Some(ErrorCode::Forbidden));

        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let mut deliveries = Vec::new();
        for i in 30..60 {
            let record = NewRecord::string(format!("v{i}")).with_key(format!("k{i}"));
            deliveries.push(producer.send("orders", record).await.unwrap());
        }
        producer.flush().await.unwrap();
        for d in deliveries {
            d.await.unwrap();
        }

        let mut consumer =
            Consumer::join(client.clone(), ConsumerConfig::new("billing", &["orders"]))
                .await
                .unwrap();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < 60 && Instant::now() < deadline {
            seen += consumer.poll().await.unwrap().len();
        }
        assert_eq!(seen, 60, "every record, CLI's and producer's");
        consumer.commit().await.unwrap();
        consumer.close().await.unwrap();
    });

    // Revoke her token: it stops working at once.
    let out = ok(
        &raftka(
            &cluster,
            admin(),
            &["user", "revoke", "alice", &token_id],
            None,
        ),
        "revoke",
    );
    assert!(out.contains(&token_id), "{out}");
    refused(
        &raftka(
            &cluster,
            Token::Env(&alice_token),
            &["user", "whoami"],
            None,
        ),
        ErrorCode::Unauthenticated,
        "revoked token",
    );

    // Remove the ACLs; then none of hers is left. Removing again: acl_not_found.
    let removed = json(
        &raftka(
            &cluster,
            admin(),
            &[
                "acl",
                "remove",
                "--principal",
                "alice",
                "--topic",
                "orders",
                "--operation",
                "read,write",
                "-o",
                "json",
            ],
            None,
        ),
        "acl remove",
    );
    assert_eq!(removed.as_array().map(Vec::len), Some(2), "{removed}");
    ok(
        &raftka(
            &cluster,
            admin(),
            &[
                "acl",
                "remove",
                "--principal",
                "alice",
                "--group",
                "billing",
                "--operation",
                "read",
            ],
            None,
        ),
        "acl remove group",
    );
    refused(
        &raftka(
            &cluster,
            admin(),
            &[
                "acl",
                "remove",
                "--principal",
                "alice",
                "--group",
                "billing",
                "--operation",
                "read",
            ],
            None,
        ),
        ErrorCode::AclNotFound,
        "acl remove twice",
    );
    let left = ok(
        &raftka(
            &cluster,
            admin(),
            &["acl", "list", "--principal", "alice"],
            None,
        ),
        "acl list after",
    );
    assert_eq!(left.trim(), "no ACLs");
    let out = ok(
        &raftka(&cluster, admin(), &["user", "delete", "alice"], None),
        "user delete",
    );
    assert!(out.contains("deleted user alice"), "{out}");
}
