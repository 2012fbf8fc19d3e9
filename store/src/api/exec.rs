//! How a request's data work runs: every endpoint whose work grows with
//! the data (queries, label and series lookups, index stats, volumes,
//! detected labels and fields, patterns) goes through [`run`], so none of
//! them can occupy the async executor, exceed the query concurrency, or
//! outlive the query timeout.
//!
//! The sequence, in one place:
//! 1. wait for a query slot (a permit of `query.max_concurrent`);
//! 2. run the work on the blocking pool, the permit moving with it, so a
//!    slot stays taken until the work has really stopped (a timed-out or
//!    abandoned query that has not yet noticed its cancel flag still
//!    counts);
//! 3. all of it (waiting included) within `query.timeout`: past it the
//!    client gets 504 with Loki's text, and work that had not started yet
//!    does not start;
//! 4. a cancel flag, handed to the work, is raised when the timeout fires
//!    or the request is dropped (the client went away); the work checks it
//!    between blocks or streams and stops with 499.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;

use super::ApiError;
use crate::server::AppState;

/// Loki's text for a query that ran out of time.
pub const TIMEOUT: &str = "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed";

/// Streams visited between two looks at the cancel flag in metadata loops.
pub const CANCEL_CHECK_EVERY: usize = 256;

/// Raises the flag when dropped (the client went away, or the handler
/// returned early).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// 504 with Loki's text.
pub fn timed_out() -> ApiError {
    ApiError::new(StatusCode::GATEWAY_TIMEOUT, TIMEOUT)
}

/// 499 with Loki's text.
pub fn cancelled() -> ApiError {
    ApiError::new(
        StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        larch_query::engine::CANCELLED,
    )
}

/// `Err(499)` once the flag is raised; for loops over streams, looked at
/// every [`CANCEL_CHECK_EVERY`] items (`i` is the loop index).
pub fn check(cancel: &AtomicBool, i: usize) -> Result<(), ApiError> {
    if i.is_multiple_of(CANCEL_CHECK_EVERY) && cancel.load(Ordering::Relaxed) {
        return Err(cancelled());
    }
    Ok(())
}

/// Runs `work` under the store's query slots and timeout (see the module
/// docs).
pub async fn run<T, F>(app: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AtomicBool>) -> Result<T, ApiError> + Send + 'static,
{
    run_with(app.query_slots.clone(), app.config.query.timeout.0, work).await
}

/// [`run`] with explicit slots and timeout.
pub async fn run_with<T, F>(
    slots: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AtomicBool>) -> Result<T, ApiError> + Send + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    // A timeout too large to represent means no deadline.
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    let flag = cancel.clone();
    let job = async move {
        let permit = slots.acquire_owned().await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is shutting down",
            )
        })?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Time ran out while the work waited for a thread.
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(timed_out());
            }
            if flag.load(Ordering::Acquire) {
                return Err(cancelled());
            }
            work(flag)
        });
        match task.await {
            Ok(result) => result,
            Err(join) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("query failed: {join}"),
            )),
        }
    };
    let outcome = match deadline {
        Some(d) => tokio::time::timeout_at(d, job).await,
        None => Ok(job.await),
    };
    match outcome {
        Ok(result) => result,
        Err(_) => {
            cancel.store(true, Ordering::Release);
            Err(timed_out())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Work that runs until its flag is raised, counting how many run.
    fn until_cancelled(
        running: Arc<AtomicUsize>,
    ) -> impl FnOnce(Arc<AtomicBool>) -> Result<u32, ApiError> + Send + 'static {
        move |flag| {
            running.fetch_add(1, Ordering::SeqCst);
            while !flag.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            running.fetch_sub(1, Ordering::SeqCst);
            Err(cancelled())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_timeouts_and_slots() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let r = run_with(slots.clone(), Duration::from_secs(5), |_| Ok(7)).await;
        assert_eq!(r, Ok(7));
        let e = run_with(slots.clone(), Duration::from_secs(5), |_| {
            Err::<u32, _>(ApiError::bad_request("no"))
        })
        .await;
        assert_eq!(e.unwrap_err().status(), StatusCode::BAD_REQUEST);

        // Work that ignores time is cut off at the timeout with Loki's
        // text, and its flag is raised so that it stops.
        let running = Arc::new(AtomicUsize::new(0));
        let started = std::time::Instant::now();
        let e = run_with(
            slots.clone(),
            Duration::from_millis(100),
            until_cancelled(running.clone()),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.message(), TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(2));
        // The slot is free again once the work has noticed.
        let permit = tokio::time::timeout(Duration::from_secs(2), slots.clone().acquire_owned())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0);

        // While every slot is taken, the wait counts against the timeout
        // and the work never starts.
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        let e = run_with(slots.clone(), Duration::from_millis(50), move |_| {
            r2.store(true, Ordering::SeqCst);
            Ok(1)
        })
        .await
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        drop(permit);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ran.load(Ordering::SeqCst));

        // A request dropped mid-way (client gone) raises the flag too.
        let running = Arc::new(AtomicUsize::new(0));
        let request = tokio::spawn(run_with(
            slots.clone(),
            Duration::from_secs(60),
            until_cancelled(running.clone()),
        ));
        let wait_for = |n: usize| {
            let running = running.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while running.load(Ordering::SeqCst) != n {
                    assert!(std::time::Instant::now() < deadline, "never reached {n}");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        wait_for(1).await;
        request.abort();
        wait_for(0).await;

        // A timeout too large for the clock means no deadline.
        let r = run_with(slots, Duration::MAX, |_| Ok(3)).await;
        assert_eq!(r, Ok(3));
    }
}
