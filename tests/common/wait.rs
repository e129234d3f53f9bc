//! Waiting for a condition by polling it (a test's way to synchronise on state it cannot be
//! told about), never by sleeping a guessed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check()
}

/// [`eventually`] for a check that has to await (an HTTP request, say): polls `check` every
/// 25 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually_async<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check().await
}
