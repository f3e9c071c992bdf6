//! TLS termination: the server speaks HTTPS itself when configured.
//!
//! rustls with the aws-lc-rs provider, TLS 1.3 and 1.2 only; every suite
//! rustls offers is ECDHE with an AEAD cipher (no CBC, no RSA key exchange,
//! no 3DES/RC4), and the list is filtered to exactly those so a future
//! provider default cannot widen it. The certificate comes from PEM files
//! (`--tls-cert`, `--tls-key`) or, for development, is a self-signed one
//! generated with rcgen under `<data_dir>/tls/` on first run.
//!
//! Handshakes run in a task per connection and finished streams are handed
//! to `axum::serve` through [`TlsListener`], so a slow client cannot hold up
//! the accept loop. Responses over TLS carry HSTS. In production, a plain
//! HTTP listener answers the health checks and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{Settings, Tls};

/// The HSTS header sent on every TLS response.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The development certificate's files under the data directory.
pub fn dev_cert_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("dev-cert.pem"), dir.join("dev-key.pem"))
}

/// The rustls configuration the settings ask for and the end-entity
/// certificate (DER); `None` for plain HTTP.
pub fn server_config(settings: &Settings) -> anyhow::Result<Option<(Arc<ServerConfig>, Vec<u8>)>> {
    let (cert, key) = match &settings.tls {
        Tls::Off => return Ok(None),
        Tls::Files { cert, key } => (cert.clone(), key.clone()),
        Tls::SelfSigned => {
            let (cert, key) = dev_cert_paths(&settings.data_dir);
            if !cert.exists() || !key.exists() {
                generate_dev_cert(&cert, &key)?;
            }
            (cert, key)
        }
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let end_entity = chain[0].as_ref().to_vec();
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("cannot read the TLS private key {}", key.display()))?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(modern);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS set-up")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some((Arc::new(config), end_entity)))
}

/// TLS 1.3 suites (all AEAD, key exchange separate) and TLS 1.2 suites with
/// ECDHE and an AEAD cipher.
fn modern(suite: &rustls::SupportedCipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite.suite(),
        TLS13_AES_128_GCM_SHA256
            | TLS13_AES_256_GCM_SHA384
            | TLS13_CHACHA20_POLY1305_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            | TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// Writes a self-signed certificate for localhost and 127.0.0.1 (the key
/// owner-only).
fn generate_dev_cert(cert: &Path, key: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let made = rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .context("cannot generate the development certificate")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(key)
        .and_then(|mut f| f.write_all(made.signing_key.serialize_pem().as_bytes()))
        .with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(cert, made.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed development certificate");
    Ok(())
}

/// A listener that hands `axum::serve` finished TLS streams.
pub struct TlsListener {
    streams: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp`, each handshake in its own task.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, streams) = tokio::sync::mpsc::channel(64);
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    );
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            streams,
            addr,
            accept,
        })
    }
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(s) => s,
            // The accept task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Adds HSTS to a TLS response.
pub async fn hsts(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    resp
}

/// Production over plain HTTP: the health checks answer, everything else is
/// refused (403 problem JSON, `https_required`).
pub async fn health_only(req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "HTTPS required",
        "status": 403,
        "code": "https_required",
        "detail": "this server answers plain HTTP for health checks only; use HTTPS",
    });
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
