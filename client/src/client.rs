//! The HTTP client, with failover across bootstrap nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use raftka_protocol::{
    AlterConfigsRequest, AlterTopicRequest, CreateTopicRequest, ErrorBody, ErrorCode, ProduceReply,
    ProduceRequest, TopicDeleted,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::leaders::LeaderCache;
use crate::types::{
    ClusterState, FetchResponse, LeaderRebalance, NewRecord, PartitionOffsets, RecordOffset,
    TopicDescription, TopicList,
};

/// A produce reply as the producer needs it (from the wire's [`ProduceReply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProduceAck {
    /// One offset per record, in request order.
    pub offsets: Vec<RecordOffset>,
    /// The batch had been stored before: these are its original offsets.
    pub duplicate: bool,
}

/// A Raftka client. Any node serves any request; the client moves to the next bootstrap node
/// when one cannot be reached. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    nodes: std::sync::Arc<Vec<String>>,
    next: std::sync::Arc<AtomicUsize>,
    leaders: std::sync::Arc<LeaderCache>,
}

impl Client {
    /// A client for the given `host:port` (or `http://host:port`) addresses.
    ///
    /// # Errors
    /// [`Error::Config`] when no address is given.
    pub fn new<I, S>(bootstrap: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = bootstrap
            .into_iter()
            .map(|s| s.as_ref().trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with("http://") || s.starts_with("https://") {
                    s
                } else {
                    format!("http://{s}")
                }
            })
            .collect();
        if nodes.is_empty() {
            return Err(Error::Config("no bootstrap address".into()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            http,
            nodes: std::sync::Arc::new(nodes),
            next: std::sync::Arc::new(AtomicUsize::new(0)),
            leaders: std::sync::Arc::default(),
        })
    }

