//! `cutover operator crd` prints the CRD that `deploy/crd.yaml` holds; a
//! runbook with `kubernetes.patch` passes `runbook check`.

use std::process::Command;

#[test]
fn operator_crd_prints_the_committed_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover")).args(["operator", "crd"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crd.yaml"))
            .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout) == committed, "deploy/crd.yaml differs from `cutover operator crd`");
}

#[test]
fn a_kubernetes_patch_step_passes_runbook_check() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("rb.toml");
    std::fs::write(
        &runbook,
        "[[steps]]\nname = \"repoint the cluster\"\nuses = \"kubernetes.patch\"\n\
         with = { namespace = \"prod\", name = \"app-storage\", provider = \"{{ target }}\" }\ntimeout = \"15m\"\n\
         undo = { uses = \"kubernetes.patch\", with = { namespace = \"prod\", name = \"app-storage\", provider = \"{{ source }}\" } }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover")).args(["runbook", "check"]).arg(&runbook).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A literal provider that is not a configured backend is caught (with a configuration).
    std::fs::write(
        &runbook,
        "[[steps]]\nname = \"k\"\nuses = \"kubernetes.patch\"\nwith = { namespace = \"prod\", name = \"x\", force = \"yes\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover")).args(["runbook", "check"]).arg(&runbook).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("with.provider: missing required parameter"), "{err}");
    assert!(err.contains("with.force"), "{err}");
}
