#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recovery of a real single-node Raft group on the RocksDB store: reopen after an unclean
//! stop, a torn WAL tail, and restart after a purge. Also checks that group commit shares one
//! fsync among many appends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use raft_store::reader::ReadLimits;
use raft_store::{Command, LogStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let store = Store::open(dir.path()).unwrap();
        let g = open_group(&store, 5).await;
        let mut offsets = vec![];
        for i in 0..20 {
            offsets.push(produce(&g, 5, i * 10, 10).await);
        }
        assert_eq!(
            offsets,
            (0..20).map(|i| i * 10).collect::<Vec<_>>(),
            "dense batch offsets"
        );
        expected = read_all(&g);
        assert_eq!(expected.len(), 200);
        // No flush, no graceful close of RocksDB: only the WAL carries the data.
        close(g).await;
    }
    let store = reopen(dir.path()).await;
    let g = open_group(&store, 5).await;
    wait_hw(&g, 200).await;
    assert_eq!(read_all(&g), expected);
    // New writes continue densely.
    assert_eq!(produce(&g, 5, 200, 5).await, 200);
    close(g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_recovers_to_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let g = open_group(&store, 9).await;
        for i in 0..30 {
            produce(&g, 9, i * 3, 3).await;
        }
        close(g).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Tear the newest WAL file: cut its last 100 bytes, as a crash mid-write would.
    let mut wals: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    wals.sort();
    let wal = wals.last().expect("a WAL file").clone();
    let len = std::fs::metadata(&wal).unwrap().len();
    assert!(len > 100, "wal has data");
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);

    let store = reopen(dir.path()).await;
    let g = open_group(&store, 9).await;
    // Entries that survived in the log but whose apply was torn off are applied again once the
    // new leader commits: wait for that before reading.
    g.raft
        .ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex)
        .await
        .unwrap();
    let got = read_all(&g);
    // A prefix of what was written, with dense offsets and the original values.
    assert!(!got.is_empty());
    for (i, (off, v)) in got.iter().enumerate() {
        assert_eq!(*off, i as u64);
        assert_eq!(v, &format!("{{\"g\":9,\"v\":{i}}}"));
    }
    let next = produce(&g, 9, 1000, 1).await;
    assert_eq!(
        next,
        got.len() as u64,
        "new writes follow the recovered prefix"
    );
    close(g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_purge_keeps_the_retained_log() {
    let dir = tempfile::tempdir().unwrap();
    let purged_upto;
    {
        let store = Store::open(dir.path()).unwrap();
        let g = open_group(&store, 3).await;
        for i in 0..10 {
            produce(&g, 3, i * 4, 4).await;
        }
        g.raft.trigger().snapshot().await.unwrap();
        let m = g.raft.wait(Some(Duration::from_secs(10)));
        let snap = m
            .metrics(|m| m.snapshot.is_some(), "snapshot built")
            .await
            .unwrap();
        purged_upto = snap.snapshot.unwrap().index();
        g.raft.trigger().purge_log(purged_upto).await.unwrap();
        g.raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.purged.as_ref().is_some_and(|p| p.index() >= purged_upto),
                "purged",
            )
            .await
            .unwrap();
        for i in 10..15 {
            produce(&g, 3, i * 4, 4).await;
        }
        close(g).await;
    }
    let store = reopen(dir.path()).await;
    let mut log = LogStore::new(store.clone(), 3);
    use openraft::storage::RaftLogStorage;
    let state = log.get_log_state().await.unwrap();
    assert!(state
        .last_purged_log_id
        .as_ref()
        .is_some_and(|l| l.index() >= purged_upto));
    let g = open_group(&store, 3).await;
    wait_hw(&g, 60).await;
    assert_eq!(g.progress.borrow().high_watermark, 60);
    // Records written after the purge point are readable at their offsets.
    let hw = g.progress.borrow().high_watermark;
    let lim = ReadLimits {
        max_records: 1000,
        max_bytes: usize::MAX,
    };
    let tail = g.reader.read(40, hw, lim).unwrap();
    assert_eq!(
        tail.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (40..60).collect::<Vec<_>>()
    );
    assert_eq!(produce(&g, 3, 60, 1).await, 60);
    close(g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs_across_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut groups = vec![];
    for gid in 1..=8u64 {
        groups.push(Arc::new(open_group(&store, gid).await));
    }
    let before = store.stats();
    let mut tasks = vec![];
    for (i, g) in groups.iter().enumerate() {
        let g = g.clone();
        let gid = i as u64 + 1;
        tasks.push(tokio::spawn(async move {
            for j in 0..25 {
                produce(&g, gid, j, 1).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.stats();
    let appends = after.appends_synced - before.appends_synced;
    let syncs = after.wal_syncs - before.wal_syncs;
    assert!(appends >= 200, "appends {appends}");
    assert!(
        syncs < appends,
        "group commit: {syncs} fsyncs for {appends} appends"
    );
    for g in groups {
        match Arc::try_unwrap(g) {
            Ok(g) => close(g).await,
            Err(_) => panic!("group still shared"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lookup_finds_the_first_record_at_or_after_a_time_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Non-monotonic timestamps, over several batches: offsets 0..=7.
    let batches: [&[i64]; 4] = [&[10, 30], &[20, 25], &[40, 5], &[50, 45]];
    let cases: [(i64, Option<u64>); 9] = [
        (0, Some(0)),
        (10, Some(0)),
        (11, Some(1)),
        (21, Some(1)),
        (30, Some(1)),
        (31, Some(4)),
        (41, Some(6)),
        (46, Some(6)),
        (51, None),
    ];
    {
        let store = Store::open(dir.path()).unwrap();
        let g = open_group(&store, 11).await;
        for b in batches {
            g.raft
                .client_write(Command::Produce(timed_batch(b)))
                .await
                .unwrap();
        }
        wait_hw(&g, 8).await;
        for (t, want) in cases {
            assert_eq!(
                g.reader.offset_for_timestamp(t, 0, 8).unwrap(),
                want,
                "t={t}"
            );
        }
        // Bounded by the log start: nothing before it is returned.
        assert_eq!(g.reader.offset_for_timestamp(0, 3, 8).unwrap(), Some(3));
        close(g).await;
    }
    let store = reopen(dir.path()).await;
    let g = open_group(&store, 11).await;
    wait_hw(&g, 8).await;
    for (t, want) in cases {
        assert_eq!(
            g.reader.offset_for_timestamp(t, 0, 8).unwrap(),
            want,
            "after restart, t={t}"
        );
    }
    close(g).await;
}
