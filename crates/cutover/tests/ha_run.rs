//! Issue 14 points 2, 3 and 6, against a real three-member etcd cluster:
//! two `cutover run` processes with `[ha]` share one state in etcd; one
//! leads and acts, the other probes and stands by. A local HTTP receiver
//! records every step call with the fencing token it carries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{Received, Receiver};
use common::run_process::{HARNESS_VIEWER_TOKEN, RunProcess, request_with_head};
use common::{Backend, Setup, sha256_hex, start_s3sfs};
use cutover_lab::etcd::EtcdCluster;
use serde_json::json;

const ADMIN: &str = "ha-run-admin-token";
const LEASE_TTL: Duration = Duration::from_secs(3);

/// One controller node's configuration: `[ha]` with `name`, an admin
/// token, and a failover runbook whose second step is slow.
fn node(name: &str, prefix: &str, endpoints: &[String], backends: &[Backend], hook: u16) -> Setup {
    node_with(name, prefix, endpoints, backends, hook, &Extra::default())
}

/// More configuration for both nodes: text at the end, and files next to it.
#[derive(Default)]
struct Extra<'a> {
    config: String,
    files: Vec<(&'a str, &'a str)>,
}

/// [`node`] with `extra`.
fn node_with(name: &str, prefix: &str, endpoints: &[String], backends: &[Backend], hook: u16, extra: &Extra) -> Setup {
    let etcd: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let toml = format!(
        "[ha]\netcd = [{}]\nprefix = \"{prefix}\"\nnode = \"{name}\"\nlease_ttl = \"{}s\"\n\
         [api]\nlisten = \"127.0.0.1:1\"\n[[api.tokens]]\nname = \"boss\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [runbooks]\nfailover = \"failover.toml\"\n{}",
        etcd.join(", "),
        LEASE_TTL.as_secs(),
        sha256_hex(ADMIN),
        extra.config
    );
    let setup = Setup::new(backends, &toml);
    for (name, text) in &extra.files {
        std::fs::write(setup.dir.path().join(name), text).unwrap();
    }
    let hook = format!("http://127.0.0.1:{hook}");
    let runbook = format!(
        "[[steps]]\nname = \"announce\"\nuses = \"http\"\nwith = {{ url = \"{hook}/before\", body = \"{{{{ fencing.token }}}}\" }}\n\
         [[steps]]\nname = \"slow\"\nuses = \"command\"\nwith = {{ program = \"sleep\", args = [\"4\"] }}\ntimeout = \"30s\"\n\
         [[steps]]\nname = \"switch\"\nuses = \"state.switch\"\nwith = {{ to = \"{{{{ target }}}}\" }}\n\
         [[steps]]\nname = \"done\"\nuses = \"http\"\nwith = {{ url = \"{hook}/after\", body = \"{{{{ fencing.token }}}}\" }}\n"
    );
    std::fs::write(setup.dir.path().join("failover.toml"), runbook).unwrap();
    setup
}

fn role(c: &RunProcess) -> String {
    c.json("/v1/status")["role"].as_str().unwrap_or("").to_string()
}

/// The calls to `path`, with the token each carried.
fn calls(r: &Receiver, path: &str) -> Vec<i64> {
    r.received().iter().filter(|q: &&Received| q.path == path).map(token).collect()
}

fn token(q: &Received) -> i64 {
    let header = q.headers.iter().find(|(k, _)| k == "x-cutover-fencing-token").map(|(_, v)| v.clone());
    let header: i64 = header.unwrap_or_else(|| panic!("no fencing token header: {q:?}")).parse().unwrap();
    assert_eq!(q.body, header.to_string(), "{{{{ fencing.token }}}} and the header agree");
    header
}

/// Every call's token, in the order the receiver got them: a deposed
/// leader's token never follows a newer one.
fn assert_tokens_never_go_back(r: &Receiver) -> Vec<i64> {
    let tokens: Vec<i64> = r.received().iter().map(token).collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "an older token after a newer one: {tokens:?}");
    tokens
}

/// Whichever of `nodes` says it leads now.
fn leader<'a>(nodes: &[&'a RunProcess]) -> Option<&'a RunProcess> {
    nodes.iter().copied().find(|c| role(c) == "leader")
}

