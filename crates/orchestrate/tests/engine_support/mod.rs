//! Shared by the engine tests: a store in a temporary directory, an engine
//! whose built-in actuators only record, and a dump of every row the state
//! database holds (what the API, the console and `audit verify` read).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cutover_core::domain::RunKind;
use cutover_orchestrate::actuators::StepError;
use cutover_orchestrate::engine::{BoxFut, Engine, Host, Job, RunOutcome};
use cutover_orchestrate::runbook::{self, Runbook};
use cutover_store::prelude::*;
use cutover_store::{Fence, SqliteStore};
use serde_json::{Value, json};

/// `state.switch` and `validate` that record their calls; `validate` of a
/// backend named `broken` fails.
#[derive(Debug, Default)]
pub struct RecordingHost {
    pub calls: Mutex<Vec<String>>,
}

impl Host for RecordingHost {
    fn switch<'a>(&'a self, to: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("switch {to}"));
            Ok(json!({"active": to}))
        })
    }
    fn validate<'a>(&'a self, backend: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("validate {backend}"));
            if backend == "broken" {
                return Err(StepError::Failed("PUT: 503 SlowDown".into()));
            }
            Ok(json!({"passed": 9}))
        })
    }
    fn resync(&self, _rounds: u32, _since: Option<std::time::SystemTime>) -> BoxFut<'_, Result<Value, StepError>> {
        Box::pin(async move { Ok(json!({"copied": 0})) })
    }
    /// Records `kubernetes.patch NS/NAME PROVIDER`; a provider named
    /// `degraded` is refused (the operator rolled back).
    fn kubernetes_patch<'a>(
        &'a self,
        params: &'a cutover_orchestrate::actuators::Params,
        _timeout: std::time::Duration,
    ) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let p = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let provider = p("provider");
            self.calls.lock().unwrap().push(format!("kubernetes.patch {}/{} {provider}", p("namespace"), p("name")));
            if provider == "degraded" {
                return Err(StepError::Refused("StorageBackend prod/app-storage is Degraded at generation 2".into()));
            }
            Ok(json!({"generation": 2, "provider": provider}))
        })
    }
}

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub store: Arc<dyn Store>,
    pub host: Arc<RecordingHost>,
    pub engine: Engine,
}

/// An engine over a fresh store; `env` is the whole environment it sees.
pub fn bench(env: &[(&str, &str)]) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let host = Arc::new(RecordingHost::default());
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let engine = Engine::new(
        store.clone(),
        host.clone(),
        dir.path().join("work"),
        Arc::new(move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
        Arc::new(|_| {}),
    );
    Bench { dir, db, store, host, engine }
}

impl Bench {
    /// A job for a new incident on `primary`, failing over to `target`.
    pub fn job(&self, target: &str, reason: &str) -> Job {
        let incident = self.store.open_incident(&Fence::local(), "primary", SystemTime::now()).unwrap();
        Job {
            incident,
            backend: "primary".into(),
            kind: RunKind::Failover,
            source: "primary".into(),
            target: target.into(),
            reason: reason.into(),
            actor: "controller".into(),
        }
    }

    pub async fn run(&self, job: &Job, text: &str) -> RunOutcome {
        let rb: Runbook = runbook::parse(text, "test.toml", &[]).unwrap_or_else(|e| panic!("{e}"));
        self.engine.run(job, &rb).await.unwrap().1
    }

    /// Every value of every row of every table of the state database, as text.
    pub fn dump(&self) -> String {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = String::new();
        for t in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                out.push_str(&t);
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i).unwrap();
                    out.push_str(" | ");
                    out.push_str(&match v {
                        rusqlite::types::Value::Text(s) => s,
                        rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => format!("{other:?}"),
                    });
                }
                out.push('\n');
            }
        }
        out
    }

    /// Asserts that none of `secrets` is in any row, and that the rows hold
    /// the step journal at all (so the check cannot pass on an empty database).
    pub fn assert_stored_without(&self, secrets: &[&str]) {
        let dump = self.dump();
        assert!(dump.contains("run_steps |") && dump.contains("timeline |") && dump.contains("audit |"), "{dump}");
        for s in secrets {
            assert!(!dump.contains(s), "{s:?} is stored:\n{dump}");
        }
    }
}
