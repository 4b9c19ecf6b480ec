//! The configuration pipeline (crates/core/src/config): TOML text → parse
//! (unknown keys collected) → validate (every problem, each with its path),
//! without I/O, as `cutover check` and every command run it; then what the
//! controller derives from a valid configuration at start-up (the next run
//! of each scheduled drill). Also the shared credentials file reader.
//!
//! Input: a configuration file. Checks, besides "no panic, no hang": an
//! invalid configuration names at least one problem, each with a path and
//! a message.
#![no_main]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use cutover_core::config::{load_str, parse_shared_credentials};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Every credentials variable is set (to reach what follows that check).
    let env = |_: &str| Some("set".to_string());
    match load_str(text, "fuzz.toml", Path::new("/etc/cutover"), &env) {
        Ok(config) => {
            let now = UNIX_EPOCH + Duration::from_secs(1_764_800_000);
            for d in &config.drills {
                let _ = d.cron.next_after(now);
            }
            let _ = config.primary();
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused without a problem");
            for p in &e.problems {
                assert!(!p.message.is_empty(), "a problem without a message at {:?}", p.path);
            }
            let _ = e.to_string();
        }
    }
    let _ = parse_shared_credentials(text, "default");
});
