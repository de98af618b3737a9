//! The TLS listener's server configuration, from PEM files (RFC 5425: TLS 1.2 or later;
//! clients are not asked for a certificate).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct TlsError {
    /// `MUTT_SYSLOG_TLS_CERT_FILE` or `MUTT_SYSLOG_TLS_KEY_FILE`.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

/// An acceptor for the certificate chain in `cert` and the private key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError {
            setting: "MUTT_SYSLOG_TLS_CERT_FILE",
            message: format!("cannot read certificates from {}: {e}", cert.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            setting: "MUTT_SYSLOG_TLS_CERT_FILE",
            message: format!("{} holds no certificate", cert.display()),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        setting: "MUTT_SYSLOG_TLS_KEY_FILE",
        message: format!("cannot read a private key from {}: {e}", key.display()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e: rustls::Error| TlsError {
            setting: "MUTT_SYSLOG_TLS_KEY_FILE",
            message: format!("the key does not fit the certificate: {e}"),
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
