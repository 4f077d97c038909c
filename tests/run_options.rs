//! `twz-vmm run` options that are not about the guest image: the store on persistent memory and
//! the durability mode.

mod common;

#[test]
fn pmem_on_a_plain_filesystem_is_refused_before_anything_runs() {
    if !common::kvm_available("pmem_on_a_plain_filesystem_is_refused_before_anything_runs") {
        return;
    }
    let dir = common::temp_store();
    let pmem = dir.path().join("pmem-store");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twz-vmm"))
        .arg("--pmem")
        .arg(&pmem)
        .args(["run", "hello"])
        .env_remove("TWZ_STORE")
        .output()
        .expect("spawn twz-vmm");
    assert!(
        !out.status.success(),
        "a non-DAX --pmem store must be refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not on a DAX filesystem") && stderr.contains("MAP_SYNC"),
        "stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "the guest must not have run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_durability_mode_runs_and_unknown_ones_are_refused() {
    if !common::kvm_available("every_durability_mode_runs_and_unknown_ones_are_refused") {
        return;
    }
    let store = common::temp_store();
    for mode in ["none", "commit", "group"] {
        let out = common::ok(store.path(), &["run", "hello", "--durability", mode]);
        assert!(out.starts_with("Hello from a twz guest!"), "{mode}: {out}");
    }
    let err = common::fails(store.path(), &["run", "hello", "--durability", "sometimes"]);
    assert!(err.contains("invalid value 'sometimes'"), "{err}");
}
