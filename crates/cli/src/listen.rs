//! The listener's TLS flags, shared by `gust serve` and `gust controller`: a certificate and
//! key from PEM files (reloaded on `SIGHUP` or when they change), or a development
//! certificate made at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use gust_gateway::tls::{Certificates, self_signed};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM; reloaded on SIGHUP or when it changes).
    #[arg(long, env = "GUST_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "GUST_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a development certificate made at start, signed by a CA kept in
    /// `<data dir>/tls/ca.pem` (trust it with `gust --cacert`, or use `--insecure`).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
}

/// What the listener serves with TLS.
#[derive(Debug)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub certificates: Arc<Certificates>,
    /// The development CA a client should trust (`--tls-self-signed` only).
    pub ca: Option<PathBuf>,
}

impl Tls {
    /// The API host's URL scheme.
    pub fn scheme(tls: Option<&Tls>) -> &'static str {
        if tls.is_some() { "https" } else { "http" }
    }

    /// Prints the certificate's fingerprint (and the development CA's path).
    pub fn announce(&self) {
        println!(
            "gust: TLS certificate SHA-256 {}",
            self.certificates.fingerprint()
        );
        if let Some(ca) = &self.ca {
            println!("gust: development CA {}", ca.display());
        }
    }
}

/// Serves `gateway` on `listener` until SIGTERM or Ctrl-C, with TLS if given; a certificate
/// given by file (not a development one) adds `Strict-Transport-Security` to every answer.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: gust_gateway::Gateway,
    tls: Option<Tls>,
) -> Result<()> {
    let gateway = match &tls {
        Some(t) if t.ca.is_none() => gateway.with_hsts(),
        _ => gateway,
    };
    gust_gateway::serve(
        listener,
        gateway,
        tls.map(|t| t.config),
        crate::serve::shutdown_signal(),
    )
    .await
    .context("the HTTP server failed")
}

impl TlsArgs {
    /// The TLS set-up these flags ask for, if any; `addr` is the address listened on (the
    /// development certificate names it, `localhost` and `127.0.0.1`).
    pub fn load(&self, data_dir: &Path, addr: SocketAddr) -> Result<Option<Tls>> {
        let (certificates, ca) = if self.tls_self_signed {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
                names.push(addr.ip().to_string());
            }
            let made = self_signed(&data_dir.join("tls"), &names)?;
            (
                Certificates::from_files(&made.cert, &made.key)?,
                Some(made.ca),
            )
        } else if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let certs = Certificates::from_files(cert, key)
                .with_context(|| format!("cannot serve TLS with {}", cert.display()))?;
            (certs, None)
        } else {
            return Ok(None);
        };
        certificates.watch();
        Ok(Some(Tls {
            config: certificates.server_config(),
            certificates,
            ca,
        }))
    }
}

/// The metrics listener's flag, shared by `gust serve`, `gust controller` and `gust invoker`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at `GET /metrics` on this address, without authentication
    /// (bind it to a private address; port 0 picks a free port).
    #[arg(long, env = "GUST_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Binds the metrics listener, if one is asked for, and serves it on a task of its own
    /// for as long as the process runs (a scrape during the shutdown still gets an answer);
    /// prints its URL (`gust: metrics on http://ADDR/metrics`).
    pub async fn spawn(&self) -> Result<()> {
        let Some(addr) = self.metrics_addr else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            let served = gust_gateway::serve_metrics(listener, std::future::pending()).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
        println!("gust: metrics on http://{bound}/metrics");
        Ok(())
    }
}
