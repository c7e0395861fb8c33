//! How a component's HTTP API is protected, from its flags: HTTPS with bearer-token
//! authentication and authorization by the API server (the default), or, for development on
//! one machine only, plain HTTP on a loopback address.

use super::tls::{self, TlsError};
use clap::Args;
use rustls::ServerConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// The HTTP API's security flags, the same in both binaries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Args)]
pub struct HttpSecurityArgs {
    /// PEM certificate (chain) of the HTTPS API. Without it (and --tls-key-file) a
    /// self-signed certificate is generated at start. Read again when the file changes.
    #[arg(
        long,
        env = "FERROLB_TLS_CERT_FILE",
        value_name = "FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(
        long,
        env = "FERROLB_TLS_KEY_FILE",
        value_name = "FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,
    /// Development only: serve plain HTTP without authentication. Refused unless --listen is
    /// a loopback address.
    #[arg(
        long,
        env = "FERROLB_HTTP_INSECURE_LOOPBACK",
        conflicts_with_all = ["tls_cert_file", "tls_key_file"]
    )]
    pub http_insecure_loopback: bool,
}

/// The protection chosen.
#[derive(Clone, Debug)]
pub enum HttpSecurity {
    /// HTTPS with this configuration; every path but the probes needs an authorized token.
    Tls(Arc<ServerConfig>),
    /// Plain HTTP on loopback, no authentication.
    InsecureLoopback,
}

/// Why the flags cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpSecurityError {
    /// --http-insecure-loopback with a listen address others can reach.
    #[error(
        "--http-insecure-loopback serves the HTTP API without TLS or authentication and is only \
         accepted on a loopback address, but --listen is {listen}; listen on 127.0.0.1 or [::1], \
         or drop --http-insecure-loopback"
    )]
    NotLoopback {
        /// The listen address.
        listen: SocketAddr,
    },
    /// The certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl HttpSecurityArgs {
    /// Plain HTTP on loopback (tests and development).
    pub fn insecure_loopback() -> Self {
        Self {
            http_insecure_loopback: true,
            ..Self::default()
        }
    }

    /// Whether the flags may serve on `listen`: the check of [`resolve`](Self::resolve) that
    /// needs no files, for a binary to refuse bad flags before it connects to the cluster.
    pub fn check(&self, listen: SocketAddr) -> Result<(), HttpSecurityError> {
        if self.http_insecure_loopback && !listen.ip().is_loopback() {
            return Err(HttpSecurityError::NotLoopback { listen });
        }
        Ok(())
    }

    /// The protection of an API listening on `listen`. `name` (the pod or node name) and the
    /// listen address, unless it is unspecified, are the self-signed certificate's names.
    pub fn resolve(
        &self,
        listen: SocketAddr,
        name: &str,
    ) -> Result<HttpSecurity, HttpSecurityError> {
        self.check(listen)?;
        if self.http_insecure_loopback {
            return Ok(HttpSecurity::InsecureLoopback);
        }
        let config = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => tls::from_files(cert, key)?,
            _ => {
                let ips: Vec<IpAddr> = Some(listen.ip())
                    .filter(|ip| !ip.is_unspecified())
                    .into_iter()
                    .collect();
                tls::self_signed(&[name.to_string()], &ips)?
            }
        };
        Ok(HttpSecurity::Tls(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpSecurityArgs,
    }

    fn parse(args: &[&str]) -> Result<HttpSecurityArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|c| c.http)
    }

    #[test]
    fn flags_parse_and_conflict() {
        assert_eq!(parse(&[]).expect("defaults"), HttpSecurityArgs::default());
        assert_eq!(
            parse(&["--http-insecure-loopback"]).expect("insecure"),
            HttpSecurityArgs::insecure_loopback()
        );
        let both = parse(&["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"]).expect("tls");
        assert_eq!(both.tls_cert_file, Some(PathBuf::from("c.pem")));
        assert_eq!(both.tls_key_file, Some(PathBuf::from("k.pem")));
        let err = parse(&["--tls-cert-file", "c.pem"]).expect_err("key missing");
        assert!(err.to_string().contains("--tls-key-file"), "{err}");
        let err = parse(&["--tls-key-file", "k.pem"]).expect_err("cert missing");
        assert!(err.to_string().contains("--tls-cert-file"), "{err}");
        let err = parse(&[
            "--http-insecure-loopback",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ])
        .expect_err("conflict");
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn insecure_mode_only_on_loopback() {
        let args = HttpSecurityArgs::insecure_loopback();
        for ok in ["127.0.0.1:7472", "[::1]:7473", "127.0.0.2:1"] {
            assert!(matches!(
                args.resolve(ok.parse().expect("addr"), "pod"),
                Ok(HttpSecurity::InsecureLoopback)
            ));
        }
        for bad in ["0.0.0.0:7472", "10.200.0.5:7473", "[::]:7473"] {
            let listen = bad.parse().expect("addr");
            assert_eq!(
                args.check(listen).map_err(|e| e.to_string()),
                args.resolve(listen, "pod")
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            );
            let err = args
                .resolve(bad.parse().expect("addr"), "pod")
                .expect_err(bad)
                .to_string();
            assert_eq!(
                err,
                format!(
                    "--http-insecure-loopback serves the HTTP API without TLS or authentication \
                     and is only accepted on a loopback address, but --listen is {bad}; listen \
                     on 127.0.0.1 or [::1], or drop --http-insecure-loopback"
                )
            );
        }
    }

    #[test]
    fn the_default_is_tls_with_a_self_signed_certificate() {
        let s = HttpSecurityArgs::default()
            .resolve("0.0.0.0:7472".parse().expect("addr"), "controller-0")
            .expect("self-signed");
        assert!(matches!(s, HttpSecurity::Tls(_)));
    }

    #[test]
    fn missing_files_are_an_error_naming_them() {
        let args = parse(&[
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--tls-key-file",
            "/nonexistent/tls.key",
        ])
        .expect("flags");
        let err = args
            .resolve("0.0.0.0:7472".parse().expect("addr"), "controller-0")
            .expect_err("missing")
            .to_string();
        assert!(
            err.starts_with("--tls-cert-file /nonexistent/tls.crt: "),
            "{err}"
        );
    }
}
