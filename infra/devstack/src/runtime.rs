//! Runs a function's real binary the way Lambda does, through the Lambda Runtime API.
//!
//! Each instance is a child process with `AWS_LAMBDA_RUNTIME_API` pointing at its own small HTTP
//! server (`/2018-06-01/runtime/invocation/next`, `.../{id}/response`, `.../{id}/error`,
//! `/init/error`). A [`FunctionPool`] keeps warm instances, starts another when all are busy (up
//! to the function's concurrency), enforces the timeout by killing the instance, and reports each
//! invocation like Lambda's `REPORT` line: init duration on a cold start, duration, max memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::faults::Faults;
use crate::functions::FunctionSpec;

/// How long Lambda allows for a function's init phase.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Output lines kept per instance, to explain a crash.
const KEPT_OUTPUT_LINES: usize = 30;

#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error through `/invocation/{id}/error`.
    #[error("function error {error_type}: {message}")]
    Function { error_type: String, message: String },
    #[error("function timed out after {0:?}")]
    Timeout(Duration),
    #[error("function instance crashed: {0}")]
    Crashed(String),
    #[error("could not start the function: {0}")]
    Spawn(String),
    /// An outage injected by a test (`POST /_devstack/functions/{name}/outage`).
    #[error("the function is in an injected outage")]
    Outage,
}

/// What one invocation cost, as in Lambda's `REPORT` line.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub function: String,
    /// Process start to the first `/next` request, on a cold start.
    pub init: Option<Duration>,
    /// `/next` handing out the event to the response.
    pub duration: Duration,
    /// Process start to the response, on a cold start.
    pub cold_total: Option<Duration>,
    pub max_memory_kb: u64,
    pub memory_mb: u32,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            self.request_id,
            ms(self.duration),
            ms(self.duration).ceil() as u64,
            self.memory_mb,
            self.max_memory_kb.div_ceil(1024),
        )?;
        if let Some(init) = self.init {
            write!(f, "\tInit Duration: {:.2} ms", ms(init))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Invoked {
    pub body: Bytes,
    pub report: Report,
}

/// Where instance output and reports go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Printed to devstack's stdout, prefixed with the function name.
    Print,
    /// Dropped (benchmarks).
    Quiet,
}

/// What a function answered: all at once, or (response streaming) as chunks until the stream
/// ends, when `done` fires.
pub enum ResponseBody {
    Buffered(Bytes),
    Streamed { chunks: mpsc::Receiver<Bytes>, done: oneshot::Receiver<()> },
}

/// A streamed invocation as [`FunctionPool::invoke_streaming`] hands it out.
pub enum StreamedInvocation {
    /// The function answered in one piece.
    Buffered(Invoked),
    /// The raw response stream (for HTTP integrations: the metadata prelude, eight NUL bytes, then
    /// the body).
    Streaming(mpsc::Receiver<Bytes>),
}

type Reply = oneshot::Sender<Result<(ResponseBody, Duration), InvokeError>>;

struct Invocation {
    request_id: String,
    payload: Bytes,
    deadline: SystemTime,
    trace_id: String,
    reply: Reply,
}

struct Pending {
    reply: Reply,
    handed_out: Instant,
}

/// State shared between an instance and its runtime API server.
struct RuntimeApi {
    function_arn: String,
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, Pending>>,
    first_next: OnceLock<Instant>,
    init_error: Mutex<Option<String>>,
    /// Set when the process is gone, to release a `/next` request still waiting.
    closed: tokio::sync::watch::Sender<bool>,
    faults: Arc<Faults>,
    /// Set when a kill on a marker took this instance: its responses are never delivered.
    killed_on_marker: AtomicBool,
}

struct Instance {
    pid: u32,
    started: Instant,
    invocations: AtomicU64,
    to_runtime: mpsc::Sender<Invocation>,
    api: Arc<RuntimeApi>,
    alive: Arc<AtomicBool>,
    kill: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Instance {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        if let Some(k) = self.kill.lock().unwrap().take() {
            let _ = k.send(());
        }
    }
}

/// Warm instances of one function, started on demand.
pub struct FunctionPool {
    pub spec: Arc<FunctionSpec>,
    /// Variables added to the template's environment (endpoint, region, credentials).
    local_env: BTreeMap<String, String>,
    output: Output,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Arc<Instance>>>,
    instance_counter: AtomicU64,
    /// What a test injects into this function ([`crate::faults`]).
    pub faults: Arc<Faults>,
}

