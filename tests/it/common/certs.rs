//! A test certificate authority and a leaf certificate for `127.0.0.1` signed by it,
//! written as PEM files (for framex-rs's `server.tls_cert` / `tls_key` and curl's
//! `--cacert`).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files in a temporary directory: `ca.pem`, `cert.pem` (leaf then CA, a chain),
/// `key.pem`, and `other-key.pem` (a key that goes with no certificate here).
pub struct TestCa {
    /// The directory, removed when dropped.
    pub dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes the CA and the leaf.
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "framex-rs protocols test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        write("cert.pem", format!("{}{}", leaf.pem(), ca_cert.pem()));
        write("key.pem", leaf_key.serialize_pem());
        write(
            "other-key.pem",
            KeyPair::generate().unwrap().serialize_pem(),
        );
        TestCa { dir }
    }

    /// The path of one of the files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[server]` lines that serve HTTPS with the leaf.
    pub fn server_toml(&self) -> String {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.path("cert.pem").display(),
            self.path("key.pem").display()
        )
    }
}
