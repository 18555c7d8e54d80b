//! The HTTP client, with failover across bootstrap nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use raftka_protocol::{
    AlterConfigsRequest, AlterTopicRequest, CreateTopicRequest, ErrorBody, ErrorCode, ProduceReply,
    ProduceRequest, TopicDeleted,
};
use reqwest::header::{HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING};
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
///
/// With a bearer token ([`Client::with_token`]) every request it sends carries
/// `Authorization: Bearer <token>`: the calls of this type, the [`Producer`](crate::Producer)'s
/// and the [`Consumer`](crate::Consumer)'s built on it, and [`Client::send_raw`]. Its `Debug`
/// output never shows the token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// Base URLs (`scheme://host:port`) of the bootstrap nodes.
    nodes: std::sync::Arc<Vec<String>>,
    /// The bootstrap addresses as given (a scheme or none).
    given: std::sync::Arc<Vec<String>>,
    /// The scheme of addresses given without one: `https` or `http`.
    https: bool,
    next: std::sync::Arc<AtomicUsize>,
    leaders: std::sync::Arc<LeaderCache>,
    auth: Option<BearerToken>,
    /// Request bodies compressed, replies asked for compressed ([`Client::with_compression`]).
    compression: crate::Compression,
}

/// The `Authorization` header value of a bearer token, marked sensitive; `Debug` hides it.
#[derive(Clone)]
struct BearerToken(HeaderValue);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer <redacted>")
    }
}

