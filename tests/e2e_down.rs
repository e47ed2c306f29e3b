//! `lab down` of the running seed leaves nothing behind: no namespace with the lab's prefix,
//! no gateway process (the detached supervisors and their `hybridnet gateway run` children are
//! stopped), no control socket, no state directory.

use testkit::lab::{show, Lab};

#[test]
fn lab_down_removes_gateways_namespaces_and_state() {
    let lab = Lab::up("examples/hybrid-connection");
    let gw_dir = lab.state.join("labs").join(&lab.id).join("gateways");
    let mut pids = Vec::new();
    for side in ["azure--azure-gw", "stackhub--stackhub-gw"] {
        let rec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(gw_dir.join(format!("{side}.json"))).unwrap(),
        )
        .unwrap();
        let pid = rec["pid"].as_i64().unwrap();
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{side} runs"
        );
        pids.push(pid);
    }
    assert_eq!(lab.namespaces().len(), 7, "{:?}", lab.namespaces());
    let out = lab.down();
    assert!(out.status.success(), "{}", show(&out));
    assert!(lab.namespaces().is_empty(), "left: {:?}", lab.namespaces());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        assert!(
            stat.is_empty() || zombie,
            "gateway pid {pid} still runs: {stat}"
        );
    }
    assert!(
        !lab.state.join("labs").join(&lab.id).exists(),
        "state directory removed"
    );
    let status = lab.run(&["lab", "status", "--id", &lab.id]);
    assert!(
        !status.status.success(),
        "the lab is gone:\n{}",
        show(&status)
    );
}
