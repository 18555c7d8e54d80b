//! Joining a running cluster (`--join`): the node registers through any seed node, which takes
//! the request to the metadata leader, and learns its id (kept in `<data-dir>/node-id` so a
//! restart keeps it) and every node's address. The metadata leader then adds it to the
//! metadata group as a learner; it serves once it has caught up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft_store::{codec, NodeId};

use crate::config::Config;
use crate::error::ApiError;
use crate::forward::message::{InternalResponse, JoinReply};
use crate::forward::{InternalRequest, INTERNAL_RPC_PATH};
use crate::node::StartError;
use crate::raft::transport::{NetFaults, Transport};

/// How long a joining node keeps trying its seeds.
const JOIN_PATIENCE: Duration = Duration::from_secs(60);
/// How long one registration request may take on a first join.
const FIRST_JOIN_TRY: Duration = Duration::from_secs(15);
/// How long one registration request may take on a restart (which does not need it).
const RESTART_TRY: Duration = Duration::from_secs(3);

fn id_file(data_dir: &Path) -> PathBuf {
    data_dir.join("node-id")
}

/// The id stored by an earlier start, if any.
///
/// # Errors
/// An unreadable or malformed file.
pub fn stored_id(data_dir: &Path) -> Result<Option<NodeId>, StartError> {
    match std::fs::read_to_string(id_file(data_dir)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| {
            StartError::Other(format!("{}: not a node id", id_file(data_dir).display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StartError::Other(format!(
            "{}: {e}",
            id_file(data_dir).display()
        ))),
    }
}

/// Registers this node through its `--join` seeds and returns the address book. Sets
/// `config.id` (given, stored, or assigned) and stores it. A restarted node (its id stored by
/// an earlier join) tries each seed once and, when none answers, starts from its local state
/// (its metadata replica has the rest); a first join keeps trying for a minute.
///
/// # Errors
/// A configuration conflict (the stored id differs from `--id`), a refused registration (a
/// removed id), or no seed reachable for a node without an id.
pub async fn join(
    config: &mut Config,
    faults: &NetFaults,
) -> Result<BTreeMap<NodeId, String>, StartError> {
    let stored = stored_id(&config.data_dir)?;
    let given = (config.id != 0).then_some(config.id);
    if let (Some(s), Some(g)) = (stored, given) {
        if s != g {
            return Err(StartError::Other(format!(
                "--id {g} but {} holds node {s}: one data directory belongs to one node",
                config.data_dir.display()
            )));
        }
    }
    let known = stored.or(given);
    let transport = Transport::new(
        known.unwrap_or(0),
        BTreeMap::new(),
        config.cluster_secret().to_string(),
        faults.clone(),
        &config.peer_tls()?,
        None,
    )
    .map_err(|e| StartError::Other(e.to_string()))?;
    let req = InternalRequest::Join {
        id: known,
        addr: config.advertised(),
    };
    let body = codec::encode(&req).map_err(|e| StartError::Other(e.to_string()))?;
    let give_up = tokio::time::Instant::now() + JOIN_PATIENCE;
    let per_try = if stored.is_some() {
        RESTART_TRY
    } else {
        FIRST_JOIN_TRY
    };
    let mut last = String::from("no seed tried");
    loop {
        for seed in &config.join {
            match try_seed(&transport, seed, body.clone(), per_try).await {
                Ok(reply) => {
                    config.id = reply.id;
                    std::fs::write(id_file(&config.data_dir), format!("{}\n", reply.id))
                        .map_err(|e| StartError::Other(format!("storing the node id: {e}")))?;
                    tracing::info!(node_id = reply.id, %seed, "joined the cluster");
                    return Ok(reply.nodes);
                }
                Err(JoinError::Refused(e)) => {
                    return Err(StartError::Other(format!(
                        "the cluster refused this node: {}",
                        e.message
                    )))
                }
                Err(JoinError::Retry(why)) => last = format!("{seed}: {why}"),
            }
        }
        // A restart (an id stored by an earlier join) does not wait for the seeds: after a
        // whole-cluster stop they may themselves wait for this node's metadata vote. Its own
        // metadata replica has the registry and every address.
        if stored.is_some() || tokio::time::Instant::now() >= give_up {
            if let Some(id) = known {
                tracing::warn!(node_id = id, error = %last, "no seed answered; starting from the local state");
                config.id = id;
                return Ok(BTreeMap::new());
            }
            return Err(StartError::Other(format!("could not join: {last}")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

enum JoinError {
    Refused(ApiError),
    Retry(String),
}

async fn try_seed(
    transport: &Transport,
    seed: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<JoinReply, JoinError> {
    let bytes = transport
        .post_addr(0, seed, INTERNAL_RPC_PATH, body, timeout)
        .await
        .map_err(|e| JoinError::Retry(e.to_string()))?;
    let reply: Result<InternalResponse, ApiError> =
        codec::decode(&bytes).map_err(|e| JoinError::Retry(e.to_string()))?;
    match reply {
        Ok(InternalResponse::Joined(j)) => Ok(j),
        Ok(other) => Err(JoinError::Retry(format!("unexpected reply {other:?}"))),
        Err(e) if e.code.retriable() => Err(JoinError::Retry(e.message)),
        Err(e) => Err(JoinError::Refused(e)),
    }
}