impl BearerToken {
    /// The header for `token`, which must be non-empty printable ASCII without spaces (the
    /// characters of a bearer token). The error never quotes the token.
    fn new(token: &str) -> Result<Self, Error> {
        if token.is_empty() {
            return Err(Error::Config("the token is empty".into()));
        }
        if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
            let what = if bad.is_whitespace() {
                "whitespace"
            } else {
                "a character that is not printable ASCII"
            };
            return Err(Error::Config(format!(
                "the token contains {what}; a bearer token is printable ASCII without spaces"
            )));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl Client {
    /// A client for the given `host:port` (or `http://host:port`, `https://host:port`)
    /// addresses. Addresses without a scheme use `http://`, or `https://` when any address
    /// given has it; the nodes' addresses the client learns from the cluster follow the same
    /// scheme. [`Client::with_ca_pem`] adds a CA to trust (and makes HTTPS the default).
    ///
    /// # Errors
    /// [`Error::Config`] when no address is given.
    pub fn new<I, S>(bootstrap: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let given: Vec<String> = bootstrap
            .into_iter()
            .map(|s| s.as_ref().trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            return Err(Error::Config("no bootstrap address".into()));
        }
        let https = given.iter().any(|s| s.starts_with("https://"));
        let http = http_client(&[])?;
        Ok(Self {
            http,
            nodes: std::sync::Arc::new(given.iter().map(|s| base_url(s, https)).collect()),
            given: std::sync::Arc::new(given),
            https,
            next: std::sync::Arc::new(AtomicUsize::new(0)),
            leaders: std::sync::Arc::default(),
            auth: None,
            compression: crate::Compression::None,
        })
    }

    /// This client over HTTPS, trusting the CA certificates in `pem` (one or more PEM
    /// certificates, e.g. a cluster's own CA) as well as the system's roots. Bootstrap
    /// addresses given without a scheme, and the node addresses learnt from the cluster, use
    /// `https://` from now on.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("ca.pem")?;
    /// let client = raftka_client::Client::new(["127.0.0.1:19091"])?.with_ca_pem(&ca)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] when `pem` holds no certificate or one that cannot be parsed.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("CA certificates: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(
                "CA certificates: no PEM certificate found".into(),
            ));
        }
        self.http = http_client(&certs)?;
        self.https = true;
        self.nodes = std::sync::Arc::new(self.given.iter().map(|s| base_url(s, true)).collect());
        self.leaders = std::sync::Arc::default();
        Ok(self)
    }

    /// Whether the client reaches nodes over HTTPS by default.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// This client with a bearer token: every request it (and every clone made afterwards,
    /// [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer) included) sends carries
    /// `Authorization: Bearer <token>`. Nodes with authentication off ignore it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), raftka_client::Error> {
    /// let client = raftka_client::Client::new(["127.0.0.1:19091"])?.with_token("s3cr3t-t0ken")?;
    /// println!("I am {}", client.whoami().await?.principal);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] when the token is empty or has characters a bearer token cannot
    /// have (whitespace, control or non-ASCII characters); the message does not quote it.
    pub fn with_token(mut self, token: impl AsRef<str>) -> Result<Self, Error> {
        self.auth = Some(BearerToken::new(token.as_ref())?);
        Ok(self)
    }

    /// This client with compressed bodies, as Kafka producers compress batches: request
    /// bodies of 256 bytes or more go compressed (`Content-Encoding`), and replies are asked
    /// for in the same codec (`Accept-Encoding`). Every clone made afterwards, the
    /// [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer) included, does the same.
    /// [`Compression::None`](crate::Compression::None) (the default) sends bodies as they are.
    pub fn with_compression(mut self, compression: crate::Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The body compression in use.
    pub fn compression(&self) -> crate::Compression {
        self.compression
    }

    /// This client without a bearer token.
    pub fn without_token(mut self) -> Self {
        self.auth = None;
        self
    }

    /// Whether requests carry a bearer token.
    pub fn has_token(&self) -> bool {
        self.auth.is_some()
    }

    /// A client for other bootstrap addresses with this one's settings (its token and HTTP
    /// connection pool), e.g. to leave out a node that is about to go away.
    ///
    /// # Errors
    /// [`Error::Config`] when no address is given.
    pub fn with_bootstrap<I, S>(&self, bootstrap: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let given: Vec<String> = bootstrap
            .into_iter()
            .map(|s| s.as_ref().trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            return Err(Error::Config("no bootstrap address".into()));
        }
        Ok(Self {
            http: self.http.clone(),
            nodes: std::sync::Arc::new(given.iter().map(|s| base_url(s, self.https)).collect()),
            given: std::sync::Arc::new(given),
            https: self.https,
            next: std::sync::Arc::new(AtomicUsize::new(0)),
            leaders: std::sync::Arc::default(),
            auth: self.auth.clone(),
            compression: self.compression,
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
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.0.clone());
        }
        let encoding = self.compression.encoding();
        if let Some(enc) = encoding {
            req = req.header(ACCEPT_ENCODING, enc);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json");
            req = match encoding {
                Some(enc) if b.len() >= crate::compression::MIN_COMPRESSED_BYTES => req
                    .header(CONTENT_ENCODING, enc)
                    .body(self.compression.compress(&b)?),
                _ => req.body(b),
            };
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let content_encoding = resp
                    .headers()
                    .get(CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| Error::Transport(e.to_string()))?;
                let bytes = crate::compression::decode_reply(content_encoding.as_deref(), bytes)?;
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
                .map(|n| base_url(&n.address, self.https))
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

/// `host:port` as a base URL, `https://` or `http://` (kept as is when it has a scheme).
fn base_url(addr: &str, https: bool) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else if https {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// The HTTP client: the system's roots and `extra_roots` trusted for HTTPS.
fn http_client(extra_roots: &[reqwest::Certificate]) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .use_rustls_tls()
        // A pool of HTTP/1.1 connections, as over plain HTTP: over TLS, ALPN would otherwise
        // pick HTTP/2 and carry every request in flight on one connection (secured/plain
        // throughput 0.879 with it, 0.928 without, in scripts/bench-security.sh runs recorded
        // in docs/benchmarks.md).
        .http1_only();
    for cert in extra_roots {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder.build().map_err(|e| Error::Config(e.to_string()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::test_server::{error_reply, Seen, TestServer};
    use crate::{Consumer, ConsumerConfig, Producer, ProducerConfig};

    const TOKEN: &str = "tok-3f9a1c_secret.value~42";

    /// A one-node "cluster" with topic `t` (one partition led by node 1, this server) and
    /// group `g`, answering every request the client, producer and consumer make.
    fn fake_node(addr: &str, seen: &Seen) -> (u16, String) {
        let path = seen.path.split('?').next().unwrap_or_default();
        let reply = match (seen.method.as_str(), path) {
            ("GET", "/v1/topics/t") => json!({
                "name": "t", "replication_factor": 1, "configs": {},
                "partitions": [{"partition": 0, "leader": 1, "replicas": [1],
                                "high_watermark": 1, "log_start_offset": 0}]
            }),
            ("GET", "/v1/cluster") => json!({
                "node_id": 1, "metadata_leader": 1, "partitions": [],
                "nodes": [{"id": 1, "address": addr, "alive": true}]
            }),
            ("GET", "/v1/topics") => json!({"topics": []}),
            ("POST", "/v1/topics/t/records") => {
                let n = serde_json::from_str::<serde_json::Value>(&seen.body)
                    .ok()
                    .and_then(|b| b["records"].as_array().map(Vec::len))
                    .unwrap_or(1);
                let offsets: Vec<_> = (0..n)
                    .map(|i| json!({"partition": 0, "offset": i}))
                    .collect();
                json!({ "offsets": offsets })
            }
            ("GET", "/v1/topics/t/partitions/0/records") => json!({
                "records": [{"offset": 0, "timestamp_ms": 1, "key": null, "value": "x"}],
                "high_watermark": 1, "log_start_offset": 0
            }),
            ("GET", "/v1/topics/t/partitions/0/offsets") => json!({"earliest": 0, "latest": 1}),
            ("POST", "/v1/groups/g/members") => json!({
                "member_id": "m1", "generation": 1, "session_timeout_ms": 30000,
                "assignment": [{"topic": "t", "partition": 0}]
            }),
            ("POST", "/v1/groups/g/members/m1/heartbeat") => json!({
                "generation": 1, "assignment": [{"topic": "t", "partition": 0}], "revoking": []
            }),
            ("GET", "/v1/groups/g/offsets") => {
                json!({"group": "g", "generation": 1, "offsets": []})
            }
            ("POST", "/v1/groups/g/offsets") => json!({"committed": 1}),
            ("DELETE", "/v1/groups/g/members/m1") => {
                json!({"group": "g", "member_id": "m1", "left": true})
            }
            _ => return error_reply(ErrorCode::RouteNotFound),
        };
        (200, reply.to_string())
    }

    async fn start_fake_node() -> TestServer {
        let addr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let a = addr.clone();
        let server = TestServer::start(move |seen| fake_node(&a.lock().unwrap(), seen)).await;
        *addr.lock().unwrap() = server.addr.clone();
        server
    }

    fn assert_all_carry_token(seen: &[Seen], what: &str) {
        assert!(!seen.is_empty(), "{what}: no request reached the server");
        let expected = format!("Bearer {TOKEN}");
        for s in seen {
            assert_eq!(
                s.authorization.as_deref(),
                Some(expected.as_str()),
                "{what}: {} {} without the token",
                s.method,
                s.path
            );
        }
    }

    #[tokio::test]
    async fn every_kind_of_request_carries_the_token() {
        let server = start_fake_node().await;
        let client = Client::new([server.addr.as_str()])
            .unwrap()
            .with_token(TOKEN)
            .unwrap();

        // send_raw, call (GET), call_json, call_with_body.
        let (status, _) = client
            .send_raw(Method::GET, "/v1/topics", None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        client.list_topics().await.unwrap();
        let _: serde_json::Value = client
            .call_json(Method::GET, "/v1/topics", None)
            .await
            .unwrap();
        let _: serde_json::Value = client
            .call_with_body(Method::POST, "/v1/groups/g/offsets", &json!({}))
            .await
            .unwrap();
        // A produce through any node, then (with the leader hint learned) fetches straight to
        // the leader: send_via_leader's both paths, and the hint refresh's own requests.
        client
            .produce("t", &[NewRecord::json(json!(1))])
            .await
            .unwrap();
        client.fetch("t", 0, 0, 10, 0).await.unwrap();
        client.fetch("t", 0, 0, 10, 0).await.unwrap();
        assert_all_carry_token(&server.seen(), "client calls");
        let kinds: Vec<String> = server
            .seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap_or("")))
            .collect();
        for k in [
            "GET /v1/topics",
            "POST /v1/groups/g/offsets",
            "POST /v1/topics/t/records",
            "GET /v1/topics/t",
            "GET /v1/cluster",
            "GET /v1/topics/t/partitions/0/records",
        ] {
            assert!(kinds.iter().any(|s| s == k), "{k} not sent: {kinds:?}");
        }

        // The batching producer (partition count, then produce to the partition's leader).
        let before = server.seen().len();
        let producer = Producer::new(
            client.clone(),
            ProducerConfig::default().linger(Duration::from_millis(1)),
        );
        let delivery = producer.send("t", NewRecord::json(json!(2))).await.unwrap();
        producer.flush().await.unwrap();
        delivery.await.unwrap();
        let seen = server.seen();
        assert!(seen[before..]
            .iter()
            .any(|s| s.method == "POST" && s.path == "/v1/topics/t/records"));
        assert_all_carry_token(&seen[before..], "producer");

        // The consumer: join, committed offsets, fetch, commit, leave.
        let before = server.seen().len();
        let mut consumer = Consumer::join(client.clone(), ConsumerConfig::new("g", &["t"]))
            .await
            .unwrap();
        let records = consumer.poll().await.unwrap();
        assert_eq!(records.len(), 1);
        consumer.commit().await.unwrap();
        consumer.close().await.unwrap();
        let seen = server.seen();
        for k in [
            "POST /v1/groups/g/members",
            "GET /v1/groups/g/offsets",
            "GET /v1/topics/t/partitions/0/records",
            "POST /v1/groups/g/offsets",
            "DELETE /v1/groups/g/members/m1",
        ] {
            assert!(
                seen[before..].iter().any(|s| format!(
                    "{} {}",
                    s.method,
                    s.path.split('?').next().unwrap_or("")
                ) == k),
                "consumer: {k} not sent"
            );
        }
        assert_all_carry_token(&seen[before..], "consumer");

        // A client for other bootstrap nodes keeps the token; one without sends none.
        let before = server.seen().len();
        let other = client.with_bootstrap([server.addr.as_str()]).unwrap();
        assert!(other.has_token());
        other.list_topics().await.unwrap();
        assert_all_carry_token(&server.seen()[before..], "with_bootstrap");
        let anonymous = client.clone().without_token();
        anonymous.list_topics().await.unwrap();
        assert_eq!(server.seen().last().unwrap().authorization, None);
    }

    #[tokio::test]
    async fn without_a_token_no_authorization_header_is_sent() {
        let server = start_fake_node().await;
        let client = Client::new([server.addr.as_str()]).unwrap();
        assert!(!client.has_token());
        client.list_topics().await.unwrap();
        client
            .produce("t", &[NewRecord::json(json!(1))])
            .await
            .unwrap();
        assert!(server.seen().iter().all(|s| s.authorization.is_none()));
    }

    #[tokio::test]
    async fn auth_errors_carry_their_codes() {
        for code in [ErrorCode::Unauthenticated, ErrorCode::Forbidden] {
            let server = TestServer::start(move |_| error_reply(code)).await;
            let client = Client::new([server.addr.as_str()])
                .unwrap()
                .with_token(TOKEN)
                .unwrap();
            let e = client.list_topics().await.unwrap_err();
            assert_eq!(e.error_code(), Some(code));
            assert!(matches!(e, Error::Server { status, .. } if status == code.http_status()));
            assert!(!e.to_string().contains(TOKEN));
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new(["127.0.0.1:1"])
            .unwrap()
            .with_token(TOKEN)
            .unwrap();
        for text in [format!("{client:?}"), format!("{client:#?}")] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("3f9a1c"), "{text}");
            assert!(text.contains("Bearer <redacted>"), "{text}");
        }
        let clone = client.clone();
        assert!(!format!("{clone:?}").contains(TOKEN));
    }

    #[test]
    fn bad_tokens_are_refused_without_being_quoted() {
        let client = || Client::new(["127.0.0.1:1"]).unwrap();
        for bad in ["", "has space", "new\nline", "tab\there", "caf\u{e9}"] {
            let e = client().with_token(bad).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad:?}: {e}");
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
        // Base64url, hex, JWT-like and padded tokens are fine.
        for good in ["abc", "a.b.c", "QUJD+/==", "x-y_z~1"] {
            assert!(client().with_token(good).is_ok(), "{good}");
        }
    }
}
