//! `command`: run a program (no shell).
//!
//! Parameters:
//! - `program` (required): a path, or a name looked up in `PATH`.
//! - `args`: the arguments, an array of strings.
//! - `env`: extra environment variables (a table of strings).
//! - `cwd`: the working directory (default: cutover's).
//!
//! The program inherits cutover's environment plus `env`, plus the incident
//! in `CUTOVER_INCIDENT`, `CUTOVER_SOURCE`, `CUTOVER_TARGET`,
//! `CUTOVER_REASON`, `CUTOVER_KIND` and `CUTOVER_STEP`. Standard input is
//! empty.
//!
//! Result: `{"exit": 0, "stdout": "<first 2 KiB>", "stderr": "<first 2 KiB>"}`
//! (lossy UTF-8). A non-zero exit, or death by a signal, fails the step with
//! the code and the start of standard error.
//!
//! # Guarantees
//! - The program runs in its own process group. When the step's future is
//!   dropped (the engine's timeout, a shutdown), the program gets `SIGKILL`
//!   and so does its whole process group, so `sh -c` scripts do not leave
//!   their children running.
//! - Output beyond 2 KiB per stream is read and discarded: a chatty program
//!   never blocks on a full pipe.
//!
//! # Caveats
//! - Idempotent only if the program is; the engine may run it again.
//! - The output goes into the result and the audit log: a program must not
//!   print secrets.
//! - Processes that leave the group (`setsid`, daemons) are not killed.
//! - When the program exits normally, processes it left behind in its group
//!   keep running; while they hold its stdout or stderr open, the step waits
//!   for them (up to its timeout).

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::param;
use super::text::truncate_lossy;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("program", Kind::String, "the program to run (a path, or a name looked up in PATH)"),
    ParamSpec::optional("args", Kind::StringList, "its arguments"),
    ParamSpec::optional("env", Kind::StringMap, "extra environment variables"),
    ParamSpec::optional("cwd", Kind::String, "the working directory"),
];

/// How much of each output stream is kept.
const OUTPUT_KEPT: usize = 2048;

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let program = param::req_str(params, "program")?;
    let args = param::string_list(params, "args")?;
    let env = param::string_map(params, "env")?;
    let cwd = param::opt_str(params, "cwd")?;

    let mut command = Command::new(program);
    command
        .args(&args)
        .envs(&env)
        .envs(incident_env(ctx))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|e| {
        let place = cwd.map(|d| format!(" in {d}")).unwrap_or_default();
        StepError::Failed(format!("cannot start {program}{place}: {e}"))
    })?;
    // Declared after `child`, so dropped before it: the group is killed while
    // its leader is not yet reaped and its id cannot have been reused.
    let group = GroupKiller { pgid: child.id() };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (status, stdout, stderr) = tokio::join!(child.wait(), read_head(stdout), read_head(stderr));
    group.disarm();
    let status = status.map_err(|e| StepError::Failed(format!("waiting for {program}: {e}")))?;
    let (stdout, stderr) = (truncate_lossy(&stdout, OUTPUT_KEPT), truncate_lossy(&stderr, OUTPUT_KEPT));
    match status.code() {
        Some(0) => Ok(json!({ "exit": 0, "stdout": stdout, "stderr": stderr })),
        Some(code) => Err(StepError::Failed(format!("{program} exited with code {code}: {stderr}"))),
        None => Err(StepError::Failed(format!("{program} {}: {stderr}", killed(status)))),
    }
}

/// The incident's context for the program.
fn incident_env(ctx: &Ctx) -> BTreeMap<&'static str, &str> {
    BTreeMap::from([
        ("CUTOVER_INCIDENT", ctx.incident.as_str()),
        ("CUTOVER_SOURCE", ctx.source.as_str()),
        ("CUTOVER_TARGET", ctx.target.as_str()),
        ("CUTOVER_REASON", ctx.reason.as_str()),
        ("CUTOVER_KIND", ctx.kind.as_str()),
        ("CUTOVER_STEP", ctx.step.as_str()),
    ])
}

/// Reads a stream to its end and keeps its first [`OUTPUT_KEPT`] bytes.
async fn read_head(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut stream) = stream else { return kept };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn killed(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    format!("ended without an exit code ({status})")
}

/// Kills a process group with `SIGKILL` when dropped, unless disarmed.
/// (`kill_on_drop` reaches only the direct child; the group is reached with
/// the `kill` program, which needs no unsafe code.)
#[derive(Debug)]
struct GroupKiller {
    pgid: Option<u32>,
}

impl GroupKiller {
    fn disarm(mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            let result = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            tracing::debug!(pgid, ?result, "killed the process group of a dropped command");
        }
    }
}
