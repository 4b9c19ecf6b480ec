//! `cutover demo` runs the whole recovery on embedded backends, without a
//! TTY, and exits 0 only when its objectives were met.

mod common;

#[test]
fn the_demo_fails_over_falls_back_and_meets_its_objectives_without_a_tty() {
    let run = common::cutover(&["demo"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    for expected in [
        "cutover is running: API http://127.0.0.1:",
        "health cloud-a@local: suspect -> down",
        "decision inc-",
        "\"switch the gateway\" [state.switch] ok",
        "\"smoke-test the target\" [validate] ok",
        "failover completed",
        "\"copy back what was written during the outage\" [sync.resync] ok",
        "fallback completed",
        "lost: 0",
        "audit chain: ",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    if std::process::Command::new("git").arg("--version").output().is_ok() {
        assert!(out.contains("\"terraform vars\" [git.set] ok"), "{out}");
    }
    assert!(!out.contains("MISSED"), "{out}");
}
