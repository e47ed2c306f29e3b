//! The seed built with the Azure SDK for Python (azure-identity + azure-mgmt-resource/-network,
//! their long-running-operation pollers) against two empty sites: tests/sdk/build_seed.py
//! creates every resource on both sites; then both connections come up and the VMs ping each
//! other across the tunnel.

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::az::sdk_python;
use testkit::lab::{repo_root, scratch_dir, show, Lab};

#[test]
fn the_python_sdk_builds_the_seed() {
    let lab = Lab::up("examples/empty-sites");
    let status = lab.status();
    let api = &status["api"];
    let dir = scratch_dir("sdk");
    let api_file = dir.join("api.json");
    std::fs::write(&api_file, api.to_string()).unwrap();
    let out = Command::new(sdk_python())
        .arg(repo_root().join("tests/sdk/build_seed.py"))
        .arg(&api_file)
        .env("REQUESTS_CA_BUNDLE", api["caFile"].as_str().unwrap())
        .output()
        .expect("run the SDK script");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "build_seed.py:\n{}", show(&out));
    let vms: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let (azure_vm, hub_vm) = (
        vms["azure_vm"].as_str().unwrap(),
        vms["hub_vm"].as_str().unwrap(),
    );

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let st = lab.status();
        let connected = st["sites"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["connections"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["connectionStatus"] == "Connected")
            .count();
        if connected == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "connections not up: {st:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(lab.ping("azure/vm", hub_vm), "azure/vm -> {hub_vm}");
    assert!(
        lab.ping("stackhub/vm", azure_vm),
        "stackhub/vm -> {azure_vm}"
    );
}
