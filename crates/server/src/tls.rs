//! HTTPS for small deployments (`tether serve --tls-cert --tls-key`): rustls on ring, HTTP/1.1.
//! Larger ones put a TLS-terminating proxy in front instead (docs/server.md, "TLS").
//!
//! TLS wraps each accepted `TcpStream` and nothing else (`conn::accepted_stream`): the serve
//! loop, its middleware and the `TCP_NODELAY` of every socket stay as they are. The handshake
//! runs on the connection's own task, never in the accept loop, bounded by the header read
//! timeout, so a client that stalls in its handshake holds up nothing and is dropped in time.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// A server certificate chain and its private key, ready to serve HTTPS with
/// ([`crate::Config::tls`]).
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

impl TlsConfig {
    /// The certificate chain of `cert_pem` (the server's certificate first, then any
    /// intermediates) with the private key of `key_pem` (PKCS#8, PKCS#1 or SEC1). A chain or key
    /// that does not parse, or a key that does not match the certificate, is
    /// [`ServerError::Config`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ServerError> {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| ServerError::Config(format!("{what}: {e}"));
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("the TLS certificate is not valid PEM", &e))?;
        if chain.is_empty() {
            return Err(ServerError::Config(
                "the TLS certificate file holds no PEM certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| bad("the TLS key holds no usable PEM private key", &e))?;
        // ring, like the client (ureq): aws-lc-rs, rustls's default, needs a C and cmake
        // build. rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
        // exchange (docs/server.md, "TLS").
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| bad("the TLS certificate and key cannot be used together", &e))?;
        // axum serves HTTP/1.1 only (no `http2` feature); saying so lets a client that offers h2
        // fall back instead of failing.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// [`TlsConfig::from_pem`] with the contents of two files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, ServerError> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                ServerError::Config(format!(
                    "cannot read the TLS {what} {}: {e}",
                    path.display()
                ))
            })
        };
        Self::from_pem(&read(cert, "certificate")?, &read(key, "key")?)
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

impl TlsConfig {
    /// The handshake on an accepted socket, bounded by `within` (a client that stalls in its
    /// handshake is dropped like one that stalls in its request head).
    pub(crate) async fn accept(&self, tcp: TcpStream, within: Duration) -> io::Result<Conn> {
        match tokio::time::timeout(within, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(Conn::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not finished in time",
            )),
        }
    }
}

/// One accepted connection, plain or TLS (after its handshake).
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn io(&mut self) -> Pin<&mut (dyn Io + '_)> {
        match self {
            Conn::Plain(s) => Pin::new(s),
            Conn::Tls(s) => Pin::new(s.as_mut()),
        }
    }
}

/// What a connection reads and writes through.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}
