//! Acceptance: TLS. A 3-node cluster started with `scripts/cluster.sh start --tls` (rcgen
//! certificates) serves HTTPS only, also between its nodes: the CLI with `--ca` and
//! `curl --cacert` work; plain HTTP to the TLS port gets a `400` that says to use HTTPS; a client
//! that does not trust the CA fails with a certificate error, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic with a message on failure

mod common;

use std::process::{Command, Output};

use common::{ok, raftka_with, Cluster};

/// `curl ARGS` (silent, bounded); its output.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

#[test]
fn a_tls_cluster_serves_the_cli_and_curl_and_refuses_plain_or_untrusted_clients() {
    let cluster = Cluster::start_tls(3);
    let ca = cluster.ca.clone().expect("a TLS cluster has a CA");
    let ca_arg = ca.to_str().expect("utf-8 path");
    // The nodes replicate and forward over TLS: a topic with 3 replicas on 3 nodes.
    ok(
        &cluster.raftka(&[
            "topic",
            "create",
            "secure",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ]),
        "topic create over HTTPS",
    );
    let input: String = (0..300).map(|i| format!("k{}:v{i}\n", i % 7)).collect();
    let summary = ok(
        &cluster.raftka_stdin(
            &[
                "produce",
                "secure",
                "--key-separator",
                ":",
                "--output",
                "json",
            ],
            input.as_bytes(),
        ),
        "produce over HTTPS",
    );
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).expect("JSON");
    assert_eq!(summary["stored"], 300, "{summary}");

    // Read back through every node (bare host:port with --ca means https).
    for addr in cluster.bootstrap.split(',') {
        let bare = addr.trim_start_matches("https://");
        let mut total = 0;
        for p in 0..3 {
            let out = ok(
                &common::raftka_env(
                    bare,
                    &[
                        "consume",
                        "secure",
                        "--partition",
                        &p.to_string(),
                        "--offset",
                        "earliest",
                        "--max",
                        "300",
                        "--format",
                        "json",
                        "--ca",
                        ca_arg,
                    ],
                    None,
                    &[],
                ),
                "consume over HTTPS",
            );
            total += out.lines().count();
        }
        assert_eq!(total, 300, "every record through {bare}");
    }

    // curl with the CA: a JSON answer.
    let first = cluster
        .bootstrap
        .split(',')
        .next()
        .expect("a node")
        .to_string();
    let out = curl(&["--cacert", ca_arg, &format!("{first}/v1/topics/secure")]);
    assert!(out.status.success(), "{out:?}");
    let topic: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON topic");
    assert_eq!(topic["name"], "secure", "{topic}");

    // Plain HTTP to the TLS port: a 400 in the usual error shape that says what to do.
    let plain = first.replace("https://", "http://");
    let out = curl(&[
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        &format!("{plain}/v1/topics"),
    ]);
    assert!(out.status.success(), "curl got an answer: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("body and status");
    assert_eq!(code, "400", "{text}");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON error");
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("https://"),
        "{body}"
    );
    // The CLI pointed at it with http:// says the same.
    let out = raftka_with(&plain, &["topic", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTPS"), "{err}");

    // A client that does not trust the CA: curl fails with its certificate error (60), the
    // CLI with an error that names the certificate, and nothing is produced.
    let out = curl(&[&format!("{first}/v1/topics")]);
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_raftka"))
        .args(["produce", "secure"])
        .env("RAFTKA_BOOTSTRAP", &cluster.bootstrap)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"untrusted\n")?;
            child.wait_with_output()
        })
        .expect("run raftka");
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let offsets = ok(
        &cluster.raftka(&["topic", "describe", "secure", "--output", "json"]),
        "describe",
    );
    let described: serde_json::Value = serde_json::from_str(offsets.trim()).expect("JSON");
    let end: u64 = described["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["high_watermark"].as_u64().expect("high_watermark"))
        .sum();
    assert_eq!(
        end, 300,
        "nothing was written by the untrusting client: {described}"
    );
}
