//! The accept loop (SPEC §8): at most `AGENTDISPATCH_MAX_CONNECTIONS` open connections (past it,
//! new ones wait in the kernel backlog: the loop stops accepting), a request's headers within
//! `AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS`, and its body within the same time from then.
//! warp's own server has no limit and no read timeout, and its acceptor trait is private, so
//! the routes are served as a tower service through hyper-util, as warp itself does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Headers, and then the whole body, must arrive within this.
    pub read_timeout: Duration,
}

/// Serves `routes` on `listener` until `shutdown`, then waits for open connections to finish
/// their requests.
pub async fn run<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: Service<hyper::Request<Deadline>, Response = warp::reply::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned = false;
    // One connection builder for all: its settings do not change per connection.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    loop {
        // A permit first: at the limit, connections wait in the backlog, not in memory.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        if permits.available_permits() == 0 && !warned {
            warned = true;
            tracing::warn!(
                max = limits.max_connections,
                "AGENTDISPATCH_MAX_CONNECTIONS reached: new connections wait until one closes"
            );
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let read_timeout = limits.read_timeout;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let req = req.map(|body| Deadline::new(body, read_timeout));
            service.clone().call(req)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that hangs up or is too slow ends only its own connection.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request body that must arrive whole by a deadline (a client trickling a body slowly
/// would otherwise hold its connection and a task for as long as it likes).
pub struct Deadline {
    inner: Incoming,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Deadline {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The body did not arrive in time.
#[derive(Debug)]
struct TooSlow(Duration);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}s (AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for TooSlow {}

impl Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(BoxError::from))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(TooSlow(this.timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
