//! A bounded pool for CPU-heavy work on the blocking threads (password hashing):
//! at most `workers` jobs run at once and at most `queue` more wait; beyond that a
//! job is refused at once ([`Busy`], answered 503 with `Retry-After`).
//!
//! Tokio's blocking pool has no bound of its own (512 threads by default): fifty
//! parallel logins would be fifty argon2 hashes of 19 MiB each pinning every core.
//! With about one worker per core, a burst waits in a short queue and the rest is
//! refused cheaply, so the service keeps answering everything else.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::http::Problem;

/// The pool is full: the job was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the pool is full")]
pub struct Busy;

impl From<Busy> for Problem {
    fn from(_: Busy) -> Problem {
        Problem::unavailable("too many requests of this kind are being handled; retry shortly", 1)
    }
}

#[derive(Clone)]
pub struct BoundedPool {
    /// Jobs admitted (running or waiting): `workers + queue` permits.
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

impl BoundedPool {
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self { admitted: Arc::new(Semaphore::new(workers + queue)), running: Arc::new(Semaphore::new(workers)) }
    }

    /// About one worker per core.
    pub fn per_core(queue: usize) -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from), queue)
    }

    /// Runs `job` on a blocking thread once a worker is free, or refuses it at once
    /// when the queue is full too.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| Busy)?;
        let running = self.running.clone().acquire_owned().await.map_err(|_| Busy)?;
        let out = tokio::task::spawn_blocking(move || {
            let out = job();
            drop((running, admitted));
            out
        })
        .await;
        match out {
            Ok(v) => Ok(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_workers_run_and_at_most_the_queue_waits() {
        let pool = BoundedPool::new(2, 3);
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // The jobs hold their worker until released, so no job finishes while the
        // eight are submitted, however slow the machine (a sleep-based version of
        // this test admitted more than five on a loaded box).
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (pool, now, peak, release) = (pool.clone(), now.clone(), peak.clone(), release.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // The three refusals answer at once; the five admitted wait for the release.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while jobs.iter().filter(|j| j.is_finished()).count() < 3 {
            assert!(std::time::Instant::now() < deadline, "three submissions should have been refused");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(jobs.iter().filter(|j| j.is_finished()).count(), 3, "the admitted ones are held");
        release.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for j in jobs {
            outcomes.push(j.await.unwrap());
        }
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 5, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Err(Busy)).count(), 3);
        assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than the workers at once");
        // Once drained, it admits again; a refusal is a 503 with Retry-After.
        assert_eq!(pool.run(|| 7).await, Ok(7));
        let p: Problem = Busy.into();
        assert_eq!((p.status, p.retry_after_secs), (503, Some(1)));
    }
}
