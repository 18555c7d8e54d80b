//! The HTTP client, with failover across bootstrap nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, ErrorBody};
use crate::leaders::LeaderCache;
use crate::types::{
    ClusterState, FetchResponse, NewRecord, PartitionOffsets, RecordOffset, TopicDescription,
    TopicList,
};

/// A produce reply as the producer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProduceReply {
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
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()));
        }
        Err(server_error(status, &bytes))
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
        let configs: serde_json::Map<String, serde_json::Value> = configs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut body = json!({"name": name, "partitions": partitions, "configs": configs});
        if let Some(rf) = replication_factor {
            body["replication_factor"] = json!(rf);
        }
        self.call(Method::POST, "/v1/topics", Some(body.to_string().into()))
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
        let mut configs: serde_json::Map<String, serde_json::Value> = set
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        for k in reset {
            configs.insert(k.clone(), serde_json::Value::Null);
        }
        let body = json!({ "configs": configs });
        self.call(
            Method::PATCH,
            &format!("/v1/topics/{name}/configs"),
            Some(body.to_string().into()),
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
        let _: serde_json::Value = self
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
        let body = serde_json::to_vec(&json!({ "records": records }))
            .map_err(|e| Error::Decode(e.to_string()))?;
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
    ) -> Result<ProduceReply, Error> {
        if let Some(base) = self.leaders.get(topic, partition) {
            let path = format!("/v1/topics/{topic}/records");
            match self
                .send_to(&base, Method::POST, &path, Some(body.clone()))
                .await
            {
                Ok((status, bytes)) => {
                    let reply = parse_produce_reply(status, &bytes);
                    if let Err(e) = &reply {
                        if e.name() == Some("not_leader") {
                            self.leaders.forget(topic, partition);
                        }
                    }
                    return reply;
                }
                Err(Error::Unreachable(_)) => self.leaders.forget(topic, partition),
                Err(e) => return Err(e),
            }
        }
        let reply = self.produce_raw_reply(topic, body).await;
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
    ) -> Result<ProduceReply, Error> {
        let (status, bytes) = self
            .send_raw(
                Method::POST,
                &format!("/v1/topics/{topic}/records"),
                Some(body),
            )
            .await?;
        parse_produce_reply(status, &bytes)
    }

    /// Fetches records from `offset`.
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
        self.call(Method::GET, &path, None).await
    }
}

/// An error and its sources on one line ("error sending request: …: Connection refused").
/// `host:port` as a base URL (kept as is when it has a scheme).
fn base_url(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A produce reply's offsets, or the server's error.
fn parse_produce_reply(status: StatusCode, bytes: &[u8]) -> Result<ProduceReply, Error> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(flatten)]
        at: RecordOffset,
        #[serde(default)]
        duplicate: bool,
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        offsets: Vec<Entry>,
    }
    if !status.is_success() {
        return Err(server_error(status, bytes));
    }
    let r: Reply = serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(ProduceReply {
        duplicate: r.offsets.iter().any(|e| e.duplicate),
        offsets: r.offsets.into_iter().map(|e| e.at).collect(),
    })
}

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
}
