//! Test certificates made with rcgen: a CA, and one server certificate signed by it for
//! `127.0.0.1` and `localhost` that every node of a local test cluster shares. Included with
//! `#[path]` by the node's and the client's tests.

#![allow(dead_code, clippy::expect_used)] // test support: panics with a message on failure

use std::path::{Path, PathBuf};

/// The PEM files written by [`write_test_certs`].
pub struct TestCerts {
    /// The CA certificate (what clients trust: `--ca`, `--tls-ca`, `curl --cacert`).
    pub ca: PathBuf,
    /// The node certificate (`--tls-cert`).
    pub cert: PathBuf,
    /// The node certificate's key (`--tls-key`).
    pub key: PathBuf,
}

/// Writes `ca.pem`, `ca-key.pem`, `node.pem` and `node-key.pem` into `dir` (created), the
/// names `scripts/cluster.sh start --tls` uses.
pub fn write_test_certs(dir: &Path) -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Raftka test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");

    let node_key = KeyPair::generate().expect("node key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("node params");
    params
        .distinguished_name
        .push(DnType::CommonName, "raftka-node");
    let node = params
        .signed_by(&node_key, &ca, &ca_key)
        .expect("sign the node certificate");

    let certs = TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("node.pem"),
        key: dir.join("node-key.pem"),
    };
    std::fs::write(&certs.ca, ca.pem()).expect("write ca.pem");
    std::fs::write(dir.join("ca-key.pem"), ca_key.serialize_pem()).expect("write ca-key.pem");
    std::fs::write(&certs.cert, node.pem()).expect("write node.pem");
    std::fs::write(&certs.key, node_key.serialize_pem()).expect("write node-key.pem");
    certs
}
