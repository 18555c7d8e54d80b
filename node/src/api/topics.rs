//! Topic administration: create, list, describe, grow (partitions), alter configs, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use futures::future::join_all;
use raftka_protocol::{
    AlterConfigsRequest, AlterTopicRequest, CreateTopicRequest, PartitionDescription, TopicConfigs,
    TopicDeleted, TopicDescription, TopicList, TopicSummary,
};

use super::extract::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::cluster::metadata::{MetaCommand, MetaResponse, TopicMeta};
use crate::cluster::topic_config;
use crate::error::{ApiError, ErrorCode};
use crate::node::Node;
use raftka_protocol::{ErrorBody, Operation, ResourceType};

/// The `{topic}` path parameter, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TopicParam {
    /// The topic's name.
    #[param(example = "orders")]
    pub topic: String,
}

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 1024;
/// Kafka's topic-name rules: 1–249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidTopic,
            format!("invalid topic name '{name}': use 1-249 characters of [a-zA-Z0-9._-]"),
        ))
    }
}

fn validate_configs(
    raw: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let s = config_string(k, v)?;
        topic_config::validate(k, &s)
            .map_err(|e| ApiError::new(ErrorCode::InvalidTopic, e.to_string()))?;
        out.insert(k.clone(), s);
    }
    Ok(out)
}

fn config_string(name: &str, v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(ApiError::new(
            ErrorCode::InvalidTopic,
            format!("config '{name}' must be a string or number"),
        )),
    }
}

/// Describes a topic with each partition's live leader and offsets.
pub async fn describe(node: &Node, topic: &TopicMeta) -> TopicDescription {
    let statuses = join_all(
        topic
            .partitions
            .iter()
            .map(|p| node.partition_status(p.group, &p.replicas)),
    )
    .await;
    TopicDescription {
        name: topic.name.clone(),
        replication_factor: topic.replication_factor,
        configs: topic.configs.clone(),
        partitions: topic
            .partitions
            .iter()
            .zip(statuses)
            .enumerate()
            .map(|(i, (p, s))| PartitionDescription {
                partition: i as u32,
                leader: s.leader,
                replicas: p.replicas.clone(),
                high_watermark: s.high_watermark,
                log_start_offset: s.log_start_offset,
                replicas_lag: s.replicas_lag,
            })
            .collect(),
    }
}

/// Creates a topic (`POST /v1/topics`) and answers once every partition has a leader (or after
/// 10 s, with `leader: null` for those still electing).
#[utoipa::path(
    post,
    path = "/v1/topics",
    tag = "topics",
    operation_id = "create_topic",
    request_body = CreateTopicRequest,
    responses(
        (status = 201, description = "Created", body = TopicDescription),
        (status = 400, description = "`bad_request` (malformed JSON) or `invalid_topic` (name, partition count or config)", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `create` on the topic or the cluster", body = ErrorBody),
        (status = 409, description = "`topic_exists`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_replication_factor`: more replicas than nodes", body = ErrorBody),
    )
)]
pub async fn create(
    State(node): State<Node>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTopicRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic_create(&req.name)?;
    validate_topic_name(&req.name)?;
    let partitions = req.partitions.unwrap_or(1);
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(ApiError::new(
            ErrorCode::InvalidTopic,
            format!("partitions must be 1..={MAX_PARTITIONS}"),
        ));
    }
    let nodes: Vec<_> = node.placement_nodes();
    let rf = req
        .replication_factor
        .unwrap_or_else(|| (nodes.len() as u32).min(3));
    if rf == 0 || rf as usize > nodes.len() {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "replication_factor must be 1..={} (the cluster's node count)",
                nodes.len()
            ),
        ));
    }
    let configs = validate_configs(&req.configs)?;
    let cmd = MetaCommand::CreateTopic {
        name: req.name.clone(),
        partitions,
        replication_factor: rf,
        configs,
        nodes,
    };
    match node.meta_write(cmd).await? {
        // Usable when this returns: every partition has elected a leader (bounded).
        MetaResponse::TopicCreated(topic) => Ok((
            StatusCode::CREATED,
            Json(described_with_leaders(&node, &topic).await),
        )),
        MetaResponse::TopicExists => Err(ApiError::new(
            ErrorCode::TopicExists,
            format!("topic '{}' already exists", req.name),
        )),
        MetaResponse::NotEnoughNodes { needed, have } => Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!("replication factor {needed} needs {needed} nodes; the cluster has {have}"),
        )),
        other => Err(ApiError::internal(format!(
            "unexpected metadata reply {other:?}"
        ))),
    }
}

