//! Heartbeat coalescing: the empty appends of every group this node leads, bound for one peer,
//! travel together as one `POST /raft-batch/append` instead of one request each.
//!
//! openraft sends a heartbeat per group and follower every `heartbeat_interval` (an
//! `AppendEntriesRequest` without entries). With a thousand partitions that is thousands of HTTP
//! requests a second between two nodes, each costing far more than the Raft work it carries.
//! Here each such request is queued for its peer; a per-peer task gathers what arrives within a
//! short window and sends it as one message, and the receiver runs every item through its
//! group's `append_entries`, concurrently, returning one reply per item in order.
//!
//! Nothing about Raft changes: openraft emits every heartbeat itself and gets back that
//! heartbeat's own reply, so the leader's lease still runs from the send time openraft
//! recorded. The window is small against the RPC's time-to-live (a few milliseconds against
//! three quarters of the heartbeat interval), the batch's timeout is the earliest item's
//! deadline, and the receiver bounds every item by it, so one slow group cannot hold the
//! others' replies past their deadline. Appends that carry entries are never batched.
//!
//! A peer that does not know the batch route (a build before it, during a rolling upgrade)
//! answers `404`; its heartbeats then go one by one again, and batching is tried again a minute
//! later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_store::{codec, GroupId, NodeId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::transport::{SendError, Transport, TransportInner};

/// The internal route that takes a batch of heartbeats.
pub const BATCH_PATH: &str = "/raft-batch/append";
/// At most this many heartbeats go in one message.
const MAX_ITEMS: usize = 2048;
/// How long batching stays off for a peer that answered the batch route with `404`.
const RETRY_UNSUPPORTED: Duration = Duration::from_secs(60);

/// A batch of heartbeats on the wire: each group's encoded `AppendEntriesRequest`, and how long
/// the receiver may take over them.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Milliseconds the sender waits for the reply: every item is bounded by it.
    pub budget_ms: u64,
    /// `(group, postcard-encoded AppendEntriesRequest)`, in the sender's order.
    pub items: Vec<(GroupId, Vec<u8>)>,
}

/// One item's reply: what `POST /raft/{group}/append` would have answered.
#[derive(Debug, Serialize, Deserialize)]
pub enum ItemReply {
    /// `200` with this body (an encoded `AppendEntriesResponse`).
    Ok(Vec<u8>),
    /// Any other status, with its body text.
    Status {
        /// The HTTP status the single request would have had.
        status: u16,
        /// Its body, as text.
        body: String,
    },
}

/// A batch's reply: one [`ItemReply`] per item, in order.
pub type BatchReply = Vec<ItemReply>;

/// One queued heartbeat.
struct Item {
    group: GroupId,
    body: Vec<u8>,
    deadline: Instant,
    reply: oneshot::Sender<Result<Bytes, SendError>>,
}

/// The per-peer queues of one node's transport.
#[derive(Default)]
pub(super) struct Coalescer {
    queues: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Item>>>,
    /// Peers that answered the batch route with `404`, until when.
    unsupported: Mutex<HashMap<NodeId, Instant>>,
    /// Heartbeats sent in batches.
    heartbeats: AtomicU64,
    /// Batch messages sent.
    batches: AtomicU64,
}

/// Counts of the heartbeat batching since the node started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    /// Heartbeats that went in a batch.
    pub heartbeats: u64,
    /// Batch messages sent (each carrying one or more heartbeats).
    pub batches: u64,
}

/// The guarded value, also after a panic elsewhere while it was held (the maps it guards stay
/// consistent: each change is one insert or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long heartbeats wait for company: a fortieth of the heartbeat interval, between 1 and
/// 10 ms (6 ms at the default 250 ms).
pub fn window(heartbeat_ms: u64) -> Duration {
    Duration::from_millis((heartbeat_ms / 40).clamp(1, 10))
}

impl Transport {
    /// Sends one heartbeat (an encoded `AppendEntriesRequest` without entries) of `group` to
    /// `peer`, batched with the other groups' heartbeats to that peer, and returns the reply
    /// body as a single `POST /raft/{group}/append` would.
    ///
    /// # Errors
    /// As [`Transport::post`]; every item of a batch that failed as a whole gets that error.
    pub async fn post_heartbeat(
        &self,
        peer: NodeId,
        group: GroupId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, SendError> {
        let (tx, rx) = oneshot::channel();
        let item = Item {
            group,
            body,
            deadline: Instant::now() + timeout,
            reply: tx,
        };
        self.queue(peer)
            .send(item)
            .map_err(|_| SendError::NotSent {
                peer,
                reason: "the heartbeat queue is closed".into(),
            })?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(SendError::MaybeSent {
                peer,
                reason: "the heartbeat batch was dropped".into(),
                timed_out: false,
            }),
        }
    }

