//! The store's listeners: TCP connections, with TLS when `tls:` is set,
//! handed to the HTTP server (as an axum [`Listener`]) and to the gRPC
//! server (as a stream of connections).
//!
//! A background task accepts connections and runs each TLS handshake in a
//! task of its own, at most [`MAX_HANDSHAKES`] at once and each within
//! [`HANDSHAKE_TIMEOUT`], so a client that opens a connection and says
//! nothing holds neither the accept loop nor memory for long. Every
//! connection uses the TLS configuration current when it was accepted, so
//! a reloaded certificate is served to the next connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use super::tls::{Protocol, TlsServer};
use crate::metrics::Metrics;

/// TLS handshakes in progress at once, per listener.
pub const MAX_HANDSHAKES: usize = 256;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's address, in request extensions (axum's `ConnectInfo`, and
/// tonic's connection info).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// One accepted connection.
pub struct Conn {
    io: Io,
    peer: Peer,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer
    }
}

/// Accepted connections (TLS handshakes done), from a background task.
pub struct Incoming {
    rx: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl Incoming {
    /// Accepts on `listener`; with `tls`, each connection's handshake is
    /// made for `protocol` before it is handed on. The task ends when the
    /// `Incoming` is dropped.
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<TlsServer>>,
        protocol: Protocol,
        metrics: Arc<Metrics>,
    ) -> io::Result<Incoming> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, tls, protocol, metrics, tx));
        Ok(Incoming { rx, local })
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<TlsServer>>,
    protocol: Protocol,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Conn>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = tx.closed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait, as hyper does.
                tracing::warn!(error = %e, "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer(addr);
        let Some(tls) = &tls else {
            if tx
                .send(Conn {
                    io: Io::Plain(stream),
                    peer,
                })
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let permit = tokio::select! {
            p = handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = tx.closed() => return,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config(protocol));
        let tx = tx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let _ = tx
                        .send(Conn {
                            io: Io::Tls(Box::new(s)),
                            peer,
                        })
                        .await;
                }
                Ok(Err(e)) => {
                    handshake_failed(&metrics, protocol);
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed.");
                }
                Err(_) => {
                    handshake_failed(&metrics, protocol);
                    tracing::debug!(peer = %addr, "TLS handshake timed out.");
                }
            }
        });
    }
}

fn handshake_failed(metrics: &Metrics, protocol: Protocol) {
    metrics
        .security
        .handshake_failures
        .get_or_create(&vec![("listener", protocol.as_str().to_string())])
        .inc();
}

impl Listener for Incoming {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        match self.rx.recv().await {
            Some(c) => {
                let peer = c.peer;
                (c, peer)
            }
            // The accept task is gone (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer(self.local))
    }
}

impl Connected<IncomingStream<'_, Incoming>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Peer {
        *stream.remote_addr()
    }
}

impl futures_util::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}
