//! The server's TLS identity: a CA made at start and a serving certificate it signs for
//! `localhost`, the loopback addresses and the listen address. client-go (kubectl, helm)
//! sends credentials only over TLS, so the kubeconfig names the `https://` address and
//! carries the CA; kube-rs clients may also use the plain-HTTP side of the same port.
//! A server started with a state file keeps its identity beside it, so the kubeconfigs
//! its clients hold stay valid across a restart of the process.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why no TLS identity could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the server certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("TLS identity file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The DER of the CA, the serving certificate and its key, as kept on disk (base64).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredIdentity {
    ca: String,
    cert: String,
    key: String,
}

/// A CA (for kubeconfigs) and the server configuration presenting the certificate it signed.
#[derive(Clone)]
pub struct TlsIdentity {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity")
    }
}

/// PEM of one DER block.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl TlsIdentity {
    /// A fresh CA and a serving certificate valid for `listen_ip` and loopback.
    pub fn generate(listen_ip: IpAddr) -> Result<TlsIdentity, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferrolb-e2e-ca");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec![
            "localhost".to_string(),
            "kubernetes.default.svc".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if !listen_ip.is_loopback() && !listen_ip.is_unspecified() {
            names.push(listen_ip.to_string());
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;

        Self::from_der(
            ca_cert.der().to_vec(),
            cert.der().to_vec(),
            key.serialize_der(),
        )
    }

    /// The identity kept at `path`, or a fresh one (see [`TlsIdentity::generate`]) written
    /// there (mode 0600: it holds the serving key).
    pub fn load_or_generate(path: &Path, listen_ip: IpAddr) -> Result<TlsIdentity, TlsError> {
        let file_err = |reason: String| TlsError::File {
            path: path.to_path_buf(),
            reason,
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
            let stored: StoredIdentity =
                serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
            let der = |field: &str, b64: &str| {
                STANDARD
                    .decode(b64)
                    .map_err(|e| file_err(format!("{field}: {e}")))
            };
            return Self::from_der(
                der("ca", &stored.ca)?,
                der("cert", &stored.cert)?,
                der("key", &stored.key)?,
            );
        }
        let fresh = Self::generate(listen_ip)?;
        let stored = StoredIdentity {
            ca: STANDARD.encode(&fresh.ca_der),
            cert: STANDARD.encode(&fresh.cert_der),
            key: STANDARD.encode(&fresh.key_der),
        };
        let text = serde_json::to_string(&stored).map_err(|e| file_err(e.to_string()))?;
        crate::private_file::write(path, text.as_bytes()).map_err(|e| file_err(e.to_string()))?;
        Ok(fresh)
    }

    fn from_der(ca: Vec<u8>, cert: Vec<u8>, key: Vec<u8>) -> Result<TlsIdentity, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(cert.clone()),
                    CertificateDer::from(ca.clone()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
            )?;
        Ok(TlsIdentity {
            ca_pem: pem("CERTIFICATE", &ca),
            ca_der: ca,
            cert_der: cert,
            key_der: key,
            server_config: Arc::new(server_config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_identity_comes_back_the_same() {
        let dir = std::env::temp_dir().join(format!("ferrolb-tls-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.json.tls.json");
        let ip = IpAddr::from([127, 0, 0, 1]);
        let first = TlsIdentity::load_or_generate(&path, ip).expect("generated");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("written").permissions(),
        );
        let again = TlsIdentity::load_or_generate(&path, ip).expect("loaded");
        let other = TlsIdentity::generate(ip).expect("fresh");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(again.ca_der, first.ca_der);
        assert_eq!(again.cert_der, first.cert_der);
        assert_ne!(other.ca_der, first.ca_der);
    }

    #[test]
    fn a_damaged_identity_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("ferrolb-tls-damaged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.json.tls.json");
        std::fs::write(&path, "{\"ca\": 1}").expect("write");
        let err = TlsIdentity::load_or_generate(&path, IpAddr::from([127, 0, 0, 1]))
            .expect_err("damaged");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.to_string().contains("state.json.tls.json"), "{err}");
    }
}