    /// The queue of `peer`, with its task started on first use.
    fn queue(&self, peer: NodeId) -> mpsc::UnboundedSender<Item> {
        let mut queues = lock(&self.inner().coalescer.queues);
        if let Some(q) = queues.get(&peer).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let weak = Arc::downgrade(self.inner());
        let window = self.heartbeat_window().unwrap_or(Duration::from_millis(1));
        tokio::spawn(gather(weak, peer, rx, window));
        queues.insert(peer, tx.clone());
        tx
    }
}

/// The task of one peer: gathers what arrives within `window` of a batch's first heartbeat
/// (or [`MAX_ITEMS`]) and sends it on, without waiting for the reply before gathering the next.
/// Ends when the transport is gone.
async fn gather(
    transport: Weak<TransportInner>,
    peer: NodeId,
    mut rx: mpsc::UnboundedReceiver<Item>,
    window: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        let flush_at = tokio::time::Instant::now() + window;
        while items.len() < MAX_ITEMS {
            tokio::select! {
                biased;
                next = rx.recv() => match next {
                    Some(item) => items.push(item),
                    None => break,
                },
                () = tokio::time::sleep_until(flush_at) => break,
            }
        }
        let Some(inner) = transport.upgrade() else {
            return;
        };
        tokio::spawn(send(Transport::from_inner(inner), peer, items));
    }
}

/// Sends `items` to `peer` as one batch (or one by one to a peer without the batch route) and
/// hands every item its reply.
async fn send(transport: Transport, peer: NodeId, items: Vec<Item>) {
    let now = Instant::now();
    let earliest = items.iter().map(|i| i.deadline).min().unwrap_or(now);
    let timeout = earliest
        .saturating_duration_since(now)
        .max(Duration::from_millis(1));
    if transport.batching_refused(peer) {
        one_by_one(&transport, peer, items).await;
        return;
    }
    let request = BatchRequest {
        budget_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        items: items.iter().map(|i| (i.group, i.body.clone())).collect(),
    };
    let body = match codec::encode(&request) {
        Ok(b) => b,
        Err(e) => {
            for item in items {
                let _ = item.reply.send(Err(SendError::NotSent {
                    peer,
                    reason: format!("encoding a heartbeat batch: {e}"),
                }));
            }
            return;
        }
    };
    let coalescer = &transport.inner().coalescer;
    coalescer.batches.fetch_add(1, Ordering::Relaxed);
    coalescer
        .heartbeats
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    match transport.post(peer, BATCH_PATH, body, timeout).await {
        Ok(bytes) => match codec::decode::<BatchReply>(&bytes) {
            Ok(replies) if replies.len() == items.len() => {
                for (item, reply) in items.into_iter().zip(replies) {
                    let result = match reply {
                        ItemReply::Ok(b) => Ok(Bytes::from(b)),
                        ItemReply::Status { status, body } => {
                            Err(SendError::Status { peer, status, body })
                        }
                    };
                    let _ = item.reply.send(result);
                }
            }
            other => {
                let reason = match other {
                    Ok(r) => format!("{} replies to {} heartbeats", r.len(), items.len()),
                    Err(e) => format!("undecodable heartbeat batch reply: {e}"),
                };
                for item in items {
                    let _ = item.reply.send(Err(SendError::MaybeSent {
                        peer,
                        reason: reason.clone(),
                        timed_out: false,
                    }));
                }
            }
        },
        Err(SendError::Status { status: 404, .. }) => {
            tracing::info!(
                peer,
                "the peer has no heartbeat batch route: heartbeats go one by one for a while"
            );
            transport.refuse_batching(peer);
            one_by_one(&transport, peer, items).await;
        }
        Err(e) => {
            for item in items {
                let _ = item.reply.send(Err(e.duplicate()));
            }
        }
    }
}

/// Sends each heartbeat as its own `POST /raft/{group}/append`, concurrently.
async fn one_by_one(transport: &Transport, peer: NodeId, items: Vec<Item>) {
    let sends = items.into_iter().map(|item| async move {
        let timeout = item
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let path = format!("/raft/{}/append", item.group);
        let result = transport.post(peer, &path, item.body, timeout).await;
        let _ = item.reply.send(result);
    });
    futures::future::join_all(sends).await;
}

impl Transport {
    /// How many heartbeats went in batches, in how many messages.
    pub fn heartbeat_batch_counts(&self) -> BatchCounts {
        let c = &self.inner().coalescer;
        BatchCounts {
            heartbeats: c.heartbeats.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
        }
    }

