//! Tenant templates run in a child process with a memory limit and a deadline.
//!
//! minijinja counts instructions (fuel) and bounds one string repeat, but a
//! template can still grow memory without bound in a few instructions: `~`
//! doubling a string, `replace`, `join`, a list concatenated with itself. A
//! 200-byte template took the server to 5 GB. Jinja's maintainers answer such
//! reports the same way: bound the process, not the operations. So rendering
//! happens in `mailroom render-worker` processes, each with an address-space
//! limit (`MAILROOM_RENDER_MEMORY_MB`) and a wall-clock deadline per job
//! (`MAILROOM_RENDER_TIMEOUT_MS`). A template that passes either kills only its
//! worker; it fails as a runaway template, and a new worker takes its place.
//!
//! The server itself never compiles a tenant's template either: minijinja's
//! parser recurses per term of a chain like `1+1+…` (a stack overflow aborts
//! the whole process) and folds constants while it compiles.
//!
//! Each job is one template and many recipients (a claim of a campaign is one
//! round trip); a job with no recipients checks the syntax. Jobs and answers
//! are frames over the worker's stdin and stdout: a length (four bytes, little
//! endian), the job's number (eight bytes), then JSON.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::template::{TemplateError, Templates, FUEL, HTML, SUBJECT, TEXT};
use super::{Recipient, Rendered};

/// The hidden subcommand a worker runs.
pub const WORKER_COMMAND: &str = "render-worker";
/// Largest frame either side accepts (a claim's rendered emails are far less).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// One template and the recipients to render it for.
#[derive(Serialize, Deserialize)]
pub struct Job<'a> {
    #[serde(borrow)]
    pub subject: Cow<'a, str>,
    #[serde(borrow)]
    pub html: Cow<'a, str>,
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    /// Bound on each rendered part, in bytes.
    pub max_output: usize,
    /// Rendering stops once the answer holds this many bytes, or once this
    /// many milliseconds have passed: the recipients after that are left
    /// unanswered (a later job renders them). What one job brings back stays
    /// bounded whatever the template makes, and a slow template makes
    /// smaller jobs instead of missing its deadline.
    pub budget: usize,
    pub budget_ms: u64,
    pub recipients: Cow<'a, [Recipient]>,
    /// Instructions each render may execute; [`FUEL`] when absent. A save's
    /// check gives half of it, so a saved template has room to spare for the
    /// data a real send brings.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Refuse a template that uses `include`, `import`, `extends` or `from`
    /// (a save's check: versions saved before the rule keep rendering).
    #[serde(default)]
    pub self_contained: bool,
}

/// A template error as it crosses the pipe.
#[derive(Serialize, Deserialize)]
struct WireError {
    part: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
    runaway: bool,
}

impl From<TemplateError> for WireError {
    fn from(e: TemplateError) -> Self {
        Self { part: e.part.to_owned(), line: e.line, column: e.column, message: e.message, runaway: e.runaway }
    }
}

impl From<WireError> for TemplateError {
    fn from(e: WireError) -> Self {
        let part = [SUBJECT, HTML, TEXT].into_iter().find(|p| *p == e.part).unwrap_or(HTML);
        Self { part, line: e.line, column: e.column, message: e.message, runaway: e.runaway }
    }
}

#[derive(Deserialize)]
struct Answer {
    compiled: Result<(), WireError>,
    rendered: Vec<Result<Rendered, WireError>>,
}

/// An [`Answer`] as the worker writes it: each render serialized as it is
/// made, so the budget counts the bytes that cross the pipe (JSON escapes
/// can make them several times the rendered text).
#[derive(Serialize)]
struct WrittenAnswer {
    compiled: Result<(), WireError>,
    rendered: Vec<Box<serde_json::value::RawValue>>,
}

/// What became of a job: whether the template compiles, and the renders of
/// its first recipients, in order (all of them unless the budget ran out;
/// none if it does not compile).
pub struct Outcome {
    pub compiled: Result<(), TemplateError>,
    pub rendered: Vec<Result<Rendered, TemplateError>>,
}

/// What a worker does with a job; also what [`RenderProcesses::in_process`] does.
fn run_job(templates: &Templates, job: &Job<'_>) -> WrittenAnswer {
    let started = std::time::Instant::now();
    let text = job.text.as_deref();
    let fuel = job.fuel.unwrap_or(FUEL);
    let compiled = templates.compile(&job.subject, &job.html, text, job.max_output, fuel).and_then(|c| {
        if job.self_contained {
            c.self_contained().map(|()| c)
        } else {
            Ok(c)
        }
    });
    let compiled = match compiled {
        Ok(c) => c,
        Err(e) => return WrittenAnswer { compiled: Err(e.into()), rendered: Vec::new() },
    };
    let mut rendered = Vec::with_capacity(job.recipients.len());
    let mut total = 0usize;
    for to in job.recipients.iter() {
        let r = compiled.render_for(to).map_err(WireError::from);
        let Ok(raw) = serde_json::value::to_raw_value(&r) else { break };
        total += raw.get().len();
        rendered.push(raw);
        if total >= job.budget || started.elapsed().as_millis() >= u128::from(job.budget_ms) {
            break;
        }
    }
    WrittenAnswer { compiled: Ok(()), rendered }
}