impl FunctionPool {
    pub fn new(spec: FunctionSpec, local_env: BTreeMap<String, String>, output: Output) -> Arc<FunctionPool> {
        Arc::new(FunctionPool {
            permits: Arc::new(Semaphore::new(spec.max_concurrency)),
            spec: Arc::new(spec),
            local_env,
            output,
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            instance_counter: AtomicU64::new(0),
            faults: Arc::default(),
        })
    }

    /// Instances currently running (warm or busy).
    pub fn instance_count(&self) -> usize {
        self.all.lock().unwrap().iter().filter(|i| i.is_alive()).count()
    }

    /// Stops every instance; the next invocation starts cold.
    pub fn stop_all(&self) {
        for instance in self.all.lock().unwrap().drain(..) {
            instance.kill();
        }
        self.idle.lock().unwrap().clear();
    }

    /// Invokes the function with `payload` and waits for its whole response (a streamed one is
    /// gathered).
    pub async fn invoke(&self, payload: Bytes) -> Result<Invoked, InvokeError> {
        if let Some(delay) = self.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        if self.faults.in_outage() {
            return Err(InvokeError::Outage);
        }
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| InvokeError::Spawn("pool closed".into()))?;
        let (instance, cold, request_id, outcome) = self.dispatch(payload).await?;
        let outcome = match outcome {
            Ok((ResponseBody::Streamed { mut chunks, .. }, duration)) => {
                let mut all = Vec::new();
                while let Some(chunk) = chunks.recv().await {
                    all.extend_from_slice(&chunk);
                }
                Ok((Bytes::from(all), duration))
            }
            Ok((ResponseBody::Buffered(body), duration)) => Ok((body, duration)),
            Err(e) => Err(e),
        };
        let invoked = self.finish(&instance, cold, request_id, outcome);
        drop(permit);
        invoked
    }

    /// Invokes the function and hands out its response stream as it comes (Lambda response
    /// streaming). The instance stays busy until the stream ends, or is stopped at the timeout.
    pub async fn invoke_streaming(self: &Arc<Self>, payload: Bytes) -> Result<StreamedInvocation, InvokeError> {
        if self.faults.in_outage() {
            return Err(InvokeError::Outage);
        }
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| InvokeError::Spawn("pool closed".into()))?;
        let started = Instant::now();
        let (instance, cold, request_id, outcome) = self.dispatch(payload).await?;
        match outcome {
            Ok((ResponseBody::Streamed { chunks, done }, first_byte)) => {
                let pool = self.clone();
                let remaining = self.spec.timeout.saturating_sub(started.elapsed());
                tokio::spawn(async move {
                    let ended = tokio::time::timeout(remaining, done).await;
                    if ended.is_err() {
                        eprintln!(
                            "[devstack] {}: response stream still open at the timeout; stopping it",
                            pool.spec.binary
                        );
                        instance.kill();
                    }
                    // The invocation lasts until its stream ends, as Lambda bills it.
                    let outcome = if ended.is_ok() {
                        Ok((Bytes::new(), started.elapsed().max(first_byte)))
                    } else {
                        Err(InvokeError::Timeout(pool.spec.timeout))
                    };
                    let _ = pool.finish(&instance, cold, request_id, outcome);
                    drop(permit);
                });
                Ok(StreamedInvocation::Streaming(chunks))
            }
            Ok((ResponseBody::Buffered(body), duration)) => {
                let invoked = self.finish(&instance, cold, request_id, Ok((body, duration)));
                drop(permit);
                invoked.map(StreamedInvocation::Buffered)
            }
            Err(e) => {
                let invoked = self.finish(&instance, cold, request_id, Err(e));
                drop(permit);
                invoked.map(StreamedInvocation::Buffered)
            }
        }
    }

    /// Hands the event to a warm instance (or a new one) and waits for the start of its answer.
    #[allow(clippy::type_complexity)]
    async fn dispatch(
        &self,
        payload: Bytes,
    ) -> Result<(Arc<Instance>, bool, String, Result<(ResponseBody, Duration), InvokeError>), InvokeError> {
        let warm = loop {
            let candidate = self.idle.lock().unwrap().pop();
            match candidate {
                Some(i) if i.is_alive() => break Some(i),
                Some(_) => continue,
                None => break None,
            }
        };
        let instance = match warm {
            Some(i) => i,
            None => self.start_instance().await?,
        };
        let cold = instance.invocations.fetch_add(1, Ordering::SeqCst) == 0;
        let request_id = uuid::Uuid::new_v4().to_string();
        let (reply, response) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            deadline: SystemTime::now() + self.spec.timeout,
            // The caller's trace (API Gateway's, an Invoke's), else a new one.
            trace_id: crate::traces::header_for_invocation(),
            reply,
        };
        if instance.to_runtime.send(invocation).await.is_err() {
            return Err(InvokeError::Crashed("the instance is gone".into()));
        }
        let limit = self.spec.timeout + if cold { INIT_TIMEOUT } else { Duration::ZERO };
        let outcome = match tokio::time::timeout(limit, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Crashed(self.crash_reason(&instance))),
            Err(_) => {
                instance.kill();
                Err(InvokeError::Timeout(self.spec.timeout))
            }
        };
        Ok((instance, cold, request_id, outcome))
    }

    /// Returns a reusable instance to the pool and reports the invocation.
    fn finish(
        &self,
        instance: &Arc<Instance>,
        cold: bool,
        request_id: String,
        outcome: Result<(Bytes, Duration), InvokeError>,
    ) -> Result<Invoked, InvokeError> {
        let reusable =
            instance.is_alive() && !matches!(outcome, Err(InvokeError::Timeout(_) | InvokeError::Crashed(_)));
        let max_memory_kb = max_rss_kb(instance.pid);
        if reusable {
            self.idle.lock().unwrap().push(instance.clone());
        }
        crate::invocations::STATS.record(
            &self.spec.logical_id,
            outcome.as_ref().ok().map(|(_, took)| *took),
            outcome.is_err(),
            cold,
        );
        let (body, duration) = outcome?;
        let report = Report {
            request_id,
            function: self.spec.name.clone(),
            init: cold.then(|| instance.api.first_next.get().map(|t| t.duration_since(instance.started))).flatten(),
            duration,
            cold_total: cold.then(|| instance.started.elapsed()),
            max_memory_kb,
            memory_mb: self.spec.memory_mb,
        };
        if self.output == Output::Print {
            println!("[{}] {report}", self.spec.binary);
        }
        Ok(Invoked { body, report })
    }

    fn crash_reason(&self, instance: &Instance) -> String {
        instance
            .api
            .init_error
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| format!("{} exited during the invocation (see its output above)", self.spec.binary))
    }

    async fn start_instance(&self) -> Result<Arc<Instance>, InvokeError> {
        let spec = &self.spec;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| InvokeError::Spawn(format!("runtime API listener: {e}")))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| InvokeError::Spawn(e.to_string()))?;
        let (to_runtime, from_pool) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            function_arn: spec.arn.clone(),
            next: tokio::sync::Mutex::new(from_pool),
            pending: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            init_error: Mutex::new(None),
            closed: tokio::sync::watch::Sender::new(false),
            faults: self.faults.clone(),
            killed_on_marker: AtomicBool::new(false),
        });
        let server = tokio::spawn({
            let app = runtime_api_router(api.clone());
            async move {
                let _ = axum::serve(listener, app).await;
            }
        });

        let n = self.instance_counter.fetch_add(1, Ordering::SeqCst);
        let mut command = tokio::process::Command::new(&spec.executable);
        command
            .env_clear()
            .envs(&spec.environment)
            .envs(&self.local_env)
            .envs(self.faults.environment())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("devstack/{n}"))
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("_HANDLER", "bootstrap")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            server.abort();
            InvokeError::Spawn(format!("{}: {e}", spec.executable.display()))
        })?;
        let pid = child.id().unwrap_or_default();
        let recent: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (kill, killed) = oneshot::channel::<()>();
        let kill = Arc::new(Mutex::new(Some(kill)));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let (binary, output, recent) = (spec.binary.clone(), self.output, recent.clone());
            let (api, kill) = (api.clone(), kill.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // What CloudWatch Logs would turn into metrics.
                    crate::emf::STORE.ingest_line(&line);
                    if output == Output::Print {
                        println!("[{binary}] {line}");
                    }
                    if api.faults.take_kill(&line) {
                        eprintln!("[devstack] {binary}: killed on its marker (an injected fault)");
                        api.killed_on_marker.store(true, Ordering::SeqCst);
                        if let Some(k) = kill.lock().unwrap().take() {
                            let _ = k.send(());
                        }
                    }
                    let mut recent = recent.lock().unwrap();
                    if recent.len() == KEPT_OUTPUT_LINES {
                        recent.pop_front();
                    }
                    recent.push_back(line);
                }
            });
        }

        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn({
            let (alive, api, binary) = (alive.clone(), api.clone(), spec.binary.clone());
            async move {
                let status = tokio::select! {
                    status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    _ = killed => { let _ = child.kill().await; "killed by devstack".to_string() }
                };
                alive.store(false, Ordering::SeqCst);
                api.closed.send_replace(true);
                server.abort();
                let tail = recent.lock().unwrap().iter().rev().take(5).rev().cloned().collect::<Vec<_>>().join(" | ");
                let reason = format!("{binary} exited ({status}); last output: {tail}");
                api.init_error.lock().unwrap().get_or_insert(reason);
                // Fail whatever was in flight or queued: dropping the replies wakes the callers.
                let mut next = api.next.lock().await;
                next.close();
                while next.try_recv().is_ok() {}
                drop(next);
                api.pending.lock().unwrap().clear();
            }
        });

        let instance =
            Arc::new(Instance { pid, started, invocations: AtomicU64::new(0), to_runtime, api, alive, kill });
        self.all.lock().unwrap().retain(|i| i.is_alive());
        self.all.lock().unwrap().push(instance.clone());
        Ok(instance)
    }
}

