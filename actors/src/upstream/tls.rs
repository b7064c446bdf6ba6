//! TLS for `https://` upstreams (rustls): Mozilla's root certificates, plus the CA
//! certificates an operator adds for an internal or self-signed authority.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// A TLS client configuration (rustls's).
pub use rustls::ClientConfig;

/// A TLS client configuration trusting Mozilla's roots and every certificate in
/// `extra_ca_pem` (PEM, any number of `CERTIFICATE` blocks).
///
/// # Errors
/// When the PEM holds no certificate or one that cannot be used as a trust anchor.
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("certificate cannot be trusted: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("no CERTIFICATE block found".to_owned());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configuration with Mozilla's roots only, built once.
pub fn default_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| client_config(None).expect("the built-in roots are valid"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_refused_with_the_reason() {
        assert!(client_config(None).is_ok());
        let err = client_config(Some(b"hello")).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
