//! The scoring threads: a fixed set of OS threads that run the CPU-bound part of a call off the
//! async runtime, first come first served.
//!
//! Why not rayon's pool (which served here before): an idle rayon worker looks for work through
//! 32 rounds of `sched_yield` before it sleeps. Calls reach a server one by one, so after every
//! call each idle worker spent those rounds: 9 % of omen-serve's CPU at 6,000 calls/s on 2 cores
//! (`perf`), taken from the runtime threads and whatever else shares the cores. Here an idle
//! thread waits on a condition variable at once, and a job wakes a thread only when one is
//! waiting (a busy thread takes the next job when it is done).
//!
//! The queue is unbounded: what bounds it is the caller's concurrency limit (a permit per call
//! admitted, `[serve.limits] max_concurrent`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// No more jobs: the threads finish what is queued and exit.
    closed: bool,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    ready: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under the lock, so a poisoned lock holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fixed pool of scoring threads. Dropping it lets the threads finish the queued jobs and exit
/// (it does not wait for them: the last reference to what a job holds may be dropped on one of
/// them).
pub struct ScoringPool {
    inner: Arc<Inner>,
    threads: usize,
}

impl std::fmt::Debug for ScoringPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringPool").field("threads", &self.threads).finish_non_exhaustive()
    }
}

impl ScoringPool {
    /// Starts `threads` threads named `{name}-{i}`.
    pub fn new(threads: usize, name: &str) -> std::io::Result<ScoringPool> {
        let inner = Arc::new(Inner::default());
        for i in 0..threads.max(1) {
            let inner = inner.clone();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || work(&inner))?;
        }
        Ok(ScoringPool { inner, threads: threads.max(1) })
    }

    /// Queues `job`; a waiting thread is woken for it.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let mut s = self.inner.lock();
        s.jobs.push_back(Box::new(job));
        let wake = s.idle > 0;
        drop(s);
        if wake {
            self.inner.ready.notify_one();
        }
    }
}

impl Drop for ScoringPool {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_all();
    }
}

fn work(inner: &Inner) {
    let mut s = inner.lock();
    loop {
        if let Some(job) = s.jobs.pop_front() {
            drop(s);
            // A panicking job fails its own call (its sender is dropped), not the thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            s = inner.lock();
        } else if s.closed {
            return;
        } else {
            s.idle += 1;
            s = inner.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.idle -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn every_job_runs_on_the_named_threads_and_a_panic_does_not_stop_them() {
        let pool = ScoringPool::new(2, "t-score").unwrap();
        let (tx, rx) = mpsc::channel();
        pool.spawn(|| panic!("a job that panics"));
        for i in 0..200 {
            let tx = tx.clone();
            pool.spawn(move || {
                let name = std::thread::current().name().map(str::to_string);
                tx.send((i, name)).unwrap();
            });
        }
        let mut seen: Vec<(i32, Option<String>)> = (0..200).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        seen.sort();
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
        assert!(seen.iter().all(|(_, n)| matches!(n.as_deref(), Some("t-score-0" | "t-score-1"))), "{seen:?}");
    }

    #[test]
    fn both_threads_work_at_once_and_queued_jobs_finish_after_the_drop() {
        let pool = ScoringPool::new(2, "t-both").unwrap();
        // Two jobs that each wait for the other: they finish only if both threads run them.
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let d = done_tx.clone();
        pool.spawn(move || {
            a_tx.send(()).unwrap();
            b_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            d.send(()).unwrap();
        });
        let d = done_tx.clone();
        pool.spawn(move || {
            b_tx.send(()).unwrap();
            a_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            d.send(()).unwrap();
        });
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let (c, d) = (count.clone(), done_tx.clone());
            pool.spawn(move || {
                c.fetch_add(1, Ordering::SeqCst);
                d.send(()).unwrap();
            });
        }
        drop(pool);
        for _ in 0..52 {
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 50);
    }
}
