//! TLS for the node's one listener (clients and peers share it) and for the requests it sends
//! to its peers: rustls with the ring provider, certificates and keys from PEM files.
//!
//! A node with `--tls-cert`/`--tls-key` serves HTTPS only and reaches its peers over HTTPS, so a
//! cluster is either all TLS or all plain. Peers' certificates are verified against `--tls-ca`
//! when it is given, else against the system's roots; the host name checked is the one in the
//! peer's address (an IP address needs an IP subject alternative name).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftka_protocol::error::{ErrorBody, ErrorCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How a node reaches its peers: over HTTPS when it serves HTTPS itself, verifying their
/// certificates against `ca` (the system's roots when empty).
#[derive(Clone, Debug, Default)]
pub struct PeerTls {
    /// HTTPS (`true`) or plain HTTP.
    pub enabled: bool,
    /// Extra trust anchors (`--tls-ca`).
    pub ca: Vec<reqwest::Certificate>,
}

impl PeerTls {
    /// The URL scheme of peers.
    pub fn scheme(&self) -> &'static str {
        if self.enabled {
            "https"
        } else {
            "http"
        }
    }
}

/// A TLS file that could not be used; the message names the file and the flag.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or holds no usable PEM item of the expected kind.
    #[error("{flag} {path}: {reason}")]
    File {
        /// The command-line flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key (for example a key that does not match).
    #[error("--tls-cert/--tls-key: {0}")]
    Config(String),
}

/// The first byte of every TLS connection (a handshake record).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The certificate chain (leaf first) in `path`.
///
/// # Errors
/// [`TlsError::File`] when it cannot be read or holds no certificate.
pub fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1 PEM) in `path`.
///
/// # Errors
/// [`TlsError::File`] when it cannot be read or holds no private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        flag: "--tls-key",
        path: path.to_path_buf(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            other => other.to_string(),
        },
    })
}

/// The acceptor of the listener: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, no client
/// certificates (clients authenticate with bearer tokens, peers with the cluster secret).
///
/// # Errors
/// See [`TlsError`].
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs = load_certs("--tls-cert", cert)?;
    let key = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The CA certificates in `path`, for verifying peers (`--tls-ca`).
///
/// # Errors
/// [`TlsError::File`] when it cannot be read or holds no certificate.
pub fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    load_certs("--tls-ca", path)?
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der).map_err(|e| TlsError::File {
                flag: "--tls-ca",
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The reply to a plain-HTTP request on a TLS port, before the connection is closed: a `400`
/// in the usual error shape that says to use `https://` (as nginx answers such a request).
pub fn plain_http_reply() -> Vec<u8> {
    let body = ErrorBody::new(
        ErrorCode::BadRequest,
        "this port serves HTTPS only: use https:// (plain HTTP was sent to a TLS port)",
    );
    let body = serde_json::to_string(&body).unwrap_or_default();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_matching_certificate_and_key_make_an_acceptor() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let c = write(dir.path(), "c.pem", &cert.cert.pem());
        let k = write(dir.path(), "k.pem", &cert.key_pair.serialize_pem());
        assert!(acceptor(&c, &k).is_ok());
        assert_eq!(load_ca(&c).unwrap().len(), 1);
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let cert = write(dir.path(), "a.pem", &a.cert.pem());
        let other_key = write(dir.path(), "b-key.pem", &b.key_pair.serialize_pem());
        let junk = write(dir.path(), "junk.pem", "not pem at all\n");

        let err = acceptor(&junk, &other_key).err().unwrap().to_string();
        assert!(
            err.contains("--tls-cert") && err.contains("junk.pem"),
            "{err}"
        );
        let err = acceptor(&cert, &junk).err().unwrap().to_string();
        assert!(
            err.contains("--tls-key") && err.contains("no PEM private key"),
            "{err}"
        );
        let err = acceptor(&cert, &dir.path().join("missing.pem"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        // A key that is not the certificate's.
        assert!(matches!(
            acceptor(&cert, &other_key),
            Err(TlsError::Config(_))
        ));
        let err = load_ca(&junk).unwrap_err().to_string();
        assert!(err.contains("--tls-ca"), "{err}");
    }

    #[test]
    fn the_plain_http_reply_is_a_complete_response() {
        let reply = String::from_utf8(plain_http_reply()).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "bad_request");
        assert_eq!(v["error_code"], 40001);
    }
}
