//! The cluster secret: the single node's generated one, and the published strings no cluster
//! may use.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

use super::ConfigError;

/// The file, in the data directory, that holds a single node's generated secret.
pub const SECRET_FILE: &str = "cluster-secret";

/// Strings that have been printed as defaults or examples (in `--help`, the compose file, the
/// Dockerfile, the systemd example): anyone can read them, so a cluster with peers refuses them.
const PUBLISHED: &[&str] = &[
    "raftka-dev-secret",
    "raftka-compose-secret",
    "change-me-please",
    "change-me-to-a-long-random-string",
];

/// True for a secret that has been published.
pub fn is_published(secret: &str) -> bool {
    PUBLISHED.contains(&secret)
}

/// The single node's secret: read from `<data_dir>/cluster-secret`, or made (32 random bytes,
/// hex) and written there with mode 0600 on the first start.
///
/// # Errors
/// The data directory or the file cannot be made or read.
pub fn single_node_secret(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join(SECRET_FILE);
    let io = |e: std::io::Error| ConfigError::Secret(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Written to a temporary file first, so a crash never leaves a half-written secret.
    let tmp = data_dir.join(format!("{SECRET_FILE}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(secret.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    tracing::info!(
        file = %path.display(),
        "no cluster secret given: this single node made a random one; nodes that join it need \
         --secret-file with a copy of this file"
    );
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_secret_is_random_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = single_node_secret(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(
            single_node_secret(dir.path()).unwrap(),
            first,
            "kept across starts"
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            single_node_secret(other.path()).unwrap(),
            first,
            "random per node"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn published_secrets_are_known() {
        assert!(is_published("raftka-dev-secret"));
        assert!(!is_published("4f1c0e9a8b7d6c5e"));
    }
}
