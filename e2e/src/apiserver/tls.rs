//! The server's TLS identity: a CA made at start and a serving certificate it signs for
//! `localhost`, the loopback addresses and the listen address. client-go (kubectl, helm)
//! sends credentials only over TLS, so the kubeconfig names the `https://` address and
//! carries the CA; kube-rs clients may also use the plain-HTTP side of the same port.

use std::net::IpAddr;
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
}

/// A CA (for kubeconfigs) and the server configuration presenting the certificate it signed.
#[derive(Clone)]
pub struct TlsIdentity {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
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

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        let ca_der: CertificateDer<'static> = ca_cert.der().clone();
        Ok(TlsIdentity {
            ca_pem: pem("CERTIFICATE", &ca_der),
            ca_der: ca_der.to_vec(),
            server_config: Arc::new(server_config),
        })
    }
}