#[cfg(test)]
fn read_answer(written: WrittenAnswer) -> Answer {
    let json = serde_json::to_vec(&written).unwrap_or_default();
    serde_json::from_slice(&json).unwrap_or(Answer { compiled: Ok(()), rendered: Vec::new() })
}

/// The worker's main loop: limits its own memory, then answers jobs from stdin
/// until stdin closes. Runs before any async runtime or thread is started.
/// Each answer carries its job's number.
pub fn serve_stdio(memory_mb: u64) -> anyhow::Result<()> {
    limit_memory(memory_mb)?;
    let templates = Templates::default();
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    while let Some(frame) = read_frame(&mut input)? {
        let (number, job) = frame.split_at_checked(8).ok_or_else(|| anyhow::anyhow!("a frame without its number"))?;
        let job: Job<'_> = serde_json::from_slice(job)?;
        let answer = serde_json::to_vec(&run_job(&templates, &job))?;
        output.write_all(&u32::try_from(answer.len() + 8)?.to_le_bytes())?;
        output.write_all(number)?;
        output.write_all(&answer)?;
        output.flush()?;
    }
    Ok(())
}

fn read_frame(input: &mut impl Read) -> anyhow::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    anyhow::ensure!(len <= MAX_FRAME, "a job of {len} bytes is larger than {MAX_FRAME}");
    let mut frame = vec![0; len];
    input.read_exact(&mut frame)?;
    Ok(Some(frame))
}

