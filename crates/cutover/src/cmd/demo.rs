//! `cutover demo`: two S3 backends run in this process (s3s-fs on temporary
//! directories); cutover probes them, validates the standby, injects a real
//! outage into the primary (it stops answering), shows the probes classify
//! it, then lifts it and shows recovery.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use cutover_core::Secret;
use cutover_core::config::load_str;
use cutover_lab::s3sfs::S3sFs;
use cutover_s3::probe::probe_cycle;
use cutover_s3::{ClientOptions, Credentials, S3Client};

use crate::{Failure, runtime};

pub fn run() -> Result<(), Failure> {
    let started = Instant::now();
    say("starting two S3 backends in this process: cloud-a (primary) and cloud-b (secondary)");
    let a = S3sFs::start("app-data").context("starting cloud-a")?;
    let b = S3sFs::start("app-data").context("starting cloud-b")?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let toml = format!(
        "[state]\npath = \"demo.db\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"1s\"\n\n\
         [[backends]]\nname = \"cloud-a\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"app-data\"\nrole = \"primary\"\n\
         credentials = {{ access_key_id_env = \"CLOUD_A_KEY\", secret_access_key_env = \"CLOUD_A_SECRET\" }}\n\n\
         [[backends]]\nname = \"cloud-b\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"app-data\"\nrole = \"secondary\"\n\
         credentials = {{ access_key_id_env = \"CLOUD_B_KEY\", secret_access_key_env = \"CLOUD_B_SECRET\" }}\n",
        a.endpoint(),
        b.endpoint()
    );
    let secrets: HashMap<&str, String> = HashMap::from([
        ("CLOUD_A_KEY", a.key_id.clone()),
        ("CLOUD_A_SECRET", a.secret.clone()),
        ("CLOUD_B_KEY", b.key_id.clone()),
        ("CLOUD_B_SECRET", b.secret.clone()),
    ]);
    let config =
        load_str(&toml, "demo.toml", dir.path(), &|k| secrets.get(k).cloned()).context("demo configuration")?;
    let opts = ClientOptions::probe(config.probe.timeout);
    let client = |name: &str, server: &S3sFs| {
        let creds = Credentials {
            access_key_id: server.key_id.clone(),
            secret_access_key: Secret::new(server.secret.clone()),
            session_token: None,
        };
        S3Client::new(config.backend(name).expect("demo backend"), creds, opts)
    };
    let (ca, cb) = (client("cloud-a", &a), client("cloud-b", &b));
    let probe = &config.probe;
    let mut objectives = Vec::new();

    runtime().block_on(async {
        say("probing both backends (PUT → GET + checksum → HEAD → DELETE)");
        for c in [&ca, &cb] {
            let r = probe_cycle(c, &probe.prefix, probe.object_size).await;
            let ops: Vec<String> = r.ops.iter().map(|o| format!("{} {:.1}ms", o.op, o.ms)).collect();
            say(&format!("  {:<8} {:<4} {}", r.backend, r.outcome, ops.join("  ")));
            objectives.push((
                if r.backend == "cloud-a" { "cloud-a healthy at start" } else { "cloud-b healthy at start" },
                r.ok,
            ));
        }

        say("validating the standby cloud-b with the smoke suite");
        let v = cutover_s3::validate::run(&cb, &Default::default(), &probe.prefix).await;
        for c in &v.checks {
            let mark = if c.skipped {
                "skip"
            } else if c.ok {
                "ok"
            } else {
                "FAIL"
            };
            say(&format!("  {mark:<5} {:<14} {}", c.name, c.detail));
        }
        objectives.push(("standby validated", v.ok));

        say("injecting an outage: cloud-a stops answering (connections accepted, never served)");
        a.hang();
        let outage = Instant::now();
        let r = probe_cycle(&ca, &probe.prefix, probe.object_size).await;
        say(&format!(
            "  cloud-a probe: {} after {:.1}s (the probe deadline is {:?})",
            r.outcome,
            outage.elapsed().as_secs_f64(),
            probe.timeout
        ));
        objectives.push(("outage classified as Timeout", r.outcome == cutover_core::Outcome::Timeout));
        let rb = probe_cycle(&cb, &probe.prefix, probe.object_size).await;
        say(&format!("  cloud-b probe: {} (the standby is unaffected)", rb.outcome));
        objectives.push(("standby healthy during the outage", rb.ok));

        say("lifting the outage");
        a.resume();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = probe_cycle(&ca, &probe.prefix, probe.object_size).await;
        say(&format!("  cloud-a probe: {}", r.outcome));
        objectives.push(("cloud-a healthy again", r.ok));
    });

    say(&format!("summary ({:.1}s):", started.elapsed().as_secs_f64()));
    for (what, ok) in &objectives {
        say(&format!("  {} {what}", if *ok { "met   " } else { "MISSED" }));
    }
    if objectives.iter().all(|(_, ok)| *ok) { Ok(()) } else { Err(Failure::Failed) }
}

fn say(line: &str) {
    println!("[demo] {line}");
}