/// Lists the topics the caller may describe (`GET /v1/topics`).
#[utoipa::path(
    get,
    path = "/v1/topics",
    tag = "topics",
    operation_id = "list_topics",
    responses((status = 200, description = "The topics, by name", body = TopicList))
)]
pub async fn list(State(node): State<Node>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    // Read through the metadata leader so a topic created elsewhere is listed at once.
    if node.catch_up_metadata().await.is_err() {
        tracing::debug!("listing topics from possibly stale local metadata");
    }
    let topics = node.with_metadata(|m| {
        m.topics
            .values()
            .filter(|t| caller.may(ResourceType::Topic, &t.name, Operation::Describe))
            .map(|t| TopicSummary {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: t.replication_factor,
            })
            .collect()
    });
    Ok(Json(TopicList { topics }))
}

/// Describes a topic: each partition's leader, replicas, offsets and replica lag
/// (`GET /v1/topics/{t}`).
#[utoipa::path(
    get,
    path = "/v1/topics/{topic}",
    tag = "topics",
    operation_id = "describe_topic",
    params(TopicParam),
    responses(
        (status = 200, description = "The topic", body = TopicDescription),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `describe` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic(&name, Operation::Describe)?;
    let topic = node.topic(&name).await?;
    Ok(Json(describe(&node, &topic).await))
}

/// `GET /v1/topics/{t}/configs`: the configs as set, and the effective values with defaults.
#[utoipa::path(
    get,
    path = "/v1/topics/{topic}/configs",
    tag = "topics",
    operation_id = "topic_configs",
    params(TopicParam),
    responses(
        (status = 200, description = "The configs", body = TopicConfigs),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `describe` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`", body = ErrorBody),
    )
)]
pub async fn configs(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic(&name, Operation::Describe)?;
    let topic = node.topic(&name).await?;
    Ok(Json(configs_view(&topic)))
}

fn configs_view(topic: &TopicMeta) -> TopicConfigs {
    let c = topic_config::TopicConfig::from_map(&topic.configs);
    let or_unlimited = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let effective = [
        (
            topic_config::RETENTION_MS,
            or_unlimited(c.retention_ms).into(),
        ),
        (
            topic_config::RETENTION_BYTES,
            or_unlimited(c.retention_bytes).into(),
        ),
        (topic_config::MAX_MESSAGE_BYTES, c.max_message_bytes.into()),
        (topic_config::CLEANUP_POLICY, "delete".into()),
    ];
    TopicConfigs {
        name: topic.name.clone(),
        configs: topic.configs.clone(),
        effective: effective
            .into_iter()
            .map(|(k, v): (&str, serde_json::Value)| (k.to_string(), v))
            .collect(),
    }
}

/// `PATCH /v1/topics/{t}/configs` with `{"configs": {"retention.ms": "60000", "x": null}}`:
/// sets the given configs and resets those given as `null` to their defaults, all or
/// nothing. Answers with the topic's description. Retention applies the new values at its
/// next check.
#[utoipa::path(
    patch,
    path = "/v1/topics/{topic}/configs",
    tag = "topics",
    operation_id = "alter_topic_configs",
    params(TopicParam),
    request_body = AlterConfigsRequest,
    responses(
        (status = 200, description = "The topic with its new configs", body = TopicDescription),
        (status = 400, description = "`bad_request` (malformed JSON, no config named) or `invalid_topic` (unknown config or bad value)", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
    )
)]
pub async fn alter_configs(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<AlterConfigsRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic(&name, Operation::Alter)?;
    node.topic(&name).await?;
    if req.configs.is_empty() {
        return Err(ApiError::bad_request(
            "configs must name at least one config",
        ));
    }
    let mut set = BTreeMap::new();
    let mut reset = Vec::new();
    for (k, v) in &req.configs {
        if v.is_null() {
            if !topic_config::KNOWN.contains(&k.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::InvalidTopic,
                    topic_config::ConfigError::Unknown(k.clone()).to_string(),
                ));
            }
            reset.push(k.clone());
        } else {
            let s = config_string(k, v)?;
            topic_config::validate(k, &s)
                .map_err(|e| ApiError::new(ErrorCode::InvalidTopic, e.to_string()))?;
            set.insert(k.clone(), s);
        }
    }
    match node
        .meta_write(MetaCommand::AlterTopicConfigs {
            name: name.clone(),
            set,
            reset,
        })
        .await?
    {
        MetaResponse::TopicAltered(topic) => Ok(Json(describe(&node, &topic).await)),
        MetaResponse::TopicNotFound => Err(ApiError::topic_not_found(&name)),
        other => Err(ApiError::internal(format!(
            "unexpected metadata reply {other:?}"
        ))),
    }
}

/// `PATCH /v1/topics/{t}` with `{"partitions": N}`: grows the topic to `N` partitions (only
/// up, as Kafka). The new partitions' replicas are placed over the cluster's nodes and their
/// groups elect leaders before this answers (bounded), like a create. Keyed records go to other
/// partitions from now on: `murmur2(key) % N` changes with `N`.
#[utoipa::path(
    patch,
    path = "/v1/topics/{topic}",
    tag = "topics",
    operation_id = "add_partitions",
    params(TopicParam),
    request_body = AlterTopicRequest,
    responses(
        (status = 200, description = "The grown topic", body = TopicDescription),
        (status = 400, description = "`bad_request` (malformed JSON) or `invalid_topic` (the count does not grow, or is over 1024)", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `alter` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the Content-Type is not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_replication_factor`: fewer nodes than the topic's replication factor", body = ErrorBody),
    )
)]
pub async fn alter(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<AlterTopicRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic(&name, Operation::Alter)?;
    let current = node.topic(&name).await?.partitions.len() as u32;
    if req.partitions <= current || req.partitions > MAX_PARTITIONS {
        return Err(ApiError::new(
            ErrorCode::InvalidTopic,
            format!(
                "partitions must grow: {current} < partitions <= {MAX_PARTITIONS}, got {}",
                req.partitions
            ),
        ));
    }
    let nodes: Vec<_> = node.placement_nodes();
    let cmd = MetaCommand::AddPartitions {
        name: name.clone(),
        partitions: req.partitions,
        nodes,
    };
    match node.meta_write(cmd).await? {
        MetaResponse::TopicAltered(topic) => Ok(Json(described_with_leaders(&node, &topic).await)),
        MetaResponse::TopicNotFound => Err(ApiError::topic_not_found(&name)),
        MetaResponse::PartitionsNotIncreased { current } => Err(ApiError::new(
            ErrorCode::InvalidTopic,
            format!("topic '{name}' already has {current} partitions; partitions only grow"),
        )),
        MetaResponse::NotEnoughNodes { needed, have } => Err(ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!("replication factor {needed} needs {needed} nodes; the cluster has {have}"),
        )),
        other => Err(ApiError::internal(format!(
            "unexpected metadata reply {other:?}"
        ))),
    }
}

