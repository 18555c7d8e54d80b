//! Every fixture in `tests/fixtures/` (a real reply written by the server's handlers, see
//! `node/tests/wire_fixtures.rs`) decodes into its protocol type and encodes back to the same
//! JSON: a renamed, dropped or retyped field fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use raftka_protocol::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) {
    let path = fixtures_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let decoded: T = serde_json::from_value(fixture.clone())
        .unwrap_or_else(|e| panic!("{name}: does not decode as its type: {e}"));
    let encoded = serde_json::to_value(&decoded).unwrap();
    assert_eq!(
        encoded, fixture,
        "{name}: does not encode back to the fixture"
    );
}

/// A fixture's name and the check that decodes it as its reply type.
type Fixture = (&'static str, fn(&str));

/// Every endpoint's fixture and its reply type.
const FIXTURES: &[Fixture] = &[
    ("topic_create", round_trip::<TopicDescription>),
    ("topic_list", round_trip::<TopicList>),
    ("topic_describe", round_trip::<TopicDescription>),
    ("topic_configs", round_trip::<TopicConfigs>),
    ("topic_alter_configs", round_trip::<TopicDescription>),
    ("topic_delete", round_trip::<TopicDeleted>),
    ("produce", round_trip::<ProduceReply>),
    ("produce_duplicate", round_trip::<ProduceReply>),
    ("fetch", round_trip::<FetchResponse>),
    ("offsets", round_trip::<PartitionOffsets>),
    ("offsets_for_timestamp", round_trip::<PartitionOffsets>),
    ("error_write", round_trip::<ErrorBody>),
    ("error_offset_out_of_range", round_trip::<ErrorBody>),
    ("cluster", round_trip::<ClusterState>),
    ("cluster_rebalance_leaders", round_trip::<LeaderRebalance>),
    ("healthz", round_trip::<Health>),
    ("readyz", round_trip::<Health>),
    ("group_join", round_trip::<JoinReply>),
    ("group_heartbeat", round_trip::<HeartbeatReply>),
    ("group_commit", round_trip::<CommitReply>),
    ("group_offsets", round_trip::<GroupOffsets>),
    ("group_describe", round_trip::<GroupDescription>),
    ("group_list", round_trip::<GroupList>),
    ("group_release", round_trip::<HeartbeatReply>),
    ("group_leave", round_trip::<LeaveReply>),
    ("group_reset", round_trip::<ResetReply>),
    ("group_delete", round_trip::<GroupDeleted>),
];

#[test]
fn every_fixture_round_trips_through_its_type() {
    for (name, check) in FIXTURES {
        check(name);
    }
}

#[test]
fn every_fixture_file_is_checked() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "json" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn error_fixtures_name_known_codes_and_writes_carry_outcome() {
    let write: ErrorBody = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("error_write.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(write.code(), Some(ErrorCode::TopicNotFound));
    assert_eq!(write.outcome, Some(Outcome::NotApplied));
    let range: ErrorBody = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("error_offset_out_of_range.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(range.code(), Some(ErrorCode::OffsetOutOfRange));
    assert!(range.log_start_offset.is_some() && range.high_watermark.is_some());
    assert_eq!(range.outcome, None);
}
