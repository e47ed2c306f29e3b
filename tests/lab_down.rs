//! `lab down` removes every namespace of the lab, the processes running in them, and the
//! lab's state directory; another lab running at the same time is untouched.

use std::time::Duration;
use testkit::lab::{hybridnet_cmd, show, Lab};
use testkit::process::wait_for_every;

#[test]
fn down_leaves_nothing_behind() {
    let lab = Lab::up("examples/two-sites");
    let other = Lab::up("examples/two-sites");
    assert_ne!(lab.id, other.id);
    let namespaces = lab.namespaces();
    // internet + 2 VNet routers + 6 VMs
    assert_eq!(namespaces.len(), 9, "{namespaces:?}");
    assert!(namespaces
        .iter()
        .all(|n| n.starts_with(&format!("hn-{}-", lab.id))));

    // A process left running inside a VM (like a server a user started).
    let mut sleeper = hybridnet_cmd(
        &lab.state,
        &[
            "lab",
            "exec",
            "--id",
            &lab.id,
            "azure/vm1",
            "--",
            "sleep",
            "300",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "sleep is running in the VM"
    );

    let out = lab.down();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        lab.namespaces().is_empty(),
        "left behind: {:?}",
        lab.namespaces()
    );
    assert!(
        !lab.state.join("labs").join(&lab.id).exists(),
        "state directory removed"
    );

    let status = wait_for_every(
        Duration::from_millis(20),
        Duration::from_secs(5),
        "the VM's process to end",
        || sleeper.try_wait().unwrap(),
    )
    .ok();
    if status.is_none() {
        let _ = sleeper.kill();
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "the VM's process was stopped by lab down"
    );

    // The other lab is untouched and still works.
    assert_eq!(other.namespaces().len(), 9);
    assert!(other.ping("azure/vm1", "10.1.2.4"));

    // Down again: a clear error, nothing else happens.
    let out = lab.down();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no lab with id"),
        "{}",
        show(&out)
    );
}
