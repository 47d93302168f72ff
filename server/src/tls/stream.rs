//! An accepted TCP stream, plain or TLS. A TLS stream does its handshake on its first read or
//! write, in the task of the connection that reads it, so a client that is slow to handshake
//! holds up only its own connection (and the header read timeout of `crate::connections`
//! covers it).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// An accepted connection's bytes: as they are, or through TLS.
pub enum MaybeTls {
    Plain(TcpStream),
    /// The TLS handshake, not yet complete.
    Handshake(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<TlsStream<TcpStream>>),
    /// The handshake failed: every read and write fails.
    Failed,
}

impl MaybeTls {
    /// `tcp` through TLS with `acceptor`, the handshake to come.
    pub fn accept(tcp: TcpStream, acceptor: &TlsAcceptor) -> MaybeTls {
        MaybeTls::Handshake(Box::new(acceptor.accept(tcp)))
    }

    /// Whether the TLS handshake is still to complete.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, MaybeTls::Handshake(_))
    }

    /// Drives the handshake, if there is one under way; ready once there is none.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let MaybeTls::Handshake(accept) = self else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(&mut **accept).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(stream)) => {
                *self = MaybeTls::Tls(Box::new(stream));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                *self = MaybeTls::Failed;
                Poll::Ready(Err(e))
            }
        }
    }
}

fn failed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl fmt::Debug for MaybeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaybeTls::Plain(tcp) => f.debug_tuple("Plain").field(tcp).finish(),
            MaybeTls::Handshake(_) => f.write_str("Handshake"),
            MaybeTls::Tls(_) => f.write_str("Tls"),
            MaybeTls::Failed => f.write_str("Failed"),
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            MaybeTls::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            MaybeTls::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            MaybeTls::Handshake(_) | MaybeTls::Failed => Poll::Ready(Err(failed())),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            MaybeTls::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            MaybeTls::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
            MaybeTls::Handshake(_) | MaybeTls::Failed => Poll::Ready(Err(failed())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(cx))?;
        match this {
            MaybeTls::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
            MaybeTls::Handshake(_) | MaybeTls::Failed => Poll::Ready(Err(failed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(tcp) => tcp.is_write_vectored(),
            // tokio-rustls writes vectored (and the answer must not change after the handshake).
            MaybeTls::Handshake(_) | MaybeTls::Tls(_) | MaybeTls::Failed => true,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            MaybeTls::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            // Nothing was written yet.
            MaybeTls::Handshake(_) | MaybeTls::Failed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            MaybeTls::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            // Dropping the stream closes it.
            MaybeTls::Handshake(_) | MaybeTls::Failed => Poll::Ready(Ok(())),
        }
    }
}
