//! The background workers, and the one runner that loops them.
//!
//! A **worker** is a piece of background work written as a single step:
//! [`Worker::step`] does one unit (claims and processes one batch, delivers
//! the due webhooks, sweeps once) and says whether it found any
//! ([`Step::Worked`]) or none was due ([`Step::Idle`]). Everything else — the
//! loop, the pauses, waking early, concurrency, stopping — is the runner's,
//! read from what the worker declares:
//!
//! - [`Worker::cadence`]: a *queue* worker steps again at once while it has
//!   work, and pauses when it has none (waking early on its `Notify`, such as
//!   the outbox's wake when mail is queued); a *periodic* worker makes one pass
//!   every period, whatever it finds.
//! - [`Worker::lanes`]: how many loops of it run side by side in this process
//!   (the outbox runs `MAILROOM_WORKER_CONCURRENCY` claimers); each lane steps on its own, so `step` is one unit of one
//!   lane and must be safe to call concurrently (claims under a lease make it so).
//! - [`Worker::stop`]: what shutdown does to it: finish the step in hand within
//!   a grace period (logging what was left when it does not), stop at once, or
//!   keep going until the others have finished (the sandbox's event feed, which
//!   the outbox's last batches still feed).
//!
//! `app::workers` lists the workers a process runs, in the order they stop;
//! [`Runner::spawn`] runs them.
//!
//! **Tests step them.** [`Workers::settle`] steps every worker until none has
//! work due now — queue workers until they answer `Idle`, periodic ones once
//! when their period has passed on the store's clock — and waits for steps a
//! background runner of the same app has in hand, so it works whether the
//! runner runs or not. With the store's [`Clock`](crate::domain::Clock) moved
//! ahead (`store.clock().advance(..)`), work that falls due later — a retry's
//! backoff, a lease, a delayed automation, a periodic sweep — is due now: a
//! test advances and settles instead of sleeping. Workers read due times,
//! leases, backoffs and delays from `store.now_ms()` for this reason; only the
//! outbox's pacer keeps the system clock, since it paces real provider requests.

pub mod pending_expiry;
pub mod queue_gauges;
pub mod reputation_sweep;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::store::Store;

/// What one step found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It did some work; there may be more.
    Worked,
    /// Nothing was due.
    Idle,
}

/// When a worker steps.
#[derive(Clone)]
pub enum Cadence {
    /// Steps while it has work; after `Idle` pauses `idle` (after an error,
    /// `after_error`), or less when `wake` is notified.
    Queue { idle: Duration, after_error: Duration, wake: Option<Arc<Notify>> },
    /// One pass every `every`; the first at once, or after `every` when `first_now` is false.
    Every { every: Duration, first_now: bool },
}

/// What shutdown does to a worker.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Stops at the signal, finishing the step in hand; waited for at most
    /// `grace`, after which `overdue` is logged and it is abandoned.
    Finish { grace: Duration, overdue: &'static str },
    /// Stops at the signal; a step in hand is cut short once the finishing workers are done.
    Abandon,
    /// Keeps going while the finishing workers finish (it serves them), then is cut short.
    Last,
}

/// A background worker: one step at a time, looped by the [`Runner`].
pub trait Worker: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// One unit of work.
    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>>;

    fn cadence(&self) -> Cadence;

    /// Loops of this worker side by side in one process.
    fn lanes(&self) -> usize {
        1
    }

    fn stop(&self) -> Stop {
        Stop::Abandon
    }

    /// Work a worker's steps started and left running on tasks of their own
    /// (the tenant webhooks' attempts): `settle` waits for it, and shutdown
    /// lets a `Finish` worker's end within its grace.
    fn in_flight(&self) -> usize {
        0
    }

    /// Logs a failed step (the runner pauses, then tries again).
    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(worker = self.name(), error = ?error, "worker step failed");
    }
}

/// Steps in hand in a process's runner, and steps that found work: what
/// [`Workers::settle`] waits on.
#[derive(Debug, Default)]
pub struct Activity {
    busy: AtomicUsize,
    worked: AtomicU64,
}

