//! `command` with real processes: environment, failures, and what dropping
//! the step does to the process and its children.

mod actuators_support;

use std::path::Path;
use std::time::{Duration, Instant};

use actuators_support::{ctx, params};
use cutover_orchestrate::actuators::{StepError, run_external};
use serde_json::json;

#[tokio::test]
async fn the_program_sees_the_incident_and_its_env() {
    let work = tempfile::tempdir().unwrap();
    let script = "echo \"$CUTOVER_INCIDENT $CUTOVER_KIND $CUTOVER_SOURCE>$CUTOVER_TARGET [$CUTOVER_STEP] $EXTRA\"; pwd";
    let with = params(json!({"program": "sh", "args": ["-c", script], "env": {"EXTRA": "x1"}, "cwd": work.path()}));

    let result = run_external("command", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    let cwd = work.path().canonicalize().unwrap();
    let stdout = format!("inc-42 failover primary>standby [test step] x1\n{}\n", cwd.display());
    assert_eq!(result, json!({"exit": 0, "stdout": stdout, "stderr": ""}));
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_code_and_stderr() {
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"program": "sh", "args": ["-c", "echo out; echo 'no route to standby' >&2; exit 3"]}));

    let err = run_external("command", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    assert_eq!(err, StepError::Failed("sh exited with code 3: no route to standby\n".into()));
}

#[tokio::test]
async fn output_is_cut_to_2_kib_without_blocking_the_program() {
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"program": "sh", "args": ["-c", "head -c 1000000 /dev/zero | tr '\\0' a"]}));

    let result = run_external("command", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    assert_eq!(result["stdout"].as_str().unwrap(), "a".repeat(2048));
}

#[tokio::test]
async fn a_missing_program_is_a_failure_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"program": "/nonexistent/cutover-hook"}));

    let err = run_external("command", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    assert!(err.to_string().starts_with("cannot start /nonexistent/cutover-hook: "), "{err}");
}

#[tokio::test]
async fn dropping_the_step_kills_the_program_and_its_children() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let script = "sleep 30 & echo $! > child.pid; echo $$ > leader.pid; wait";
    let with = params(json!({"program": "sh", "args": ["-c", script], "cwd": dir}));
    let ctx = ctx(dir, &[]);

    // Run the step until the script has started its child, then drop it, as
    // the engine does on a timeout.
    let mut step = Box::pin(run_external("command", &with, &ctx));
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        if let Ok(outcome) = tokio::time::timeout(Duration::from_millis(50), &mut step).await {
            panic!("the command ended: {outcome:?}");
        }
        if let (Some(leader), Some(child)) = (read_pid(&dir.join("leader.pid")), read_pid(&dir.join("child.pid"))) {
            break [leader, child];
        }
        assert!(Instant::now() < deadline, "the script did not start");
    };
    drop(step);

    for pid in pids {
        assert!(gone_within(pid, Duration::from_secs(10)), "process {pid} still runs");
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the process ends (or is only a zombie left to its reaper).
fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let gone = match stat {
            Err(_) => true,
            Ok(s) => s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if gone {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