/// Caps the process's address space, and turns off core dumps (a worker that
/// hits the cap aborts, and its memory is nobody's business).
fn limit_memory(memory_mb: u64) -> anyhow::Result<()> {
    let bytes = memory_mb.saturating_mul(1024 * 1024);
    for (resource, value) in [(libc::RLIMIT_AS, bytes), (libc::RLIMIT_CORE, 0)] {
        let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
        // SAFETY: setrlimit reads the struct we pass and touches no other memory.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            anyhow::bail!("setrlimit failed: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How the sandbox runs.
#[derive(Clone, Debug)]
pub struct RenderProcessSettings {
    /// The mailroom binary (it runs `mailroom render-worker`).
    pub exe: PathBuf,
    pub memory_mb: u64,
    pub timeout: Duration,
    /// Workers per pool; there are two pools (below).
    pub workers: usize,
}

/// Why a job got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RenderProcessError {
    /// No worker could be started: nothing is wrong with the template, so
    /// whatever waits on it should wait and try again.
    #[error("the template renderer could not be started ({0}); check MAILROOM_RENDER_BIN")]
    Unavailable(std::io::Error),
    /// The worker died or ran past its deadline on this job: the template.
    #[error("{0}")]
    Limit(String),
}

/// Workers for one kind of caller. The outbox and interactive callers (API
/// previews, template saves) have a pool each, so a tenant previewing a
/// template that runs to its deadline never stalls sending.
///
/// A job's exchange with its worker runs in a task of its own that owns the
/// worker until the answer is read (or the worker is killed): a caller that
/// gives up (a closed connection) cannot leave a worker with an answer owed,
/// which the next job would read as its own. Answers carry their job's number
/// as well, and a worker that answers another number is replaced.
struct Pool {
    idle: Arc<std::sync::Mutex<Vec<Worker>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// Where templates run: worker processes (see the module's documentation).
pub struct RenderProcesses(Inner);

enum Inner {
    Process {
        settings: RenderProcessSettings,
        outbox: Pool,
        interactive: Pool,
        jobs: AtomicU64,
    },
    /// Renders in this process: for unit tests only, which have no mailroom
    /// binary to start (integration tests run real workers).
    #[cfg(test)]
    InProcess(Templates),
}

/// Which pool a job goes to.
#[derive(Clone, Copy, Debug)]
pub enum Caller {
    Outbox,
    Interactive,
}

impl RenderProcesses {
    pub fn new(settings: RenderProcessSettings) -> Self {
        let pool = |n: usize| Pool { idle: Arc::default(), permits: Arc::new(tokio::sync::Semaphore::new(n.max(1))) };
        let (outbox, interactive) = (pool(settings.workers), pool(settings.workers));
        Self(Inner::Process { settings, outbox, interactive, jobs: AtomicU64::new(1) })
    }

    #[cfg(test)]
    pub fn in_process() -> Self {
        Self(Inner::InProcess(Templates::default()))
    }

    /// How long one job may take.
    pub fn timeout(&self) -> Duration {
        match &self.0 {
            Inner::Process { settings, .. } => settings.timeout,
            #[cfg(test)]
            Inner::InProcess(_) => Duration::from_secs(5),
        }
    }

    /// Compiles `job`'s template and renders it for its recipients, in order,
    /// as far as its budget allows.
    pub async fn render(&self, caller: Caller, job: &Job<'_>) -> Result<Outcome, RenderProcessError> {
        let answer: Answer = match &self.0 {
            #[cfg(test)]
            Inner::InProcess(templates) => read_answer(run_job(templates, job)),
            Inner::Process { settings, outbox, interactive, jobs } => {
                let pool = match caller {
                    Caller::Outbox => outbox,
                    Caller::Interactive => interactive,
                };
                let number = jobs.fetch_add(1, Ordering::Relaxed);
                let mut frame = number.to_le_bytes().to_vec();
                serde_json::to_writer(&mut frame, job).map_err(|e| RenderProcessError::Limit(e.to_string()))?;
                let answer = pool.run(settings, number, frame).await?;
                serde_json::from_slice(&answer)
                    .map_err(|e| RenderProcessError::Limit(format!("unreadable answer: {e}")))?
            }
        };
        Ok(Outcome {
            compiled: answer.compiled.map_err(TemplateError::from),
            rendered: answer.rendered.into_iter().map(|r| r.map_err(TemplateError::from)).collect(),
        })
    }
}

impl Pool {
    async fn run(
        &self,
        settings: &RenderProcessSettings,
        number: u64,
        frame: Vec<u8>,
    ) -> Result<Vec<u8>, RenderProcessError> {
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|e| RenderProcessError::Limit(e.to_string()))?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut worker = match idle {
            Some(w) => w,
            None => spawn(settings).map_err(RenderProcessError::Unavailable)?,
        };
        let (pool, settings) = (self.idle.clone(), settings.clone());
        let exchange = tokio::spawn(async move {
            let _permit = permit;
            let answer = tokio::time::timeout(settings.timeout, exchange(&mut worker, number, &frame)).await;
            let failure = match answer {
                Ok(Ok(answer)) => {
                    if let Ok(mut idle) = pool.lock() {
                        idle.push(worker);
                    }
                    return Ok(answer);
                }
                Ok(Err(_)) => format!(
                    "rendering stopped: the template needs more memory, or nests deeper, than the renderer \
                     allows ({} MB, MAILROOM_RENDER_MEMORY_MB)",
                    settings.memory_mb
                ),
                Err(_) => format!(
                    "rendering stopped: the template took longer than {} ms (MAILROOM_RENDER_TIMEOUT_MS)",
                    settings.timeout.as_millis()
                ),
            };
            // The worker is dead, or busy with what we gave up on: replace it.
            let _ = worker.child.start_kill();
            let _ = worker.child.wait().await;
            metrics::counter!("mailroom_render_workers_killed_total").increment(1);
            tracing::warn!(reason = %failure, "a template render was stopped; its worker was replaced");
            Err(RenderProcessError::Limit(failure))
        });
        exchange.await.map_err(|e| RenderProcessError::Limit(e.to_string()))?
    }
}

/// Sends one numbered job and reads its answer.
async fn exchange(worker: &mut Worker, number: u64, frame: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u32::try_from(frame.len()).map_err(std::io::Error::other)?;
    worker.stdin.write_all(&len.to_le_bytes()).await?;
    worker.stdin.write_all(frame).await?;
    worker.stdin.flush().await?;
    let mut len = [0u8; 4];
    worker.stdout.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::other(format!("an answer of {len} bytes")));
    }
    let mut answer = vec![0; len];
    worker.stdout.read_exact(&mut answer).await?;
    if answer[..8] != number.to_le_bytes() {
        return Err(std::io::Error::other("the worker answered another job"));
    }
    answer.drain(..8);
    Ok(answer)
}

fn spawn(settings: &RenderProcessSettings) -> std::io::Result<Worker> {
    let mut child = Command::new(&settings.exe)
        .arg(WORKER_COMMAND)
        .arg("--memory-mb")
        .arg(settings.memory_mb.to_string())
        // The worker needs nothing of the server's environment (its secrets included).
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other("the worker's pipes are missing"));
    };
    Ok(Worker { child, stdin, stdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_ends_the_loop() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&3u32.to_le_bytes());
        buf.extend_from_slice(b"abc");
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut huge = &(u32::MAX).to_le_bytes()[..];
        assert!(read_frame(&mut huge).is_err());
    }

    #[test]
    fn an_error_crosses_the_pipe_with_its_part() {
        let e = TemplateError { part: TEXT, line: Some(2), column: Some(3), message: "m".into(), runaway: true };
        let back = TemplateError::from(WireError::from(e.clone()));
        assert_eq!(back, e);
    }
}
