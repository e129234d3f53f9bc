//! The exporter: one tokio task that posts finished spans to the OTLP/HTTP endpoint.
//!
//! A span ends into a bounded queue (`try_send`: a task never waits on the collector; a full
//! queue drops the span and counts it). The exporter takes what is queued when it wakes, up to
//! a batch, so spans leave as soon as they end and pile into one request while one is in
//! flight: no timer thread, no delay to tune. One attempt per batch: a collector that fails
//! loses that batch, said in the log when exporting starts failing and when it works again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warp::http::{header, Request};

use super::otlp::{self, SpanData};
use super::settings::Settings;

/// Spans waiting to be sent, at most.
const QUEUE: usize = 4096;
/// Spans in one request, at most (the SDKs' default batch).
const MAX_BATCH: usize = 512;

/// The running exporter.
pub struct Exporter {
    tx: mpsc::Sender<SpanData>,
    stop: CancellationToken,
    done: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    /// Starts the exporter task on the current tokio runtime.
    pub fn start(settings: Settings) -> Exporter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let dropped = Arc::new(AtomicU64::new(0));
        let done = tokio::spawn(run(settings, rx, stop.clone(), dropped.clone()));
        Exporter {
            tx,
            stop,
            done: std::sync::Mutex::new(Some(done)),
            dropped,
        }
    }

    /// Queues a finished span; never waits.
    pub fn send(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is queued and stops, within `grace`.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.stop.cancel();
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(done) = done {
            if tokio::time::timeout(grace, done).await.is_err() {
                tracing::warn!("the last spans were not exported within the shutdown grace");
            }
        }
    }
}

async fn run(
    settings: Settings,
    mut rx: mpsc::Receiver<SpanData>,
    stop: CancellationToken,
    dropped: Arc<AtomicU64>,
) {
    let resource = otlp::resource(&settings.resource);
    let mut conn = None;
    let mut failing = false;
    loop {
        let first = tokio::select! {
            span = rx.recv() => span,
            _ = stop.cancelled() => None,
        };
        let mut batch: Vec<SpanData> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let body = otlp::export_request(&resource, &batch);
        let outcome = tokio::time::timeout(settings.timeout, post(&settings, &mut conn, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", settings.timeout)));
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(endpoint = %settings.uri, "exporting spans works again");
            }
            Ok(()) => {}
            Err(e) => {
                conn = None;
                if !failing {
                    failing = true;
                    tracing::warn!(endpoint = %settings.uri, error = %e, spans = batch.len(), "cannot export spans; they are dropped until the endpoint answers");
                }
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(spans = lost, "the span queue was full; spans were dropped");
        }
    }
}

/// Posts one request over the kept connection (opened when there is none or it closed).
async fn post(
    settings: &Settings,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    body: Vec<u8>,
) -> Result<(), String> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        let stream = tokio::net::TcpStream::connect((settings.host.as_str(), settings.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        // The connection's own driver; it ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *conn = Some(sender);
    }
    let Some(sender) = conn.as_mut() else {
        return Err("no connection".into());
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let authority = settings
        .uri
        .authority()
        .map_or(settings.host.clone(), |a| a.to_string());
    let path = settings
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/x-protobuf");
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the (small) answer through, so that the connection can carry the next request.
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered {status}"))
    }
}
