#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retention on a real single-node Raft group: `Truncate` moves the log start to a batch
//! boundary, reads below it are refused, the boundary snapshot lets openraft purge the log,
//! and all of it survives a restart.

mod common;

use std::time::Duration;

use common::*;
use openraft::storage::RaftLogStorage;
use raft_store::reader::ReadLimits;
use raft_store::{is_below_log_start, ApplyResult, Command, LogStore, Store};

async fn truncate(g: &Group, before_offset: u64) -> u64 {
    match g
        .raft
        .client_write(Command::Truncate { before_offset })
        .await
        .unwrap()
        .data
    {
        ApplyResult::Truncated { log_start_offset } => log_start_offset,
        other => panic!("unexpected {other:?}"),
    }
}

async fn snapshot_and_wait_purge(g: &Group) -> u64 {
    let point = g.progress.borrow().snapshot_point.unwrap();
    g.raft.trigger().snapshot().await.unwrap();
    g.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.as_ref().is_some_and(|p| p.index() >= point),
            "purged up to the boundary",
        )
        .await
        .unwrap();
    point
}

const ALL: ReadLimits = ReadLimits {
    max_records: usize::MAX,
    max_bytes: usize::MAX,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_moves_the_log_start_to_a_batch_boundary_and_purges_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let purged;
    {
        let store = Store::open(dir.path()).unwrap();
        let g = open_group(&store, 5).await;
        for i in 0..10 {
            produce(&g, 5, i * 4, 4).await;
        }
        let bytes_before = g.progress.borrow().log_bytes;
        assert!(bytes_before > 0);
        // Offset 10 is inside the batch [8, 12): the start rounds down to keep all of it.
        assert_eq!(truncate(&g, 10).await, 8);
        let p = *g.progress.borrow();
        assert_eq!((p.log_start_offset, p.high_watermark), (8, 40));
        // Each of the 8 deleted records: key "kN" (2) + value {"g":5,"v":N} (13) + 16.
        assert_eq!(
            p.log_bytes,
            bytes_before - 8 * 31,
            "bytes of the deleted records"
        );
        // A stale, smaller truncate is a no-op.
        assert_eq!(truncate(&g, 3).await, 8);

        let err = g.reader.read(4, 40, ALL).unwrap_err();
        assert!(is_below_log_start(&err), "{err}");
        let kept = g.reader.read(8, 40, ALL).unwrap();
        assert_eq!(
            kept.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (8..40).collect::<Vec<_>>()
        );
        // Records carry their own index as timestamp: the oldest kept is found for old times.
        assert_eq!(g.reader.offset_for_timestamp(0, 8, 40).unwrap(), Some(8));
        assert_eq!(g.reader.offset_for_timestamp(21, 8, 40).unwrap(), Some(21));

        purged = snapshot_and_wait_purge(&g).await;
        let mut log = LogStore::new(store.clone(), 5);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.unwrap().index(), purged);
        // The entries holding offsets 8.. are still there: reads work after the purge.
        assert_eq!(g.reader.read(8, 40, ALL).unwrap().len(), 32);
        close(g).await;
    }
    let store = reopen(dir.path()).await;
    let g = open_group(&store, 5).await;
    wait_hw(&g, 40).await;
    let p = *g.progress.borrow();
    assert_eq!((p.log_start_offset, p.high_watermark), (8, 40));
    assert!(is_below_log_start(&g.reader.read(0, 40, ALL).unwrap_err()));
    assert_eq!(g.reader.read(8, 40, ALL).unwrap().len(), 32);
    assert_eq!(g.reader.offset_for_timestamp(0, 8, 40).unwrap(), Some(8));
    assert_eq!(
        produce(&g, 5, 40, 4).await,
        40,
        "offsets go on after restart"
    );

    // Past the high watermark: everything goes, and the next record still takes offset 44.
    assert_eq!(truncate(&g, 1_000).await, 44);
    assert_eq!(g.reader.read(44, 44, ALL).unwrap().len(), 0);
    let point = snapshot_and_wait_purge(&g).await;
    assert!(point > purged);
    assert_eq!(produce(&g, 5, 44, 2).await, 44);
    assert_eq!(g.reader.read(44, 46, ALL).unwrap().len(), 2);
    close(g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_and_time_limits_pick_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let g = open_group(&store, 6).await;
    // Timestamps are the offsets (0..40), 4 records per batch.
    for i in 0..10 {
        produce(&g, 6, i * 4, 4).await;
    }
    let p = *g.progress.borrow();
    // Record bytes: key (2) + value {"g":6,"v":N} (13 or 14) + 16; the last 7 batches hold
    // 4 x 32 each.
    assert_eq!(p.log_bytes, 2 * 124 + 126 + 7 * 128);
    let per_batch = 128;
    let start = |bytes| {
        g.reader
            .size_retention_start(p.log_start_offset, p.high_watermark, p.log_bytes, bytes)
            .unwrap()
    };
    assert_eq!(start(p.log_bytes), 0, "within the limit");
    assert_eq!(start(p.log_bytes - 1), 0, "one byte over keeps the batch");
    assert_eq!(start(per_batch * 3), 28, "exactly three batches kept");
    assert_eq!(start(per_batch * 3 + 1), 24, "at least the limit is kept");
    assert_eq!(start(0), 40, "a zero limit keeps nothing");

    let time = |cutoff| g.reader.time_retention_start(cutoff, 0, 40).unwrap();
    assert_eq!(time(0), 0);
    assert_eq!(time(9), 8, "batch [8,12) holds a record at 9 or later");
    assert_eq!(time(12), 12);
    assert_eq!(time(40), 40, "every record is older");
    close(g).await;
}
