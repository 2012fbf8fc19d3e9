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
use futures_util::StreamExt as _;

use super::ApiError;
use crate::server::AppState;

/// Loki's text for a query that ran out of time.
pub const TIMEOUT: &str = "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed";

pub use crate::ingester::metadata::CANCEL_CHECK_EVERY;

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
    Ok(crate::ingester::metadata::check(cancel, i)?)
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

/// Bytes of a piece of a streamed answer ([`run_streamed`]).
pub const PIECE: usize = 64 * 1024;

/// Pieces queued between the work and the connection: what one streamed
/// answer holds in memory at most is about this many pieces (plus the one
/// being written), however large the answer.
const QUEUED_PIECES: usize = 4;

/// How often a work blocked on a slow client looks at its cancel flag.
const SEND_POLL: Duration = Duration::from_millis(50);

/// What the work of [`run_streamed`] hands to the connection.
enum Piece {
    /// A piece of the body; more follow.
    More(axum::body::Bytes),
    /// The whole body, or its last piece.
    Last(axum::body::Bytes),
    /// The work failed.
    Failed(ApiError),
}

/// Where the work of [`run_streamed`] writes its answer: a buffer sent to
/// the client piece by piece as it fills (see [`Sink::flush`]), so that a
/// large answer (a million label values) is never held whole.
pub struct Sink {
    buf: String,
    tx: tokio::sync::mpsc::Sender<Piece>,
    runtime: tokio::runtime::Handle,
    cancel: Arc<AtomicBool>,
}

impl Sink {
    /// The buffer to append to.
    pub fn buf(&mut self) -> &mut String {
        &mut self.buf
    }

    /// Sends what was written once it fills a piece: blocks while the
    /// client is behind (the connection holds a few pieces), and
    /// fails with 499 once the client is gone or the cancel flag is raised
    /// (the query timeout). Call it between items, never while holding a
    /// lock others wait for.
    pub fn flush(&mut self) -> Result<(), ApiError> {
        if self.buf.len() < PIECE {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, String::with_capacity(PIECE + PIECE / 4));
        self.send(Piece::More(full.into()))
    }

    fn send(&self, piece: Piece) -> Result<(), ApiError> {
        let (tx, cancel) = (&self.tx, &self.cancel);
        self.runtime.block_on(async move {
            loop {
                match tokio::time::timeout(SEND_POLL, tx.reserve()).await {
                    Ok(Ok(slot)) => {
                        slot.send(piece);
                        return Ok(());
                    }
                    // The connection is gone.
                    Ok(Err(_)) => return Err(cancelled()),
                    Err(_) if cancel.load(Ordering::Acquire) => return Err(cancelled()),
                    Err(_) => {}
                }
            }
        })
    }
}

/// Aborts the task of a streamed answer when the response (or the request,
/// before the response) is dropped: the client went away, so the work's
/// cancel flag is raised ([`run_with`] drops its guard).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`run`] for work whose answer can be large: the work writes JSON into a
/// [`Sink`], and the response is sent as the sink fills, so what a request
/// holds is a few pieces, not its whole answer. An answer that fits in one
/// piece is sent whole (with its length), and an error before the first
/// piece is answered with its status as [`run`] does; an error after it
/// (the query timeout while a slow client reads a large answer) can only
/// cut the response short.
pub async fn run_streamed<F>(app: &AppState, work: F) -> Result<axum::response::Response, ApiError>
where
    F: FnOnce(Arc<AtomicBool>, &mut Sink) -> Result<(), ApiError> + Send + 'static,
{
    run_streamed_with(app.query_slots.clone(), app.config.query.timeout.0, work).await
}