    fn batching_refused(&self, peer: NodeId) -> bool {
        let mut refused = lock(&self.inner().coalescer.unsupported);
        match refused.get(&peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                refused.remove(&peer);
                false
            }
            None => false,
        }
    }

    fn refuse_batching(&self, peer: NodeId) {
        lock(&self.inner().coalescer.unsupported).insert(peer, Instant::now() + RETRY_UNSUPPORTED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use axum::body::Bytes as Body;
    use axum::extract::Path;
    use axum::routing::post;
    use axum::Router;

    use crate::raft::transport::NetFaults;

    /// A peer on 127.0.0.1 serving `router`, and a transport of node 1 that knows it as node 2.
    async fn peer_with(router: Router) -> Result<Transport, Box<dyn std::error::Error>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        let peers = BTreeMap::from([(2, addr.to_string())]);
        let t = Transport::new(
            1,
            peers,
            "secret-for-tests".into(),
            NetFaults::default(),
            &crate::tls::PeerTls::default(),
            Some(Duration::from_millis(20)),
        )?;
        Ok(t)
    }

    /// The single-request route of a peer: answers the group id and the body back.
    async fn single(Path(group): Path<GroupId>, body: Body) -> Vec<u8> {
        let mut out = group.to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    #[tokio::test]
    async fn heartbeats_to_one_peer_share_a_message_and_get_their_own_replies(
    ) -> Result<(), Box<dyn std::error::Error>> {
        async fn batch(body: Body) -> Vec<u8> {
            let Ok(req) = codec::decode::<BatchRequest>(&body) else {
                return Vec::new();
            };
            let replies: BatchReply = req
                .items
                .into_iter()
                .map(|(group, body)| {
                    if group == 9 {
                        ItemReply::Status {
                            status: 404,
                            body: "group 9 is not open on this node".into(),
                        }
                    } else {
                        let mut out = group.to_be_bytes().to_vec();
                        out.extend_from_slice(&body);
                        ItemReply::Ok(out)
                    }
                })
                .collect();
            codec::encode(&replies).unwrap_or_default()
        }
        let t = peer_with(Router::new().route(BATCH_PATH, post(batch))).await?;
        let sends = (0..8u64).chain([9]).map(|g| {
            let t = t.clone();
            async move {
                t.post_heartbeat(
                    2,
                    g,
                    vec![u8::try_from(g).unwrap_or(0)],
                    Duration::from_secs(5),
                )
                .await
            }
        });
        let replies = futures::future::join_all(sends).await;
        for (g, r) in (0..8u64).zip(&replies) {
            let mut want = g.to_be_bytes().to_vec();
            want.push(u8::try_from(g)?);
            assert_eq!(r.as_ref().map(|b| b.to_vec()).ok(), Some(want), "group {g}");
        }
        assert!(matches!(
            replies.last(),
            Some(Err(SendError::Status { status: 404, .. }))
        ));
        let counts = t.heartbeat_batch_counts();
        assert_eq!(counts.heartbeats, 9);
        assert!(
            counts.batches < 9,
            "9 heartbeats within one window took {} messages",
            counts.batches
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_peer_without_the_batch_route_gets_heartbeats_one_by_one(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let t = peer_with(Router::new().route("/raft/{group}/append", post(single))).await?;
        let r = t
            .post_heartbeat(2, 5, vec![7], Duration::from_secs(5))
            .await?;
        assert_eq!(r.to_vec(), [5u64.to_be_bytes().as_slice(), &[7]].concat());
        assert!(t.batching_refused(2));
        // Later heartbeats go straight to the single route.
        let r = t
            .post_heartbeat(2, 6, vec![8], Duration::from_secs(5))
            .await?;
        assert_eq!(r.to_vec(), [6u64.to_be_bytes().as_slice(), &[8]].concat());
        assert_eq!(t.heartbeat_batch_counts().batches, 1);
        Ok(())
    }

    #[tokio::test]
    async fn an_unreachable_peer_fails_every_heartbeat_as_not_sent(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // Bind and drop: nothing listens on that port any more.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await?
            .local_addr()?
            .port();
        let t = Transport::new(
            1,
            BTreeMap::from([(2, format!("127.0.0.1:{port}"))]),
            "secret-for-tests".into(),
            NetFaults::default(),
            &crate::tls::PeerTls::default(),
            Some(Duration::from_millis(5)),
        )?;
        let sends = (0..3u64).map(|g| {
            let t = t.clone();
            async move { t.post_heartbeat(2, g, vec![], Duration::from_secs(2)).await }
        });
        for r in futures::future::join_all(sends).await {
            assert!(
                matches!(r, Err(SendError::NotSent { peer: 2, .. })),
                "{r:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_window_is_small_against_the_heartbeat() {
        assert_eq!(window(250), Duration::from_millis(6));
        assert_eq!(window(100), Duration::from_millis(2));
        assert_eq!(window(10), Duration::from_millis(1));
        assert_eq!(window(10_000), Duration::from_millis(10));
    }

    #[test]
    fn batches_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let req = BatchRequest {
            budget_ms: 150,
            items: vec![(3, vec![1, 2, 3]), (7, vec![])],
        };
        let back: BatchRequest = codec::decode(&codec::encode(&req)?)?;
        assert_eq!(back.budget_ms, 150);
        assert_eq!(back.items, req.items);
        let reply: BatchReply = vec![
            ItemReply::Ok(vec![9]),
            ItemReply::Status {
                status: 404,
                body: "group 7 is not open on this node".into(),
            },
        ];
        let back: BatchReply = codec::decode(&codec::encode(&reply)?)?;
        assert!(matches!(&back[0], ItemReply::Ok(b) if b == &vec![9]));
        assert!(matches!(&back[1], ItemReply::Status { status: 404, .. }));
        Ok(())
    }
}
