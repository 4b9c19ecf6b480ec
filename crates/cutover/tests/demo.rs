//! `cutover demo` runs on embedded backends and exits 0 when its objectives are met.

mod common;

#[test]
fn the_demo_meets_its_objectives_without_a_tty() {
    let run = common::cutover(&["demo"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("outage classified as Timeout"), "{}", run.stdout);
    assert!(!run.stdout.contains("MISSED"), "{}", run.stdout);
}