/// [`run_streamed`] with explicit slots and timeout.
pub async fn run_streamed_with<F>(
    slots: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
    work: F,
) -> Result<axum::response::Response, ApiError>
where
    F: FnOnce(Arc<AtomicBool>, &mut Sink) -> Result<(), ApiError> + Send + 'static,
{
    use axum::http::header;
    use axum::response::IntoResponse;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(QUEUED_PIECES);
    let failed = tx.clone();
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::spawn(async move {
        let done = run_with(slots, timeout, move |cancel| {
            let mut sink = Sink {
                buf: String::with_capacity(PIECE + PIECE / 4),
                tx,
                runtime,
                cancel: cancel.clone(),
            };
            work(cancel, &mut sink)?;
            let last = std::mem::take(&mut sink.buf);
            sink.send(Piece::Last(last.into()))
        })
        .await;
        if let Err(e) = done {
            // Nobody to tell when the client is gone.
            let _ = failed.send(Piece::Failed(e)).await;
        }
    });
    let guard = AbortOnDrop(task.abort_handle());
    let json = [(header::CONTENT_TYPE, "application/json; charset=utf-8")];
    let first = match rx.recv().await {
        Some(Piece::Last(body)) => return Ok((StatusCode::OK, json, body).into_response()),
        Some(Piece::More(first)) => first,
        Some(Piece::Failed(e)) => return Err(e),
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query failed: the answer ended without a result",
            ));
        }
    };
    let rest = futures_util::stream::unfold(Some((rx, guard)), |state| async move {
        let (mut rx, guard) = state?;
        match rx.recv().await {
            Some(Piece::More(b)) => Some((Ok(b), Some((rx, guard)))),
            Some(Piece::Last(b)) => Some((Ok(b), None)),
            Some(Piece::Failed(e)) => Some((Err(std::io::Error::other(e.message)), None)),
            None => Some((
                Err(std::io::Error::other(
                    "the answer ended without its last piece",
                )),
                None,
            )),
        }
    });
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]).chain(rest);
    Ok((StatusCode::OK, json, axum::body::Body::from_stream(body)).into_response())
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

    /// Writes `n` pieces' worth of `x`, flushing as it goes.
    fn pieces(n: usize) -> impl FnOnce(Arc<AtomicBool>, &mut Sink) -> Result<(), ApiError> {
        move |_, sink| {
            for _ in 0..n * PIECE / 1024 {
                sink.buf().push_str(&"x".repeat(1024));
                sink.flush()?;
            }
            Ok(())
        }
    }

    async fn body_of(r: axum::response::Response) -> Result<Vec<u8>, String> {
        use http_body_util::BodyExt as _;
        r.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_answers() {
        let slots = Arc::new(tokio::sync::Semaphore::new(2));
        let timeout = Duration::from_secs(10);

        // Small: whole, with its length.
        let r = run_streamed_with(slots.clone(), timeout, |_, sink| {
            sink.buf().push_str("[1,2]");
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), Some(5));
        assert_eq!(body_of(r).await.unwrap(), b"[1,2]");

        // Large: in pieces, all of it, in order.
        let r = run_streamed_with(slots.clone(), timeout, pieces(20))
            .await
            .unwrap();
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), None);
        let body = body_of(r).await.unwrap();
        assert_eq!(body.len(), 20 * PIECE);
        assert!(body.iter().all(|&b| b == b'x'));

        // An error before the first piece keeps its status.
        let e = run_streamed_with(slots.clone(), timeout, |_, sink| {
            sink.buf().push_str("[1");
            Err(ApiError::bad_request("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);

        // After it, the body fails rather than end as if complete.
        let r = run_streamed_with(slots.clone(), timeout, |c, sink| {
            pieces(2)(c, sink)?;
            Err(ApiError::bad_request("late"))
        })
        .await
        .unwrap();
        assert!(body_of(r).await.unwrap_err().contains("late"));

        // A client that goes away stops the work, which frees its slot.
        let stopped = Arc::new(AtomicBool::new(false));
        let s2 = stopped.clone();
        let r = run_streamed_with(slots.clone(), timeout, move |_, sink| {
            let r = pieces(1000)(Arc::new(AtomicBool::new(false)), sink);
            s2.store(r.is_err(), Ordering::SeqCst);
            r
        })
        .await
        .unwrap();
        drop(r);
        let all = tokio::time::timeout(Duration::from_secs(5), slots.clone().acquire_many_owned(2))
            .await
            .expect("the slot was never freed")
            .unwrap();
        assert!(stopped.load(Ordering::SeqCst));
        drop(all);

        // A client that reads nothing holds the work only until the
        // query timeout, with a few pieces queued.
        let started = std::time::Instant::now();
        let r = run_streamed_with(slots.clone(), Duration::from_millis(300), pieces(1000))
            .await
            .unwrap();
        let _all = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many_owned(2))
            .await
            .expect("the slot was never freed")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(body_of(r).await.is_err());
    }
}