fn wait(what: &str, limit: Duration, logs: &[&RunProcess], mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            let logs: Vec<String> = logs.iter().map(|c| c.logs()).collect();
            panic!("timed out waiting for {what}; logs:\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// etcd, two backends, the receiver, and two controller nodes: `ctl-a`
/// leads (its token returned), `ctl-b` stands by naming it.
struct Pair {
    cluster: EtcdCluster,
    backends: (cutover_lab::s3sfs::S3sFs, cutover_lab::s3sfs::S3sFs),
    hook: Receiver,
    a: RunProcess,
    b: RunProcess,
    token_a: i64,
    setups: (Setup, Setup),
}

fn pair(prefix: &str) -> Pair {
    let cluster = EtcdCluster::start().unwrap_or_else(|e| panic!("etcd cluster: {e}"));
    let endpoints = cluster.endpoints();
    pair_on(cluster, prefix, &endpoints)
}

/// As [`pair`], `ctl-a` reaching etcd through `endpoints_a`.
fn pair_on(cluster: EtcdCluster, prefix: &str, endpoints_a: &[String]) -> Pair {
    pair_with(cluster, prefix, endpoints_a, &Extra::default())
}

/// [`pair_on`] with `extra` for both nodes.
fn pair_with(cluster: EtcdCluster, prefix: &str, endpoints_a: &[String], extra: &Extra) -> Pair {
    let (p, s) = (start_s3sfs(), start_s3sfs());
    let backends = [Backend::s3sfs("primary", "primary", &p), Backend::s3sfs("secondary", "secondary", &s)];
    let hook = Receiver::start();
    let endpoints = cluster.endpoints();
    let setup_a = node_with("ctl-a", prefix, endpoints_a, &backends, hook.port, extra);
    let a = RunProcess::start(&setup_a);
    wait("ctl-a leads", Duration::from_secs(20), &[&a], || role(&a) == "leader");
    let setup_b = node_with("ctl-b", prefix, &endpoints, &backends, hook.port, extra);
    let b = RunProcess::start(&setup_b);
    wait("ctl-b stands by", Duration::from_secs(20), &[&b], || b.json("/v1/status")["leader"]["node"] == "ctl-a");
    let status_b = b.json("/v1/status");
    assert_eq!(status_b["role"], "standby", "{status_b}");
    let token_a = a.json("/v1/status")["leader"]["token"].as_i64().unwrap();
    assert_eq!(status_b["leader"]["token"], token_a, "{status_b}");
    Pair { cluster, backends: (p, s), hook, a, b, token_a, setups: (setup_a, setup_b) }
}

/// Forces a failover on the leader and waits for the runbook's first step.
fn fail_over_and_wait_for_the_first_step(pair: &Pair) {
    let (code, answer) = pair.a.post("/v1/failover", Some(ADMIN), &json!({"target": "secondary", "reason": "ha test"}));
    assert_eq!(code, 202, "{answer}");
    wait("the first step", Duration::from_secs(20), &[&pair.a], || !calls(&pair.hook, "/before").is_empty());
    assert_eq!(calls(&pair.hook, "/before"), [pair.token_a]);
    wait_for_the_first_step_recorded(&pair.a);
}

/// Waits until the journal holds the first step's result (a step whose
/// call was made but whose result was not recorded runs again).
fn wait_for_the_first_step_recorded(c: &RunProcess) {
    wait("the first step's result in the journal", Duration::from_secs(10), &[c], || {
        let incidents = c.json("/v1/incidents");
        let Some(id) = incidents[0]["id"].as_str() else { return false };
        let timeline = c.json(&format!("/v1/incidents/{id}"))["timeline"].clone();
        timeline.as_array().into_iter().flatten().any(|e| e["kind"] == "step" && e["detail"]["step"] == "announce")
    });
}

/// Waits until `c`'s only incident's only run completed.
fn wait_for_the_run_to_complete(c: &RunProcess) {
    let incidents = c.json("/v1/incidents");
    let id = incidents[0]["id"].as_str().unwrap_or_else(|| panic!("{incidents}")).to_string();
    let run = || c.json(&format!("/v1/incidents/{id}"))["runs"].clone();
    wait("the run's end", Duration::from_secs(30), &[c], || run()[0]["state"] == "completed");
    assert_eq!(run().as_array().map(Vec::len), Some(1), "one run, resumed: {}", run());
}

#[test]
fn kill_9_of_the_leader_during_a_slow_step_hands_the_run_to_the_standby() {
    let mut pair = pair("/cutover/ha-run-kill");
    let (token_a, hook) = (pair.token_a, pair.hook.clone());

    // A mutating request on the standby is forwarded to the leader, which
    // takes it (an unknown token is refused there, as it would be here).
    let body = json!({"target": "secondary", "reason": "ha test"}).to_string();
    let (code, _, answer) = request_with_head(pair.b.port(), "POST", "/v1/failover", Some("not-a-token"), &body);
    assert_eq!(code, 401, "{answer}");
    // A body too large is refused by the standby as by the leader, unsent.
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(66_000));
    let on_a = request_with_head(pair.a.port(), "POST", "/v1/failover", Some(ADMIN), &huge).0;
    let on_b = request_with_head(pair.b.port(), "POST", "/v1/failover", Some(ADMIN), &huge).0;
    assert!((400..500).contains(&on_a) && on_a == on_b, "leader {on_a}, standby {on_b}");
    let (code, head, answer) = request_with_head(pair.b.port(), "POST", "/v1/failover", Some(ADMIN), &body);
    assert_eq!(code, 202, "{head}\n{answer}");
    assert!(head.to_ascii_lowercase().contains("x-cutover-forwarded-to: ctl-a"), "{head}");
    // The CLI sent to the standby gets the leader's answer the same way:
    // the failover is under way, so a second one is refused.
    let api_b = format!("http://127.0.0.1:{}", pair.b.port());
    let out = pair.b.cli(
        &["failover", "--target", "secondary", "--reason", "ha test", "--api", &api_b, "--token-env", "HA_ADMIN"],
        &[("HA_ADMIN", ADMIN)],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("409 Conflict") && out.stderr.contains("running a runbook"), "{out:?}");

    // The leader completes the first step and is killed during the slow one.
    wait("the first step", Duration::from_secs(20), &[&pair.a], || !calls(&hook, "/before").is_empty());
    assert_eq!(calls(&hook, "/before"), [token_a]);
    wait_for_the_first_step_recorded(&pair.a);
    pair.a.kill();
    let b = &pair.b;
    let took = wait("ctl-b leads", LEASE_TTL * 4, &[b], || role(b) == "leader");
    println!("takeover after kill -9 of the leader: {took:?} (lease_ttl {LEASE_TTL:?})");

    // The new leader resumes the run: the completed step does not run
    // again, the rest runs with newer tokens only (leadership may move
    // again on a loaded machine, but never back to an older token).
    wait("the run's last step", Duration::from_secs(30), &[b], || !calls(&hook, "/after").is_empty());
    wait_for_the_run_to_complete(b);
    assert_eq!(calls(&hook, "/before"), [token_a], "the completed step ran once");
    assert!(calls(&hook, "/after").iter().all(|t| *t > token_a), "{:?}", calls(&hook, "/after"));
    assert_tokens_never_go_back(&hook);
    let status = b.json("/v1/status");
    assert_eq!(status["active"], "secondary", "{status}");

    // The HA metrics.
    let (code, metrics) = b.get("/metrics");
    assert_eq!(code, 200);
    for family in ["cutover_ha_switch_ack_seconds histogram", "cutover_ha_renew_latency_seconds gauge"] {
        assert!(metrics.contains(&format!("# TYPE {family}")), "{family}: {metrics}");
    }
    assert!(metrics.contains("\ncutover_ha_etcd_up 1\n"), "{metrics}");
}

#[test]
fn a_leader_paused_past_its_lease_writes_nothing_more_and_stands_by() {
    let pair = pair("/cutover/ha-run-stop");
    let (token_a, hook) = (pair.token_a, pair.hook.clone());
    fail_over_and_wait_for_the_first_step(&pair);

    // SIGSTOP during the slow step, for longer than the lease.
    pair.a.signal("STOP");
    let b = &pair.b;
    wait("ctl-b leads", LEASE_TTL * 4, &[b], || role(b) == "leader");
    std::thread::sleep(Duration::from_secs(1));
    pair.a.signal("CONT");

    // The old leader's step finished while it slept; it must write nothing
    // and call nothing more with its token: the new leader resumes and
    // completes the run.
    wait_for_the_run_to_complete(b);
    wait("ctl-a no longer acts on its old token", Duration::from_secs(10), &[&pair.a], || {
        let s = pair.a.json("/v1/status");
        s["role"] == "standby" || s["leader"]["token"].as_i64() > Some(token_a)
    });
    // A standby's status follows the active backend the leader set.
    wait("ctl-a shows the switch", Duration::from_secs(10), &[&pair.a], || {
        pair.a.json("/v1/status")["active"] == "secondary"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(calls(&hook, "/before"), [token_a], "the completed step ran once");
    assert!(calls(&hook, "/after").iter().all(|t| *t > token_a), "{:?}", calls(&hook, "/after"));
    assert_tokens_never_go_back(&hook);

    // One continuous audit chain across the leaders.
    let current = leader(&[&pair.a, b]).unwrap_or(b);
    let out = current.cli(&["audit", "verify", "--json"], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn a_leader_cut_off_from_etcd_stops_acting_before_the_standby_takes_over() {
    // ctl-a reaches each etcd member through a chaos proxy; ctl-b directly.
    let cluster = EtcdCluster::start().unwrap_or_else(|e| panic!("etcd cluster: {e}"));
    let proxies: Vec<cutover_chaos::Proxy> = cluster
        .endpoints()
        .iter()
        .map(|e| {
            let upstream = e.trim_start_matches("http://").to_string();
            cutover_chaos::Proxy::start("127.0.0.1:0".parse().unwrap(), &upstream).unwrap()
        })
        .collect();
    let via: Vec<String> = proxies.iter().map(|p| format!("http://{}", p.addr())).collect();
    let pair = pair_on(cluster, "/cutover/ha-run-cut", &via);
    let (token_a, hook) = (pair.token_a, pair.hook.clone());
    fail_over_and_wait_for_the_first_step(&pair);

    // Cut ctl-a off: every etcd request it makes goes unanswered.
    let cut = cutover_chaos::Faults { blackhole: true, ..Default::default() };
    for p in &proxies {
        p.set(cut.clone()).unwrap();
    }
    // Who says it leads, sampled until ctl-b leads.
    let (a, b) = (&pair.a, &pair.b);
    let (mut a_stopped, mut overlap) = (None, 0);
    let start = Instant::now();
    loop {
        let (ra, rb) = (role(a), role(b));
        // A status is a claim, not an act: a starved old leader may still
        // claim for a moment (its writes are refused by the fence, which
        // the receiver's tokens check below); counted and printed.
        overlap += usize::from(ra == "leader" && rb == "leader");
        if ra != "leader" && a_stopped.is_none() {
            a_stopped = Some(start.elapsed());
        }
        if rb == "leader" {
            break;
        }
        assert!(start.elapsed() < LEASE_TTL * 4, "ctl-b never led:\n{}\n-----\n{}", a.log(), b.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let b_leads = start.elapsed();
    wait("ctl-a stands by", LEASE_TTL * 4, &[a], || role(a) != "leader");
    let a_stopped = a_stopped.unwrap_or_else(|| start.elapsed());
    println!("cut off: ctl-a stood by after {a_stopped:?}, ctl-b led after {b_leads:?} ({overlap} samples of both)");

    // The standby completes the run; nothing more with ctl-a's token.
    wait_for_the_run_to_complete(b);
    assert_eq!(calls(&hook, "/before"), [token_a], "the completed step ran once");
    assert!(calls(&hook, "/after").iter().all(|t| *t > token_a), "{:?}", calls(&hook, "/after"));
    assert_tokens_never_go_back(&hook);
}

/// What a node's `/v1/status` says of its role and token (`None` while its
/// API does not answer).
fn sample(port: u16) -> Option<(String, Option<i64>)> {
    let (status, body) = common::run_process::request(port, "GET", "/v1/status", Some(HARNESS_VIEWER_TOKEN), "");
    let v: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    Some((v["role"].as_str()?.to_string(), v["leader"]["token"].as_i64()))
}

/// Samples every node's role until stopped; records every moment two
/// nodes said they lead.
struct Sampler {
    stop: Arc<AtomicBool>,
    both: Arc<Mutex<Vec<String>>>,
    samples: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(ports: Vec<u16>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let both: Arc<Mutex<Vec<String>>> = Arc::default();
        let samples: Arc<Mutex<usize>> = Arc::default();
        let (stop2, both2, samples2) = (stop.clone(), both.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let roles: Vec<_> = ports.iter().map(|p| sample(*p)).collect();
                let leaders: Vec<_> = roles.iter().flatten().filter(|(r, _)| r == "leader").collect();
                if leaders.len() > 1 {
                    both2.lock().unwrap().push(format!("{roles:?}"));
                }
                *samples2.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { stop, both, samples, thread: Some(thread) }
    }

    /// Stops; returns the moments with two leaders and the number of samples.
    fn finish(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let both = self.both.lock().unwrap().clone();
        let n = *self.samples.lock().unwrap();
        (both, n)
    }
}

/// SIGTERM, waits for the exit, and starts the node again on its port.
fn restart(c: &mut RunProcess, setup: &Setup) {
    c.terminate();
    let start = Instant::now();
    while c.try_wait().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "no exit after SIGTERM: {}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    *c = RunProcess::start_on(setup, c.port());
}

#[test]
fn a_rolling_restart_of_every_controller_keeps_one_leader_and_still_handles_an_outage() {
    let mut pair = pair("/cutover/ha-run-roll");
    let sampler = Sampler::start(vec![pair.a.port(), pair.b.port()]);

    // Restart the leader: SIGTERM resigns, the standby leads at once.
    let t = Instant::now();
    restart(&mut pair.a, &pair.setups.0);
    let b = &pair.b;
    wait("ctl-b leads", LEASE_TTL * 4, &[b], || role(b) == "leader");
    println!("SIGTERM of the leader, its exit and restart: the standby led within {:?}", t.elapsed());

    // A primary outage begins; the new leader is restarted while it is detected.
    pair.backends.0.hang();
    restart(&mut pair.b, &pair.setups.1);
    let (a, b) = (&pair.a, &pair.b);
    wait("a failover", Duration::from_secs(60), &[a, b], || {
        leader(&[a, b]).is_some_and(|l| l.json("/v1/incidents")[0]["state"] == "failed_over")
    });
    let l = leader(&[a, b]).unwrap();
    assert_eq!(l.json("/v1/status")["active"], "secondary");
    pair.backends.0.resume();

    let (both, n) = sampler.finish();
    assert!(n > 100, "the sampler ran: {n} samples");
    assert!(both.is_empty(), "two leaders at once: {both:?}");
    assert_tokens_never_go_back(&pair.hook);
}

#[test]
fn with_etcd_entirely_down_nobody_acts_and_nothing_switches_when_it_returns() {
    let mut pair = pair("/cutover/ha-run-etcd-down");
    for i in 0..3 {
        pair.cluster.member(i).kill().unwrap();
    }
    // The leader stops acting at its renew deadline; reads keep being answered.
    let (a, b) = (&pair.a, &pair.b);
    wait("nobody leads", LEASE_TTL * 4, &[a, b], || role(a) == "standby" && role(b) == "standby");
    let (code, answer) = a.post("/v1/failover", Some(ADMIN), &json!({"target": "secondary", "reason": "etcd down"}));
    assert_eq!(code, 503, "no node acts while etcd is down: {answer}");
    std::thread::sleep(LEASE_TTL);
    assert_eq!(a.json("/v1/status")["active"], "primary");

    // etcd back: one node leads again, and no switch happens.
    for i in 0..3 {
        pair.cluster.member(i).start_again().unwrap();
    }
    pair.cluster.wait_healthy(Duration::from_secs(30)).unwrap();
    let (a, b) = (&pair.a, &pair.b);
    wait("a leader again", Duration::from_secs(30), &[a, b], || leader(&[a, b]).is_some());
    std::thread::sleep(LEASE_TTL);
    let l = leader(&[a, b]).expect("still a leader");
    let status = l.json("/v1/status");
    assert_eq!((status["active"].as_str(), status["open_incidents"].as_u64()), (Some("primary"), Some(0)), "{status}");
    assert!(pair.hook.received().is_empty(), "no step ran: {:?}", pair.hook.received());
}

#[test]
fn regression_a_node_started_while_etcd_did_not_answer_panicked_instead_of_waiting() {
    // A site restart: the controller comes up before its etcd cluster. It
    // used to panic (the store's runtime dropped inside `cutover run`'s);
    // it now waits for etcd, saying so, and then leads.
    let mut cluster = EtcdCluster::start().unwrap_or_else(|e| panic!("etcd cluster: {e}"));
    let endpoints = cluster.endpoints();
    for i in 0..3 {
        cluster.member(i).kill().unwrap();
    }
    let (p, s) = (start_s3sfs(), start_s3sfs());
    let backends = [Backend::s3sfs("primary", "primary", &p), Backend::s3sfs("secondary", "secondary", &s)];
    let hook = Receiver::start();
    let setup = node("ctl-a", "/cutover/ha-run-late-etcd", &endpoints, &backends, hook.port);
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        for i in 0..3 {
            cluster.member(i).start_again().unwrap();
        }
        cluster
    });
    let a = RunProcess::start(&setup);
    let _cluster = back.join().unwrap();
    let logs = a.logs();
    assert!(logs.contains("etcd did not answer at start-up; trying again"), "{logs}");
    wait("ctl-a leads", Duration::from_secs(20), &[&a], || role(&a) == "leader");
    assert_eq!(a.json("/v1/status")["active"], "primary");
}

#[test]
fn regression_the_console_of_a_standby_refused_every_sign_in_as_unaudited() {
    // A policy that asks a human, and an approver's token, on both nodes.
    use common::console::{APPROVER, ASK_A_HUMAN, Client};
    let extra = Extra {
        config: format!(
            "[policy]\npath = \"ask.rego\"\n[[api.tokens]]\nname = \"{APPROVER}\"\nrole = \"approver\"\nsha256 = \"{}\"\n",
            sha256_hex(APPROVER)
        ),
        files: vec![("ask.rego", ASK_A_HUMAN)],
    };
    let cluster = EtcdCluster::start().unwrap_or_else(|e| panic!("etcd cluster: {e}"));
    let endpoints = cluster.endpoints();
    let pair = pair_with(cluster, "/cutover/ha-run-console", &endpoints, &extra);
    pair.backends.0.hang();
    let id = common::console::awaiting_incident(&pair.a);

    // The standby's console shows the incident from the shared state, and a
    // verdict sent there is not sent: it names the leader.
    let mut console = Client::new(pair.b.port());
    console.sign_in(APPROVER);
    let page = format!("/ui/incidents/{id}");
    let shown = console.get(&page);
    assert_eq!(shown.status, 200, "{shown:?}");
    let csrf = shown.hidden("csrf").expect("the approver's page has the verdict form");
    let sent = console.post_form(&format!("{page}/approve"), &[("csrf", &csrf), ("comment", "from the standby")]);
    assert_eq!(sent.status, 303, "{sent:?}");
    let after = console.get(&page).body;
    assert!(after.contains("this node is a standby; the leader is ctl-a"), "{after}");
    // The standby's sign-in is in its own audit log (only the leader writes
    // the shared chain in etcd).
    let local = cutover_store::SqliteStore::open(&pair.setups.1.dir.path().join("cutover.db")).unwrap();
    use cutover_store::AuditLog;
    let entries = local.audit_entries().unwrap();
    assert!(
        entries.iter().any(|e| e.action == "console.login" && e.actor == APPROVER && e.detail["standby"] == "ctl-b"),
        "{entries:?}"
    );
    assert_eq!(pair.a.json(&format!("/v1/incidents/{id}"))["state"], "awaiting_approval");

    // The standby's API forwards the same verdict to the leader, which acts.
    let body = json!({"comment": "via the standby's API"}).to_string();
    let path = format!("/v1/incidents/{id}/approve");
    let (code, head, answer) = request_with_head(pair.b.port(), "POST", &path, Some(APPROVER), &body);
    assert_eq!(code, 200, "{head}\n{answer}");
    assert!(head.to_ascii_lowercase().contains("x-cutover-forwarded-to: ctl-a"), "{head}");
    wait("the first step", Duration::from_secs(20), &[&pair.a], || !calls(&pair.hook, "/before").is_empty());
    assert_eq!(calls(&pair.hook, "/before"), [pair.token_a]);
    pair.backends.0.resume();
}
