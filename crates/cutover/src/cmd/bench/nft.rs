//! The `nft-drop` fault: an nftables table `inet cutover_bench` that drops
//! TCP to the primary's port on `lo` (needs root and `nft`).

use std::io::Write;
use std::process::{Command, Stdio};

use super::error::BenchError;

const NFT_TABLE: &str = "cutover_bench";

fn nft(args: &[&str], stdin: Option<&str>) -> Result<(), BenchError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BenchError::NftSpawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(BenchError::NftSpawn)?;
    }
    let out = child.wait_with_output().map_err(BenchError::NftSpawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Nft { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// Whether nftables can be used here (root, `nft` installed); removes a
/// table left behind by an interrupted run.
pub fn nft_usable() -> Result<(), BenchError> {
    // A table left behind may or may not exist: either is fine.
    let _ = nft_delete();
    nft(&["add", "table", "inet", NFT_TABLE], None)?;
    nft_delete()
}

/// Drops TCP to `port` on lo, both ways through the output and input hooks.
pub fn nft_drop(port: u16) -> Result<(), BenchError> {
    let rules = format!(
        "table inet {NFT_TABLE} {{\n\
         chain output {{ type filter hook output priority 0; policy accept; oifname \"lo\" tcp dport {port} drop; }}\n\
         chain input {{ type filter hook input priority 0; policy accept; iifname \"lo\" tcp dport {port} drop; }}\n}}\n"
    );
    nft(&["-f", "-"], Some(&rules))
}

/// Removes the table (and with it the drop rules).
pub fn nft_delete() -> Result<(), BenchError> {
    nft(&["delete", "table", "inet", NFT_TABLE], None)
}