impl Drop for FunctionPool {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Peak resident memory of a process (`VmHWM`), in kB; 0 when unknown.
fn max_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn runtime_api_router(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api)
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> Response {
    let _ = api.first_next.set(Instant::now());
    let mut closed = api.closed.subscribe();
    let mut next = api.next.lock().await;
    let invocation = tokio::select! {
        inv = next.recv() => inv,
        _ = closed.wait_for(|c| *c) => None,
    };
    let Some(inv) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let deadline_ms = inv.deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    // Registered while holding `next`, so the instance's cleanup cannot miss it.
    api.pending
        .lock()
        .unwrap()
        .insert(inv.request_id.clone(), Pending { reply: inv.reply, handed_out: Instant::now() });
    drop(next);
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", inv.request_id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", api.function_arn.clone());
    set("lambda-runtime-trace-id", inv.trace_id);
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, inv.payload).into_response()
}

async fn invocation_response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> StatusCode {
    if api.faults.kill_armed() {
        // Let the output the function wrote before answering reach its reader, which may kill.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if api.killed_on_marker.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let Some(pending) = api.pending.lock().unwrap().remove(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.eq_ignore_ascii_case("streaming"));
    if !streaming {
        return match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                let _ = pending.reply.send(Ok((ResponseBody::Buffered(bytes), pending.handed_out.elapsed())));
                StatusCode::ACCEPTED
            }
            Err(e) => {
                let _ = pending.reply.send(Err(InvokeError::Crashed(format!("reading the response: {e}"))));
                StatusCode::BAD_REQUEST
            }
        };
    }
    // Response streaming: pass each chunk on as it arrives.
    let (chunks, receiver) = mpsc::channel(64);
    let (done, finished) = oneshot::channel();
    let _ = pending
        .reply
        .send(Ok((ResponseBody::Streamed { chunks: receiver, done: finished }, pending.handed_out.elapsed())));
    let mut body = body;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    if chunks.send(data).await.is_err() {
                        break; // the client left; ending the request tells the function so
                    }
                }
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        if let Some(kind) = trailers.get("lambda-runtime-function-error-type") {
                            eprintln!("[devstack] response stream ended with an error: {kind:?}");
                        }
                    }
                }
            },
            Err(_) => break,
        }
    }
    drop(chunks);
    let _ = done.send(());
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let error_type = parsed["errorType"]
        .as_str()
        .or_else(|| headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()))
        .unwrap_or("Unhandled")
        .to_string();
    let message = parsed["errorMessage"].as_str().unwrap_or("").to_string();
    match api.pending.lock().unwrap().remove(&id) {
        Some(p) => {
            let _ = p.reply.send(Err(InvokeError::Function { error_type, message }));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: Bytes) -> StatusCode {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message =
        parsed["errorMessage"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body).into());
    *api.init_error.lock().unwrap() = Some(format!("init failed: {message}"));
    StatusCode::ACCEPTED
}