/// The topic's description once every partition has a leader (waiting at most 10 s; a
/// partition still electing shows `leader: null`).
async fn described_with_leaders(node: &Node, topic: &TopicMeta) -> TopicDescription {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut desc = describe(node, topic).await;
    while desc.partitions.iter().any(|p| p.leader.is_none())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        desc = describe(node, topic).await;
    }
    desc
}

/// Deletes a topic and its records (`DELETE /v1/topics/{t}`).
#[utoipa::path(
    delete,
    path = "/v1/topics/{topic}",
    tag = "topics",
    operation_id = "delete_topic",
    params(("topic" = String, Path, description = "The topic's name", example = "retired-orders")),
    responses(
        (status = 200, description = "Deleted", body = TopicDeleted),
        (status = 400, description = "`bad_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "`forbidden`: no `delete` on the topic", body = ErrorBody),
        (status = 404, description = "`topic_not_found`", body = ErrorBody),
    )
)]
pub async fn delete(
    State(node): State<Node>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.topic(&name, Operation::Delete)?;
    node.topic(&name).await?;
    match node
        .meta_write(MetaCommand::DeleteTopic { name: name.clone() })
        .await?
    {
        MetaResponse::TopicDeleted => Ok(Json(TopicDeleted {
            name,
            deleted: true,
        })),
        MetaResponse::TopicNotFound => Err(ApiError::topic_not_found(&name)),
        other => Err(ApiError::internal(format!(
            "unexpected metadata reply {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                ErrorCode::InvalidTopic,
                "{bad}"
            );
        }
    }

    #[test]
    fn configs_are_validated() {
        let mut c = BTreeMap::new();
        c.insert("retention.ms".to_string(), serde_json::json!(1000));
        assert!(validate_configs(&c).is_ok());
        c.insert("retention.bytes".to_string(), serde_json::json!("-5"));
        assert!(validate_configs(&c).is_err());
        let mut u = BTreeMap::new();
        u.insert("nope".to_string(), serde_json::json!(1));
        assert!(validate_configs(&u).is_err());
    }
}