    /// The bootstrap addresses.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Sends a request, moving to the next node only when nothing was sent (connect failure).
    /// Returns the status and body of the first node that answered.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when no node accepted the connection; [`Error::Transport`] when
    /// the request failed after it may have been sent.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<bytes::Bytes>,
    ) -> Result<(StatusCode, bytes::Bytes), Error> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.nodes.len() {
            let node = &self.nodes[(start + i) % self.nodes.len()];
            match self.send_to(node, method.clone(), path, body.clone()).await {
                // Nothing was sent: the next node may take it.
                Err(Error::Unreachable(why)) => last = why,
                other => return other,
            }
        }
        Err(Error::Unreachable(last))
    }

    /// Sends a request to one node (`base`, e.g. `http://host:port`) only.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when it did not accept the connection (nothing was sent);
    /// [`Error::Transport`] when the request failed after it may have been sent.
    async fn send_to(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<bytes::Bytes>,
    ) -> Result<(StatusCode, bytes::Bytes), Error> {
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| Error::Transport(e.to_string()))?;
                Ok((status, bytes))
            }
            Err(e) if e.is_connect() => {
                Err(Error::Unreachable(format!("{base}: {}", with_causes(&e))))
            }
            Err(e) => Err(Error::Transport(format!("{base}: {}", with_causes(&e)))),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<bytes::Bytes>,
    ) -> Result<T, Error> {
        let (status, bytes) = self.send_raw(method, path, body).await?;
        parse_reply(status, &bytes)
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// `topic_exists`, `invalid_topic`, … as [`Error::Server`].
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
    ) -> Result<TopicDescription, Error> {
        self.create_topic_with_configs(name, partitions, Some(replication_factor), &[])
            .await
    }

    /// Creates a topic with topic configs (`retention.ms`, …, see the API docs). Without a
    /// replication factor the server picks `min(3, nodes)`.
    ///
    /// # Errors
    /// `topic_exists`, `invalid_topic`, `invalid_replication_factor`, … as [`Error::Server`].
    pub async fn create_topic_with_configs(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: Option<u32>,
        configs: &[(String, String)],
    ) -> Result<TopicDescription, Error> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            partitions: Some(partitions),
            replication_factor,
            configs: configs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        };
        self.call_with_body(Method::POST, "/v1/topics", &request)
            .await
    }

    /// Changes a topic's configs (`PATCH /v1/topics/{name}/configs`): sets each of `set`, and
    /// resets each of `reset` to its default. All or nothing. Returns the topic's description.
    ///
    /// # Errors
    /// `topic_not_found`, `invalid_topic` (an unknown config or a bad value), `bad_request`
    /// (nothing to change), as [`Error::Server`].
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: &[(String, String)],
        reset: &[String],
    ) -> Result<TopicDescription, Error> {
        let mut request = AlterConfigsRequest {
            configs: set
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        };
        for k in reset {
            request.configs.insert(k.clone(), serde_json::Value::Null);
        }
        self.call_with_body(
            Method::PATCH,
            &format!("/v1/topics/{name}/configs"),
            &request,
        )
        .await
    }

    /// Grows a topic to `partitions` partitions (`PATCH /v1/topics/{name}`); partitions only
    /// grow. Keyed records go to other partitions afterwards. Returns the topic's description.
    ///
    /// # Errors
    /// `topic_not_found`, `invalid_topic` (not more partitions than now), as [`Error::Server`].
    pub async fn add_partitions(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicDescription, Error> {
        self.call_with_body(
            Method::PATCH,
            &format!("/v1/topics/{name}"),
            &AlterTopicRequest { partitions },
        )
        .await
    }

    /// Lists topics.
    ///
    /// # Errors
    /// Transport errors, or the server's error.
    pub async fn list_topics(&self) -> Result<TopicList, Error> {
        self.call(Method::GET, "/v1/topics", None).await
    }

    /// Deletes a topic and its records.
    ///
    /// # Errors
    /// `topic_not_found` as [`Error::Server`].
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let _: TopicDeleted = self
            .call(Method::DELETE, &format!("/v1/topics/{name}"), None)
            .await?;
        Ok(())
    }

    /// The cluster's nodes, metadata leader and every partition's leader.
    ///
    /// # Errors
    /// Transport errors, or the server's error.
    pub async fn cluster(&self) -> Result<ClusterState, Error> {
        self.call(Method::GET, "/v1/cluster", None).await
    }

    /// Hands every partition not led by its preferred replica back to it, where that replica is
    /// alive and caught up (`POST /v1/cluster/rebalance-leaders`).
    ///
    /// # Errors
    /// Transport errors, or the server's error.
    pub async fn rebalance_leaders(&self) -> Result<LeaderRebalance, Error> {
        self.call(Method::POST, "/v1/cluster/rebalance-leaders", None)
            .await
    }

    /// A partition's earliest (log start) and latest (high watermark) offsets.
    ///
    /// # Errors
    /// `topic_not_found`, `partition_not_found`, `leader_not_available`.
    pub async fn partition_offsets(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionOffsets, Error> {
        self.call(
            Method::GET,
            &format!("/v1/topics/{topic}/partitions/{partition}/offsets"),
            None,
        )
        .await
    }

    /// Describes a topic.
    ///
    /// # Errors
    /// `topic_not_found` as [`Error::Server`].
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        self.call(Method::GET, &format!("/v1/topics/{name}"), None)
            .await
    }

    /// Produces records; returns each record's partition and offset, in order.
    ///
    /// # Errors
    /// Every error says, through [`Error::outcome`], whether the records may have been written.
    pub async fn produce(
        &self,
        topic: &str,
        records: &[NewRecord],
    ) -> Result<Vec<RecordOffset>, Error> {
        let request = ProduceRequest {
            records: records.to_vec(),
            producer_id: None,
        };
        let body = serde_json::to_vec(&request).map_err(|e| Error::Decode(e.to_string()))?;
        self.produce_raw(topic, body.into()).await
    }

    /// Produces a pre-encoded JSON body (`{"records":[…]}`).
    ///
    /// # Errors
    /// As [`Client::produce`].
    pub async fn produce_raw(
        &self,
        topic: &str,
        body: bytes::Bytes,
    ) -> Result<Vec<RecordOffset>, Error> {
        Ok(self.produce_raw_reply(topic, body).await?.offsets)
    }

    /// Sends a produce request whose records all go to `partition` straight to that
    /// partition's leader when the client knows it (see [`crate::leaders`]), otherwise through
    /// any node. Only a refused connection (nothing sent) falls back to the other nodes, so a
    /// request is never sent twice.
    pub(crate) async fn produce_to_leader(
        &self,
        topic: &str,
        partition: u32,
        body: bytes::Bytes,
    ) -> Result<ProduceAck, Error> {
        let request = Request {
            method: Method::POST,
            path: &format!("/v1/topics/{topic}/records"),
            body: Some(body),
        };
        self.send_via_leader(
            topic,
            partition,
            request,
            Resend::IfNotSent,
            parse_produce_reply,
        )
        .await
    }

    /// Sends a request about one partition to that partition's leader when the client knows
    /// it, otherwise (or once the hint proves stale) through the bootstrap nodes
    /// ([`Client::send_raw`]), after which it refreshes the topic's leader hints. `parse` turns
    /// the reply into the result.
    ///
    /// A hint is dropped when its node answers `not_leader` or cannot be reached. Whether the
    /// request then goes to the bootstrap nodes depends on `resend`: a write only when nothing
    /// was sent (a `not_leader` answer is returned, for the caller's retry policy to judge); a
    /// read also after a `not_leader` answer or a transport error.
    async fn send_via_leader<T>(
        &self,
        topic: &str,
        partition: u32,
        request: Request<'_>,
        resend: Resend,
        parse: impl Fn(StatusCode, &[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Request { method, path, body } = request;
        if let Some(base) = self.leaders.get(topic, partition) {
            match self
                .send_to(&base, method.clone(), path, body.clone())
                .await
            {
                Ok((status, bytes)) => {
                    let reply = parse(status, &bytes);
                    let stale =
                        matches!(&reply, Err(e) if e.error_code() == Some(ErrorCode::NotLeader));
                    if !stale {
                        return reply;
                    }
                    self.leaders.forget(topic, partition);
                    if resend == Resend::IfNotSent {
                        return reply;
                    }
                }
                // Nothing was sent: any node may take it.
                Err(Error::Unreachable(_)) => self.leaders.forget(topic, partition),
                Err(Error::Transport(_)) if resend == Resend::Always => {
                    self.leaders.forget(topic, partition);
                }
                Err(e) => return Err(e),
            }
        }
        let reply = match self.send_raw(method, path, body).await {
            Ok((status, bytes)) => parse(status, &bytes),
            Err(e) => Err(e),
        };
        self.refresh_leaders(topic).await;
        reply
    }

    /// Learns `topic`'s partition leaders and their addresses (at most once a second per
    /// topic). Failures only leave the hints as they were.
    async fn refresh_leaders(&self, topic: &str) {
        if !self.leaders.claim_refresh(topic, std::time::Instant::now()) {
            return;
        }
        let (Ok(t), Ok(cluster)) = (self.describe_topic(topic).await, self.cluster().await) else {
            return;
        };
        let leaders: Vec<Option<u64>> = t.partitions.iter().map(|p| p.leader).collect();
        let addr_of = |id: u64| {
            cluster
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| base_url(&n.address))
        };
        self.leaders.update(topic, &leaders, addr_of);
    }

    /// [`Client::produce_raw`], also telling whether the server answered with the original
    /// offsets of a batch it had already stored (an idempotent retry).
    pub(crate) async fn produce_raw_reply(
        &self,
        topic: &str,
        body: bytes::Bytes,
    ) -> Result<ProduceAck, Error> {
        let (status, bytes) = self
            .send_raw(
                Method::POST,
                &format!("/v1/topics/{topic}/records"),
                Some(body),
            )
            .await?;
        parse_produce_reply(status, &bytes)
    }

    /// Fetches records from `offset`. Like a produce from the [`Producer`](crate::Producer),
    /// the fetch goes straight to the partition's leader once the client knows it (learned
    /// from the topic description after a request through a bootstrap node, refreshed at most
    /// once a second); when that leader moved or cannot be reached, the fetch (a read, safe to
    /// repeat) is sent again through the bootstrap nodes.
    ///
    /// # Errors
    /// `offset_out_of_range` (with bounds in the body), `topic_not_found`, …
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: u32,
        max_wait_ms: u64,
    ) -> Result<FetchResponse, Error> {
        let path = format!(
            "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records={max_records}&max_wait_ms={max_wait_ms}"
        );
        let request = Request {
            method: Method::GET,
            path: &path,
            body: None,
        };
        self.send_via_leader(topic, partition, request, Resend::Always, parse_reply)
            .await
    }
}

