//! The HTTP client, with failover across bootstrap nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, ErrorBody};
use crate::types::{FetchResponse, NewRecord, RecordOffset, TopicDescription};

/// A Raftka client. Any node serves any request; the client moves to the next bootstrap node
/// when one cannot be reached. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    nodes: std::sync::Arc<Vec<String>>,
    next: std::sync::Arc<AtomicUsize>,
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
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, bytes::Bytes), Error> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.nodes.len() {
            let node = &self.nodes[(start + i) % self.nodes.len()];
            let mut req = self.http.request(method.clone(), format!("{node}{path}"));
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| Error::Transport(e.to_string()))?;
                    return Ok((status, bytes));
                }
                Err(e) if e.is_connect() => last = format!("{node}: {e}"),
                Err(e) => return Err(Error::Transport(format!("{node}: {e}"))),
            }
        }
        Err(Error::Unreachable(last))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
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
        let body = json!({"name": name, "partitions": partitions, "replication_factor": replication_factor, "configs": {}});
        self.call(
            Method::POST,
            "/v1/topics",
            Some(body.to_string().into_bytes()),
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
        self.produce_raw(topic, body).await
    }

    /// Produces a pre-encoded JSON body (`{"records":[…]}`).
    ///
    /// # Errors
    /// As [`Client::produce`].
    pub async fn produce_raw(
        &self,
        topic: &str,
        body: Vec<u8>,
    ) -> Result<Vec<RecordOffset>, Error> {
        #[derive(serde::Deserialize)]
        struct Reply {
            offsets: Vec<RecordOffset>,
        }
        let r: Reply = self
            .call(
                Method::POST,
                &format!("/v1/topics/{topic}/records"),
                Some(body),
            )
            .await?;
        Ok(r.offsets)
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

fn server_error(status: StatusCode, bytes: &[u8]) -> Error {
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
