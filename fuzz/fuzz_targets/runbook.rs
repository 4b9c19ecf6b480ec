//! The runbook parser and checker (crates/orchestrate/src/runbook.rs), as
//! `cutover runbook check` and the engine run it: TOML text → steps with
//! their calls checked against each actuator's parameters; then, for a
//! runbook that checks, what the engine does with each step before running
//! it: render the templates with an incident's values and redact the
//! result for the timeline.
//!
//! Input: a runbook file. Checks, besides "no panic, no hang": a refused
//! runbook names at least one problem; a runbook that checks renders
//! (its templates were checked) with any values.
#![no_main]

use cutover_orchestrate::runbook::{Vars, parse, redact, render, render_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Values an incident could carry: an approver's comment is free text.
    let vars = Vars {
        incident: "inc-1".into(),
        backend: "primary".into(),
        source: "primary".into(),
        target: "secondary".into(),
        reason: text.chars().take(64).collect(),
        kind: "failover".into(),
    };
    let _ = render_str(text, &vars);
    for backends in [&["primary", "secondary"][..], &[][..]] {
        match parse(text, "fuzz.toml", backends) {
            Ok(rb) => {
                assert!(!rb.steps.is_empty(), "a runbook without steps checked");
                for step in &rb.steps {
                    for call in std::iter::once(&step.call).chain(step.undo.as_ref()) {
                        let rendered = render(&call.with, &vars).expect("checked templates render");
                        let _ = redact(&rendered);
                    }
                }
            }
            Err(e) => {
                assert!(!e.problems.is_empty(), "refused without a problem");
                let _ = e.to_string();
            }
        }
    }
});