/// One HTTP request, as [`Client::send_via_leader`] sends it (maybe twice).
struct Request<'a> {
    method: Method,
    path: &'a str,
    body: Option<bytes::Bytes>,
}

/// Whether a request first sent to a partition's (hinted) leader may be sent again through the
/// bootstrap nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A write: only when nothing was sent (the leader refused the connection), so a write is
    /// never sent twice.
    IfNotSent,
    /// A read: also after a transport error or a `not_leader` answer.
    Always,
}

/// `host:port` as a base URL (kept as is when it has a scheme).
fn base_url(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A 2xx reply decoded as `T`, or the server's error.
fn parse_reply<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, Error> {
    if !status.is_success() {
        return Err(server_error(status, bytes));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// A produce reply's offsets, or the server's error.
fn parse_produce_reply(status: StatusCode, bytes: &[u8]) -> Result<ProduceAck, Error> {
    let r: ProduceReply = parse_reply(status, bytes)?;
    Ok(ProduceAck {
        duplicate: r.offsets.iter().any(|e| e.duplicate),
        offsets: r
            .offsets
            .into_iter()
            .map(|e| match e.offset {
                Some(offset) => Ok(RecordOffset {
                    partition: e.partition,
                    offset,
                }),
                None => Err(Error::Decode(format!(
                    "a successful produce reply has no offset for a record of partition {}",
                    e.partition
                ))),
            })
            .collect::<Result<_, _>>()?,
    })
}

/// An error and its sources on one line ("error sending request: …: Connection refused").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// Turns a non-2xx reply into [`Error::Server`] (or [`Error::Decode`] when it is not the API's
/// error shape).
pub(crate) fn server_error(status: StatusCode, bytes: &[u8]) -> Error {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
    match serde_json::from_value::<ErrorBody>(body.clone()) {
        Ok(e) => Error::Server {
            status: status.as_u16(),
            code: e.error_code,
            name: e.error,
            message: e.message,
            retriable: e.retriable,
            outcome: e.outcome,
            body,
        },
        Err(_) => Error::Decode(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )),
    }
}

impl Client {
    /// Sends a request with an optional JSON body and decodes the JSON reply; an error reply
    /// becomes [`Error::Server`].
    ///
    /// # Errors
    /// As [`Client::send_raw`], plus server errors and undecodable replies.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Error> {
        self.call(
            method,
            path,
            body.map(|b| bytes::Bytes::from(b.to_string())),
        )
        .await
    }

    /// Sends a request with a typed JSON body (one of the protocol's request types, such as
    /// [`JoinRequest`](crate::JoinRequest)) and decodes the JSON reply; an error reply becomes
    /// [`Error::Server`].
    ///
    /// # Errors
    /// [`Error::Config`] when the body cannot be encoded (nothing was sent); otherwise as
    /// [`Client::call_json`].
    pub async fn call_with_body<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("request cannot be encoded: {e}")))?;
        self.call(method, path, Some(body.into())).await
    }
}