impl Activity {
    async fn step(&self, worker: &dyn Worker) -> anyhow::Result<Step> {
        let _busy = Busy::start(&self.busy);
        let result = worker.step().await;
        if matches!(result, Ok(Step::Worked)) {
            self.worked.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

/// A step in hand, counted until it ends — also when its loop is aborted
/// mid-step, so that `settle` never waits for a step that will not finish.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn start(busy: &'a AtomicUsize) -> Self {
        busy.fetch_add(1, Ordering::SeqCst);
        Self(busy)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The workers of one app, for a runner or for a test to step.
#[derive(Clone)]
pub struct Workers {
    list: Vec<Arc<dyn Worker>>,
    activity: Arc<Activity>,
    store: Store,
    /// When settle last stepped each periodic worker, by the store's clock.
    passes: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Workers {
    pub fn new(list: Vec<Arc<dyn Worker>>, activity: Arc<Activity>, store: Store) -> Self {
        let now = store.now_ms();
        let passes = Arc::new(std::sync::Mutex::new(vec![now; list.len()]));
        Self { list, activity, store, passes }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|w| w.name()).collect()
    }

    /// Steps every worker until none has work due now (by the store's clock),
    /// and no background step of this app is in hand. A failed step is logged
    /// and counts as idle. For tests.
    pub async fn settle(&self) {
        loop {
            let before = self.activity.worked.load(Ordering::SeqCst);
            let mut worked = false;
            for (i, worker) in self.list.iter().enumerate() {
                match worker.cadence() {
                    Cadence::Queue { .. } => {
                        while let Ok(Step::Worked) = self.step(worker.as_ref()).await {
                            worked = true;
                        }
                    }
                    Cadence::Every { every, .. } => {
                        let now = self.store.now_ms();
                        let due = {
                            let mut passes = self.passes.lock().unwrap_or_else(|p| p.into_inner());
                            let period = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
                            let due = passes.get(i).is_some_and(|last| now.saturating_sub(*last) >= period);
                            if due {
                                if let Some(last) = passes.get_mut(i) {
                                    *last = now;
                                }
                            }
                            due
                        };
                        if due {
                            let _ = self.step(worker.as_ref()).await;
                            worked = true;
                        }
                    }
                }
            }
            let busy = self.activity.busy.load(Ordering::SeqCst) > 0 || self.list.iter().any(|w| w.in_flight() > 0);
            let others = self.activity.worked.load(Ordering::SeqCst) != before;
            if !worked && !busy && !others {
                return;
            }
            if busy && !worked {
                // A background step is in hand: let it finish rather than spin.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    async fn step(&self, worker: &dyn Worker) -> anyhow::Result<Step> {
        let result = worker.step().await;
        if let Err(e) = &result {
            worker.failed(e);
        }
        result
    }
}

/// Runs a list of workers until stopped.
pub struct Runner {
    stop: watch::Sender<bool>,
    /// Each worker with its lanes' tasks.
    running: Vec<Running>,
}

struct Running {
    worker: Arc<dyn Worker>,
    lanes: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Starts every lane of every worker.
    pub fn spawn(list: Vec<Arc<dyn Worker>>, activity: Arc<Activity>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let running = list
            .into_iter()
            .map(|worker| {
                let lanes = (0..worker.lanes().max(1))
                    .map(|_| tokio::spawn(lane(worker.clone(), activity.clone(), stopped.clone())))
                    .collect();
                Running { worker, lanes }
            })
            .collect();
        Self { stop, running }
    }

    /// Stops every worker: the finishing ones within their grace, one after
    /// another in list order; then the others are cut short.
    pub async fn shut_down(self) {
        let _ = self.stop.send(true);
        let mut rest = Vec::new();
        for Running { worker, lanes } in self.running {
            match worker.stop() {
                Stop::Finish { grace, overdue } => {
                    let finished = async {
                        join_all(lanes).await;
                        while worker.in_flight() > 0 {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    if tokio::time::timeout(grace, finished).await.is_err() {
                        tracing::warn!("{overdue}");
                    }
                }
                Stop::Abandon | Stop::Last => rest.extend(lanes),
            }
        }
        for lane in rest {
            lane.abort();
        }
    }
}

async fn join_all(lanes: Vec<JoinHandle<()>>) {
    for l in lanes {
        let _ = l.await;
    }
}

/// One loop of one worker.
async fn lane(worker: Arc<dyn Worker>, activity: Arc<Activity>, mut stopped: watch::Receiver<bool>) {
    // A `Last` worker ignores the signal: the runner cuts it short after the others.
    let heeds_stop = !matches!(worker.stop(), Stop::Last);
    let stopping = |rx: &watch::Receiver<bool>| heeds_stop && *rx.borrow();
    let cadence = worker.cadence();
    if let Cadence::Every { every, first_now: false } = cadence {
        if !pause(every, None, &mut stopped, heeds_stop).await {
            return;
        }
    }
    while !stopping(&stopped) {
        let result = activity.step(worker.as_ref()).await;
        let (length, wake) = match (&cadence, result) {
            (Cadence::Every { every, .. }, result) => {
                if let Err(e) = result {
                    worker.failed(&e);
                }
                (*every, None)
            }
            (Cadence::Queue { .. }, Ok(Step::Worked)) => continue,
            (Cadence::Queue { idle, wake, .. }, Ok(Step::Idle)) => (*idle, wake.clone()),
            (Cadence::Queue { after_error, wake, .. }, Err(e)) => {
                worker.failed(&e);
                (*after_error, wake.clone())
            }
        };
        if !pause(length, wake, &mut stopped, heeds_stop).await {
            return;
        }
    }
}

/// Waits `length`, or less when woken; false when the stop signal came (and is heeded).
async fn pause(
    length: Duration,
    wake: Option<Arc<Notify>>,
    stopped: &mut watch::Receiver<bool>,
    heeds_stop: bool,
) -> bool {
    let woken = async {
        match &wake {
            Some(w) => w.notified().await,
            None => std::future::pending().await,
        }
    };
    let stop = async {
        if heeds_stop {
            let _ = stopped.wait_for(|s| *s).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(length) => true,
        () = woken => true,
        () = stop => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Has `left` units of work; counts the steps that found one.
    struct Countdown {
        left: AtomicUsize,
        done: AtomicUsize,
    }

    impl Worker for Countdown {
        fn name(&self) -> &'static str {
            "countdown"
        }

        fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
            Box::pin(async move {
                let took = self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if !took {
                    return Ok(Step::Idle);
                }
                self.done.fetch_add(1, Ordering::SeqCst);
                Ok(Step::Worked)
            })
        }

        fn cadence(&self) -> Cadence {
            Cadence::Queue { idle: Duration::from_secs(3600), after_error: Duration::from_secs(3600), wake: None }
        }

        fn lanes(&self) -> usize {
            3
        }

        fn stop(&self) -> Stop {
            Stop::Finish { grace: Duration::from_secs(5), overdue: "countdown did not stop" }
        }
    }

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        (Store::connect(&url, 1).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn settle_steps_a_worker_until_it_is_idle() {
        let (store, _dir) = store().await;
        let w = Arc::new(Countdown { left: AtomicUsize::new(7), done: AtomicUsize::new(0) });
        let workers = Workers::new(vec![w.clone()], Arc::default(), store);
        workers.settle().await;
        assert_eq!(w.done.load(Ordering::SeqCst), 7);
        assert_eq!(workers.names(), ["countdown"]);
    }

    #[tokio::test]
    async fn the_runner_works_every_lane_then_stops_them_all() {
        let w = Arc::new(Countdown { left: AtomicUsize::new(50), done: AtomicUsize::new(0) });
        let runner = Runner::spawn(vec![w.clone()], Arc::default());
        for _ in 0..200 {
            if w.done.load(Ordering::SeqCst) == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(w.done.load(Ordering::SeqCst), 50);
        // Every lane is idle for an hour: shutdown ends them at once, not after the hour.
        tokio::time::timeout(Duration::from_secs(2), runner.shut_down()).await.unwrap();
    }

    /// One slow unit of work (a batch in flight at the provider), then idle.
    struct Slow {
        stop: Stop,
        started: AtomicUsize,
        finished: AtomicUsize,
    }

    impl Worker for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }

        fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
            Box::pin(async move {
                if self.started.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Ok(Step::Idle);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.finished.fetch_add(1, Ordering::SeqCst);
                Ok(Step::Worked)
            })
        }

        fn cadence(&self) -> Cadence {
            Cadence::Queue { idle: Duration::from_secs(3600), after_error: Duration::from_secs(3600), wake: None }
        }

        fn stop(&self) -> Stop {
            self.stop
        }
    }

    // Nothing accepted is lost at shutdown: a step in hand (a batch at the
    // provider) finishes and records its outcome instead of being cut short.
    #[tokio::test]
    async fn shutdown_lets_the_step_in_hand_finish() {
        let finishing = Arc::new(Slow {
            stop: Stop::Finish { grace: Duration::from_secs(5), overdue: "slow did not stop" },
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        });
        let runner = Runner::spawn(vec![finishing.clone()], Arc::default());
        while finishing.started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        runner.shut_down().await;
        assert_eq!(finishing.finished.load(Ordering::SeqCst), 1, "the step in hand was cut short");
    }

    /// Starts one piece of work on a task of its own (a webhook attempt) and returns at once.
    struct Spawner {
        spawned: AtomicUsize,
        running: Arc<AtomicUsize>,
        finished: Arc<AtomicUsize>,
    }

    impl Worker for Spawner {
        fn name(&self) -> &'static str {
            "spawner"
        }

        fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
            Box::pin(async move {
                if self.spawned.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Ok(Step::Idle);
                }
                self.running.fetch_add(1, Ordering::SeqCst);
                let (running, finished) = (self.running.clone(), self.finished.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    running.fetch_sub(1, Ordering::SeqCst);
                });
                Ok(Step::Worked)
            })
        }

        fn cadence(&self) -> Cadence {
            Cadence::Queue { idle: Duration::from_secs(3600), after_error: Duration::from_secs(3600), wake: None }
        }

        fn in_flight(&self) -> usize {
            self.running.load(Ordering::SeqCst)
        }

        fn stop(&self) -> Stop {
            Stop::Finish { grace: Duration::from_secs(5), overdue: "spawner did not stop" }
        }
    }

    fn spawner() -> Arc<Spawner> {
        Arc::new(Spawner { spawned: AtomicUsize::new(0), running: Arc::default(), finished: Arc::default() })
    }

    #[tokio::test]
    async fn settle_and_shutdown_wait_for_work_a_step_left_running() {
        let (store, _dir) = store().await;
        let w = spawner();
        Workers::new(vec![w.clone()], Arc::default(), store).settle().await;
        assert_eq!(w.finished.load(Ordering::SeqCst), 1, "settle returned with work in flight");

        let w = spawner();
        let runner = Runner::spawn(vec![w.clone()], Arc::default());
        while w.spawned.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        runner.shut_down().await;
        assert_eq!(w.finished.load(Ordering::SeqCst), 1, "shutdown did not wait for work in flight");
    }
}
