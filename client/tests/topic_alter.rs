//! `raftka topic alter`: set and reset topic configs through `PATCH /v1/topics/{t}/configs`,
//! and its usage and server errors.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test: panics with a message

mod common;

use common::{ok, Cluster};

fn json(out: &std::process::Output, what: &str) -> serde_json::Value {
    serde_json::from_str(ok(out, what).trim()).expect("JSON output")
}

fn configs(v: &serde_json::Value) -> serde_json::Value {
    v["configs"].clone()
}

/// Exit code and the one stderr line of a failed run.
fn failure(out: &std::process::Output) -> (i32, String) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    (out.status.code().expect("exit code"), err)
}

#[test]
fn topic_alter_sets_and_resets_configs() {
    let c = Cluster::start();
    ok(
        &c.raftka(&[
            "topic",
            "create",
            "alt",
            "-p",
            "2",
            "-c",
            "max.message.bytes=65536",
        ]),
        "create",
    );
    let altered = json(
        &c.raftka(&[
            "topic",
            "alter",
            "alt",
            "--config",
            "retention.ms=60000",
            "--config",
            "retention.bytes=1048576",
            "--output",
            "json",
        ]),
        "alter",
    );
    assert_eq!(altered["name"], "alt");
    assert_eq!(
        altered["partitions"].as_array().unwrap().len(),
        2,
        "{altered}"
    );
    assert_eq!(
        configs(&altered),
        serde_json::json!({"max.message.bytes": "65536", "retention.bytes": "1048576", "retention.ms": "60000"})
    );
    let described = json(
        &c.raftka(&["topic", "describe", "alt", "--output", "json"]),
        "describe",
    );
    assert_eq!(configs(&described), configs(&altered), "stored");

    // Reset one to its default and change another, in one call; the table output.
    let table = ok(
        &c.raftka(&[
            "topic",
            "alter",
            "alt",
            "--delete-config",
            "max.message.bytes",
            "-c",
            "retention.ms=-1",
        ]),
        "alter reset",
    );
    assert!(
        table.contains("altered topic alt: retention.ms=-1, max.message.bytes reset to default"),
        "{table}"
    );
    assert!(table.contains("PARTITION"), "{table}");
    let described = json(
        &c.raftka(&["topic", "describe", "alt", "--output", "json"]),
        "describe",
    );
    assert_eq!(
        configs(&described),
        serde_json::json!({"retention.bytes": "1048576", "retention.ms": "-1"})
    );

    // The server's refusals: a bad value, an unknown config, a missing topic (exit 1), and
    // nothing changed.
    for (args, name) in [
        (
            &["topic", "alter", "alt", "-c", "retention.ms=soon"][..],
            "invalid_topic",
        ),
        (
            &["topic", "alter", "alt", "-d", "no.such.config"][..],
            "invalid_topic",
        ),
        (
            &["topic", "alter", "nope", "-c", "retention.ms=1"][..],
            "topic_not_found",
        ),
    ] {
        let (code, err) = failure(&c.raftka(args));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
    }
    let described = json(
        &c.raftka(&["topic", "describe", "alt", "--output", "json"]),
        "describe",
    );
    assert_eq!(
        configs(&described),
        serde_json::json!({"retention.bytes": "1048576", "retention.ms": "-1"}),
        "refused alters change nothing"
    );

    // Usage errors, before anything is sent (exit 2).
    for args in [
        &["topic", "alter", "alt"][..],
        &["topic", "alter", "alt", "-c", "retention.ms"][..],
        &[
            "topic",
            "alter",
            "alt",
            "-c",
            "retention.ms=1",
            "-d",
            "retention.ms",
        ][..],
    ] {
        let (code, err) = failure(&c.raftka(args));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[test]
fn topic_alter_partitions_grows_the_topic_and_refuses_to_shrink_it() {
    let c = Cluster::start();
    ok(&c.raftka(&["topic", "create", "grow", "-p", "2"]), "create");
    let grown = json(
        &c.raftka(&[
            "topic",
            "alter",
            "grow",
            "--partitions",
            "5",
            "--output",
            "json",
        ]),
        "alter --partitions",
    );
    assert_eq!(grown["partitions"].as_array().unwrap().len(), 5, "{grown}");
    let out = c.raftka(&["topic", "alter", "grow", "--partitions", "3"]);
    let (code, err) = failure(&out);
    assert_ne!(code, 0);
    assert!(err.contains("invalid_topic"), "{err}");
    let described = json(
        &c.raftka(&["topic", "describe", "grow", "--output", "json"]),
        "describe",
    );
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);
}
