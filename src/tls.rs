//! The HTTPS listener's TLS (rustls): the certificate chain and private key of
//! `server.tls_cert` / `server.tls_key`, read when the config is validated (so
//! `framex check` refuses a bad pair too), TLS 1.2 and 1.3 with ring's cipher suites
//! (ECDHE key exchange and AEAD ciphers only), ALPN `h2` then `http/1.1` (added by
//! actix-web when it serves the listener). The listener asks a [`CertStore`] for the
//! certificate of each handshake, so that a reload can put a renewed one in place:
//! new handshakes get it, open connections keep theirs.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A TLS server configuration (rustls's).
pub use rustls::ServerConfig;

/// Why the certificate and key cannot be served; each names its file and key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM block.
    #[error("server.{key} '{path}': {reason}")]
    File {
        /// `tls_cert` or `tls_key`.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's, or rustls refuses the pair.
    #[error(
        "server.tls_key '{key_path}' does not go with server.tls_cert '{cert_path}': {reason}"
    )]
    Pair {
        /// The certificate file.
        cert_path: String,
        /// The key file.
        key_path: String,
        /// rustls's reason.
        reason: String,
    },
}

/// The certificate and key every new handshake gets; a reload replaces them.
#[derive(Debug)]
pub struct CertStore(ArcSwap<CertifiedKey>);

impl CertStore {
    /// Puts the certificate of `other` in place for the next handshakes.
    pub fn take_from(&self, other: &CertStore) {
        self.0.store(other.0.load_full());
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A listener's TLS: the rustls configuration, and the store it reads certificates
/// from.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// What the listener is served with.
    pub config: Arc<ServerConfig>,
    /// Where its certificate comes from (replaced in place by a reload).
    pub certs: Arc<CertStore>,
}

/// The server configuration for `cert` (PEM: the leaf first, then any intermediates)
/// and `key` (PEM: PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// A file unreadable, without a certificate or key, or a key that is not the leaf
/// certificate's.
pub fn server_config(cert: &Path, key: &Path) -> Result<TlsSetup, TlsError> {
    let file_error = |name: &'static str, path: &Path, reason: String| TlsError::File {
        key: name,
        path: path.display().to_string(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| file_error("tls_cert", cert, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            file_error(
                "tls_cert",
                cert,
                format!("not a PEM certificate chain: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(file_error(
            "tls_cert",
            cert,
            "no CERTIFICATE block found".to_owned(),
        ));
    }
    let key_pem = std::fs::read(key).map_err(|e| file_error("tls_key", key, e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_error("tls_key", key, format!("no usable PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair_error = |reason: String| TlsError::Pair {
        cert_path: cert.display().to_string(),
        key_path: key.display().to_string(),
        reason,
    };
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| file_error("tls_key", key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| pair_error(e.to_string()))?;
    let certs = Arc::new(CertStore(ArcSwap::from_pointee(certified)));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pair_error(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    Ok(TlsSetup {
        config: Arc::new(config),
        certs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A matching pair loads; a key from another pair, an empty certificate file and
    /// a missing file are refused naming the file and the key.
    #[test]
    fn pairs_are_checked_and_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("localhost");
        let (_, other_key) = pair("other");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (c, k, k2, empty) = (
            write("c.pem", &cert),
            write("k.pem", &key),
            write("k2.pem", &other_key),
            write("e.pem", ""),
        );
        assert!(server_config(&c, &k).is_ok());
        let err = server_config(&c, &k2).unwrap_err().to_string();
        assert!(
            err.contains("k2.pem") && err.contains("c.pem") && err.contains("does not go with"),
            "{err}"
        );
        let err = server_config(&empty, &k).unwrap_err().to_string();
        assert!(
            err.contains("server.tls_cert") && err.contains("e.pem"),
            "{err}"
        );
        let err = server_config(&c, &dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.tls_key") && err.contains("missing.pem"),
            "{err}"
        );
        let err = server_config(&c, &c).unwrap_err().to_string();
        assert!(
            err.contains("server.tls_key") && err.contains("c.pem"),
            "{err}"
        );
    }
}
