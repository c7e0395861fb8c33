//! The HTTP API's TLS server configuration (rustls with the ring provider): a certificate from
//! PEM files (`--tls-cert-file`, `--tls-key-file`; the chart mounts them from a Secret), or a
//! self-signed one generated at start naming the pod or node and the listen address.
//!
//! Files are read again when their modification time changes (checked at each handshake), so
//! a Secret renewed by cert-manager takes effect without a restart. A renewed pair that does
//! not load (say, a key that does not match the certificate) is reported and the pair in use
//! stays.

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// Why no TLS configuration could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{flag} {}: {message}", path.display())]
    File {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("--tls-cert-file {} with --tls-key-file {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The self-signed certificate could not be made.
    #[error("generating the self-signed certificate for {names:?}: {message}")]
    SelfSigned {
        /// The names it was to carry.
        names: Vec<String>,
        /// What was wrong.
        message: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration over `resolver`, offering HTTP/2 and HTTP/1.1.
fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS with the certificate chain in `cert_file` and its private key in `key_file` (PEM).
pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, TlsError> {
    let resolver = FileCertResolver::load(cert_file, key_file)?;
    server_config(Arc::new(resolver)).map_err(|e| TlsError::Pair {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        message: e.to_string(),
    })
}

/// TLS with a fresh self-signed certificate (ECDSA P-256) whose subject alternative names are
/// `dns_names` and `ips`.
pub fn self_signed(dns_names: &[String], ips: &[IpAddr]) -> Result<ServerConfig, TlsError> {
    let (cert, key) = self_signed_pair(dns_names, ips)?;
    from_der(cert, key).map_err(|e| TlsError::SelfSigned {
        names: dns_names.to_vec(),
        message: e.to_string(),
    })
}

/// TLS with `cert` and its `key`, both in memory.
pub fn from_der(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let certified = CertifiedKey::from_der(vec![cert], key, &provider())?;
    server_config(Arc::new(FixedCert(Arc::new(certified))))
}

/// A self-signed certificate and its key, in DER.
pub fn self_signed_pair(
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let fail = |e: rcgen::Error| TlsError::SelfSigned {
        names: dns_names.to_vec(),
        message: e.to_string(),
    };
    let mut params = rcgen::CertificateParams::new(dns_names.to_vec()).map_err(fail)?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    let common_name = dns_names.first().map_or("ferrolb", String::as_str);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// One certificate for every handshake.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Modification times of the certificate and key files; `None` where a file cannot be read.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// The pair from the files, read again when either file's modification time changes.
#[derive(Debug)]
struct FileCertResolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// The stamp last looked at and the pair in use.
    current: RwLock<(Stamp, Arc<CertifiedKey>)>,
}

impl FileCertResolver {
    fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let stamp = stamp(cert_file, key_file);
        let pair = load_pair(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new((stamp, Arc::new(pair))),
        })
    }
}

impl ResolvesServerCert for FileCertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl FileCertResolver {
    /// The pair to present: the files' when they changed and load, else the one in use.
    fn current(&self) -> Arc<CertifiedKey> {
        let now = stamp(&self.cert_file, &self.key_file);
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.0 == now {
                return current.1.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.0 != now {
            // Looked at once per change, whether it loads or not.
            current.0 = now;
            match load_pair(&self.cert_file, &self.key_file) {
                Ok(pair) => {
                    current.1 = Arc::new(pair);
                    tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "TLS certificate files changed but do not load; the previous \
                         certificate stays in use"
                    );
                }
            }
        }
        current.1.clone()
    }
}

fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let file_error = |flag, path: &Path, message: String| TlsError::File {
        flag,
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error("--tls-cert-file", cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            "--tls-cert-file",
            cert_file,
            "holds no PEM CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        file_error(
            "--tls-key-file",
            key_file,
            format!("{e} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"),
        )
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Pair {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh certificate and key pair for `name` as PEM files in `dir`.
    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    fn temp_dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ferrolb-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn loads_a_pair_from_pem_files() {
        let d = temp_dir("loads");
        let (c, k) = write_pair(&d, "ferrolb-controller");
        assert!(from_files(&c, &k).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn errors_name_the_flag_and_the_file() {
        let d = temp_dir("errors");
        let (c, k) = write_pair(&d, "a");
        let (_, other_key) = write_pair(&d, "b");
        let missing = d.join("missing.crt");
        let err = from_files(&missing, &k)
            .expect_err("missing cert")
            .to_string();
        assert!(
            err.starts_with(&format!("--tls-cert-file {}: ", missing.display())),
            "{err}"
        );
        let empty = d.join("empty.crt");
        std::fs::write(&empty, "").expect("write");
        let err = from_files(&empty, &k).expect_err("empty cert").to_string();
        assert_eq!(
            err,
            format!(
                "--tls-cert-file {}: holds no PEM CERTIFICATE block",
                empty.display()
            )
        );
        let err = from_files(&c, &c).expect_err("a cert as key").to_string();
        assert!(
            err.starts_with(&format!("--tls-key-file {}: ", c.display()))
                && err.contains("expected a PEM PRIVATE KEY"),
            "{err}"
        );
        let err = from_files(&c, &other_key)
            .expect_err("mismatch")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "--tls-cert-file {} with --tls-key-file {}: ",
                c.display(),
                other_key.display()
            )),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn changed_files_are_read_again_and_a_bad_change_keeps_the_pair_in_use() {
        let d = temp_dir("reload");
        let (c, k) = write_pair(&d, "first");
        let r = FileCertResolver::load(&c, &k).expect("load");
        let first = r.current();
        assert!(
            Arc::ptr_eq(&first, &r.current()),
            "unchanged files are not read again"
        );

        let bump = |p: &Path, secs: u64| {
            let t = SystemTime::now() + std::time::Duration::from_secs(secs);
            std::fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(t))
                .expect("set mtime");
        };
        // A new pair in place of the old one is picked up.
        let (c2, k2) = write_pair(&d, "second");
        std::fs::copy(&c2, &c).expect("copy cert");
        std::fs::copy(&k2, &k).expect("copy key");
        bump(&c, 10);
        bump(&k, 10);
        let second = r.current();
        assert_ne!(first.cert, second.cert, "the renewed certificate is served");

        // A certificate that does not fit the key: the second pair stays.
        let (c3, _) = write_pair(&d, "third");
        std::fs::copy(&c3, &c).expect("copy cert");
        bump(&c, 20);
        assert_eq!(r.current().cert, second.cert);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_self_signed_certificate_names_the_host_and_address() {
        let ip: IpAddr = "10.200.0.5".parse().expect("ip");
        let (cert, _) = self_signed_pair(&["node-1".into()], &[ip]).expect("pair");
        let der = cert.as_ref();
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        // dNSName [2] "node-1" and iPAddress [7] 10.200.0.5 in subjectAltName.
        assert!(contains(&[0x82, 6, b'n', b'o', b'd', b'e', b'-', b'1']));
        assert!(contains(&[0x87, 4, 10, 200, 0, 5]));
        assert!(self_signed(&["node-1".into()], &[ip]).is_ok());
    }
}
