//! The accept loop (SPEC §8): at most `AGENTDISPATCH_MAX_CONNECTIONS` open connections, a
//! request's headers within `AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS` (an idle keep-alive
//! connection is closed after the same time), and its body within the same time from then.
//! warp's own server has no limit and no read timeout, and its acceptor trait is private, so
//! the routes are served as a tower service through hyper, as warp itself does.
//!
//! HTTP/1.1 only: AgentCore speaks HTTP/1.1 to the container, and an HTTP/2 connection (with
//! prior knowledge) would sit idle with no timeout at all, holding a place. Past the limit,
//! a few connections more ([`RESERVE`]) are still accepted, each for one request read within
//! [`RESERVE_READ_TIMEOUT`]: `/ping` is answered on them, anything else gets a 503 naming the
//! limit, so that idle or slow connections cannot make the health check time out.
//!
//! A connection upgraded to a WebSocket (`/ws`) keeps its place for as long as the socket is
//! open: its request carries a [`Conn`] whose place the socket holds, and the socket runs on
//! the same tracker, so that shutting down waits for it too.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::http::{Method, StatusCode};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connections accepted past the limit, to answer `/ping` (and refuse the rest) on.
pub const RESERVE: usize = 64;
/// A connection past the limit sends its request within this, or is closed: the reserve is
/// for short requests only, so that it frees up even when every connection in it is idle.
const RESERVE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Headers, and then the whole body, must arrive within this.
    pub read_timeout: Duration,
}

/// What an upgraded connection needs from the accept loop: its place (held by whoever holds a
/// clone, so the place frees when the last of the connection and its socket ends) and the
/// tracker its socket task runs on.
#[derive(Clone)]
pub struct Conn {
    /// The connection's place within `AGENTDISPATCH_MAX_CONNECTIONS`.
    pub place: Arc<OwnedSemaphorePermit>,
    /// Where the connection's tasks (and an upgraded socket's) run; `run` waits for them.
    pub tracker: TaskTracker,
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
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    // hyper-util's GracefulShutdown cannot watch a connection that may be upgraded: each
    // connection is stopped through this token instead, and waited for through the tracker.
    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned = false;
    // One builder per kind of place: their settings do not change per connection.
    let mut normal = http1::Builder::new();
    normal
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    let mut past = http1::Builder::new();
    past.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout.min(RESERVE_READ_TIMEOUT))
        .keep_alive(false);
    loop {
        // A place first: when the limit and the reserve are both taken, connections wait in
        // the backlog, not in memory.
        // (The permit is held, and so the place taken, until the connection ends.)
        let (place, past_limit): (OwnedSemaphorePermit, bool) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => (p, false),
                Err(_) => break,
            },
            p = reserve.clone().acquire_owned() => match p {
                Ok(p) => (p, true),
                Err(_) => break,
            },
        };
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
        // A place within the limit may have freed while this one waited in the reserve.
        let (place, past_limit) = match past_limit {
            true => match permits.clone().try_acquire_owned() {
                Ok(p) => (p, false),
                Err(_) => (place, true),
            },
            false => (place, false),
        };
        if past_limit && !warned {
            warned = true;
            tracing::warn!(
                max = limits.max_connections,
                "AGENTDISPATCH_MAX_CONNECTIONS reached: past it only /ping is answered, other requests get 503 until a connection closes"
            );
        }
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let read_timeout = limits.read_timeout;
        let over = past_limit.then_some(max);
        let conn_ext = Conn {
            place: Arc::new(place),
            tracker: tracker.clone(),
        };
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|body| Deadline::new(body, read_timeout));
            req.extensions_mut().insert(conn_ext.clone());
            let early = refuse_early(&req, over);
            let mut service = service.clone();
            async move {
                match early {
                    Some(resp) => Ok(resp),
                    None => service.call(req).await,
                }
            }
        });
        let builder = if over.is_some() { &past } else { &normal };
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        let stopping = stopping.clone();
        tracker.spawn(async move {
            // A client that hangs up or is too slow ends only its own connection.
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    stopping.cancel();
    tracker.close();
    tracker.wait().await;
}

/// The answer to a request the routes never see: `CONNECT` and a target with no path (warp
/// panics on those), and on a connection past the limit `max`, anything but the health check.
fn refuse_early<B>(req: &hyper::Request<B>, over: Option<usize>) -> Option<warp::reply::Response> {
    if req.method() == Method::CONNECT {
        return Some(super::method_not_allowed("GET, HEAD or POST"));
    }
    if req.uri().path_and_query().is_none() {
        return Some(super::error_response(
            StatusCode::BAD_REQUEST,
            "Bad request: the request target has no path.",
            None,
        ));
    }
    let max = over?;
    let health = matches!(req.uri().path().trim_end_matches('/'), "/ping" | "/health");
    if health && matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    Some(super::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "The worker has AGENTDISPATCH_MAX_CONNECTIONS ({max}) connections open; past it only GET /ping is answered. Retry when a connection closes."
        ),
        Some(crate::wire::ErrorCode::TooManyConnections),
    ))
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
