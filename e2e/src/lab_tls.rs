//! The lab's certificate authority for the components' HTTPS APIs: the controller and every
//! speaker serve a certificate from files (`--tls-cert-file`, `--tls-key-file`, as the chart
//! mounts them from a Secret), issued for their listen address by a CA made at lab start; the
//! lab's own client trusts that CA only, and sends a bearer token the components review with
//! the API server.

use crate::apiserver::tls::pem;
use anyhow::{Context, anyhow};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Certificate and key files of one component.
#[derive(Clone, Debug)]
pub struct ServingFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServingFiles {
    /// The component's command-line arguments naming them.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.cert.display().to_string(),
            "--tls-key-file".into(),
            self.key.display().to_string(),
        ]
    }
}

/// A CA issuing the components' serving certificates, and a client trusting it.
pub struct LabCa {
    issuer: Issuer<'static, KeyPair>,
    client: Arc<rustls::ClientConfig>,
    dir: PathBuf,
}

impl LabCa {
    /// A fresh CA; certificates go to `dir` (created).
    pub fn new(dir: &Path) -> anyhow::Result<LabCa> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferrolb-lab-ca");
        let cert = params.self_signed(&key)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", cert.der()))
            .with_context(|| format!("writing {}/ca.pem", dir.display()))?;
        Ok(LabCa {
            issuer: Issuer::new(params, key),
            client: Arc::new(client),
            dir: dir.to_path_buf(),
        })
    }

    /// A serving certificate of `who` for `ip`, written as `who.crt` and `who.key` (0600).
    pub fn issue(&self, who: &str, ip: IpAddr) -> anyhow::Result<ServingFiles> {
        let mut params = CertificateParams::new(vec![ip.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, who);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = ServingFiles {
            cert: self.dir.join(format!("{who}.crt")),
            key: self.dir.join(format!("{who}.key")),
        };
        std::fs::write(&files.cert, pem("CERTIFICATE", cert.der()))
            .with_context(|| format!("writing {}", files.cert.display()))?;
        crate::private_file::write(
            &files.key,
            pem("PRIVATE KEY", &key.serialize_der()).as_bytes(),
        )
        .with_context(|| format!("writing {}", files.key.display()))?;
        Ok(files)
    }

    /// A client configuration trusting this CA only.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }
}

/// `GET path` over HTTPS on `addr` (its certificate checked against `tls`'s roots for the
/// address), with `token` as bearer token: status code and body.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    token: &str,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {addr}"))?;
    // HTTP/1.0: the answer ends with the connection, no chunked body to decode.
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf).await {
        Ok(_) => {}
        // A server closing without close_notify after the whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(anyhow!("reading from {addr}: {e}")),
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP answer from {addr}: {head}"))?;
    Ok((code, body.to_string()))
}
