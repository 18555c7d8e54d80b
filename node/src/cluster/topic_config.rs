//! Topic configs: the names Raftka knows, their validation, defaults, and the typed view the
//! produce path and retention use.
//!
//! Configs are stored in the metadata group as given (strings, as Kafka's are), and only
//! validated values are ever stored, so reading them back cannot fail; a value that does not
//! parse (which validation prevents) falls back to the default.

use std::collections::BTreeMap;

/// `retention.ms`: how long records are kept, by their timestamp; -1 keeps them forever.
pub const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`: record bytes kept per partition; -1 means no limit.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// `max.message.bytes`: the largest record the topic accepts.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `cleanup.policy`: only `delete` (no compaction).
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// Every config a topic may set.
pub const KNOWN: [&str; 4] = [
    RETENTION_MS,
    RETENTION_BYTES,
    MAX_MESSAGE_BYTES,
    CLEANUP_POLICY,
];

/// Kafka's default `retention.ms`: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Why a config value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a config Raftka knows.
    #[error("unknown topic config '{0}' (known: retention.ms, retention.bytes, max.message.bytes, cleanup.policy)")]
    Unknown(String),
    /// A value outside the config's domain.
    #[error("config '{name}' {expected}, got '{value}'")]
    Invalid {
        /// The config.
        name: String,
        /// The value given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

/// Checks one config value.
///
/// # Errors
/// [`ConfigError`] naming the config and what it must be.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |expected| ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    };
    match name {
        RETENTION_MS | RETENTION_BYTES => match value.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(()),
            _ => Err(invalid("must be an integer >= -1 (-1: no limit)")),
        },
        MAX_MESSAGE_BYTES => match value.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(invalid("must be an integer >= 1")),
        },
        CLEANUP_POLICY if value == "delete" => Ok(()),
        CLEANUP_POLICY => Err(invalid("supports only 'delete'")),
        other => Err(ConfigError::Unknown(other.to_string())),
    }
}

/// A topic's configs, typed, with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Keep records this long (by timestamp); `None`: forever.
    pub retention_ms: Option<u64>,
    /// Keep this many record bytes per partition; `None`: no limit.
    pub retention_bytes: Option<u64>,
    /// The largest record accepted; `None`: only the node's own limit.
    pub max_message_bytes: Option<u64>,
}

impl TopicConfig {
    /// The typed view of stored configs.
    pub fn from_map(configs: &BTreeMap<String, String>) -> Self {
        let int = |k: &str| configs.get(k).and_then(|v| v.parse::<i64>().ok());
        let limit = |v: i64| u64::try_from(v).ok();
        Self {
            retention_ms: limit(int(RETENTION_MS).unwrap_or(DEFAULT_RETENTION_MS)),
            retention_bytes: int(RETENTION_BYTES).and_then(limit),
            max_message_bytes: int(MAX_MESSAGE_BYTES).and_then(limit),
        }
    }

    /// The record size limit for this topic on a node whose own limit is `node_limit`.
    pub fn record_limit(&self, node_limit: usize) -> usize {
        self.max_message_bytes.map_or(node_limit, |m| {
            node_limit.min(usize::try_from(m).unwrap_or(usize::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = TopicConfig::from_map(&BTreeMap::new());
        assert_eq!(c.retention_ms, Some(604_800_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.max_message_bytes, None);
        assert_eq!(c.record_limit(1000), 1000);
    }

    #[test]
    fn minus_one_means_no_limit() {
        let c = TopicConfig::from_map(&map(&[(RETENTION_MS, "-1"), (RETENTION_BYTES, "-1")]));
        assert_eq!((c.retention_ms, c.retention_bytes), (None, None));
        let c = TopicConfig::from_map(&map(&[
            (RETENTION_BYTES, "4096"),
            (MAX_MESSAGE_BYTES, "10"),
        ]));
        assert_eq!(c.retention_bytes, Some(4096));
        assert_eq!(c.record_limit(1000), 10);
        assert_eq!(c.record_limit(5), 5, "the node's limit still holds");
    }

    #[test]
    fn values_are_validated() {
        assert!(validate(RETENTION_MS, "0").is_ok());
        assert!(validate(RETENTION_MS, "-1").is_ok());
        for bad in ["-2", "abc", "1.5", ""] {
            assert!(validate(RETENTION_MS, bad).is_err(), "{bad}");
            assert!(validate(RETENTION_BYTES, bad).is_err(), "{bad}");
        }
        assert!(validate(MAX_MESSAGE_BYTES, "0").is_err());
        assert!(validate(CLEANUP_POLICY, "compact").is_err());
        assert_eq!(
            validate("segment.ms", "1"),
            Err(ConfigError::Unknown("segment.ms".into()))
        );
    }
}
