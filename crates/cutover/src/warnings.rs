//! Runbook warnings (unset `*_env` variables, placeholders) as `runbook
//! check`, `runbook run --dry-run`, `config check` and `run` print them.

/// The process environment, for the warnings about unset variables.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Warnings go to standard error, one a line, `warning: FILE: steps[i] "name".with.FIELD: ...`.
pub fn print_warnings(origin: &str, warnings: &[cutover_core::Problem]) {
    for w in warnings {
        eprintln!("warning: {origin}: {w}");
    }
}
