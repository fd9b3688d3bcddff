//! The cap on open HTTP connections (`api.max_connections`, as applied when
//! the engine has started; the default until then: the server listens first).
//!
//! [`CappedListener`] wraps the TCP listener: each accepted connection holds a
//! permit until it closes. One connection over the cap is still accepted, told
//! `503 Service Unavailable` with `Retry-After`, and closed, so a client learns
//! why instead of hanging in the kernel's queue. Event streams have their own,
//! smaller cap (`api.max_event_streams`) so they can never take every
//! connection the dashboard and the API need.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections allowed when `api.max_connections` does not say.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// What a connection over the cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 93\r\n\
\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections are open; try again shortly\"}}";

/// A TCP listener that holds at most `permits` connections open.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl CappedListener {
    /// The listener, and the handle that changes its cap (from `max`).
    pub fn new(inner: TcpListener, max: usize) -> (Self, Cap) {
        let permits = Arc::new(Semaphore::new(max.max(1)));
        let cap = Cap { permits: permits.clone(), max: Arc::new(std::sync::Mutex::new(max.max(1))) };
        (CappedListener { inner, permits }, cap)
    }
}

/// Changes a [`CappedListener`]'s cap once it serves: the server listens
/// before the engine has read `api.max_connections`.
#[derive(Clone)]
pub struct Cap {
    permits: Arc<Semaphore>,
    max: Arc<std::sync::Mutex<usize>>,
}

impl Cap {
    /// At most `max` connections from now on; a lower cap takes effect as
    /// open connections close.
    pub fn set(&self, max: usize) {
        let max = max.max(1);
        let old = std::mem::replace(&mut *self.max.lock().expect("the cap is never poisoned"), max);
        if max > old {
            self.permits.add_permits(max - old);
        } else if max < old {
            let (permits, fewer) = (self.permits.clone(), (old - max) as u32);
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(fewer).await {
                    taken.forget();
                }
            });
        }
    }
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // TcpListener's own accept retries transient errors.
            let (io, addr) = Listener::accept(&mut self.inner).await;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => return (CappedStream { io, _permit: permit }, addr),
                Err(_) => {
                    tracing::warn!(peer = %addr, "connection refused: api.max_connections are open");
                    refuse(io);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers 503 on a connection over the cap and closes it, off the accept loop.
fn refuse(mut io: TcpStream) {
    tokio::spawn(async move {
        let answer = async {
            io.write_all(REFUSAL).await?;
            io.shutdown().await
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), answer).await;
    });
}

/// An accepted connection; its permit goes back when it is dropped.
pub struct CappedStream {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for CappedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The address a request came from (the TCP peer; see `client.rs` for proxies).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, CappedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_says_its_own_length() {
        let text = std::str::from_utf8(super::REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
