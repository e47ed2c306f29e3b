//! Issue 10, item 6: a `lab up` killed inside `ip netns add` leaves a mode-0000 file in
//! /run/netns with no namespace mounted on it. Such a file is not a namespace: the next
//! `lab up` removes it and creates the namespace afresh (before, every later run failed with
//! "Invalid argument"), the VMs behind it work again, and `lab down` leaves no file behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use testkit::lab::{netns_with_prefix, show, Lab};

/// Replaces namespace `ns` by what an interrupted `ip netns add` leaves: an empty file, mode
/// 0000, with nothing mounted on it; and, as that namespace never existed, no veth to it
/// anywhere: its veths go first, both ends at once (deleting the namespace would leave the
/// other ends until the kernel's deferred cleanup of the namespace).
fn leave_placeholder(ns: &str) {
    let veths = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "type", "veth"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&veths.stdout).lines() {
        let name = line.split(':').nth(1).unwrap().trim();
        let name = name.split('@').next().unwrap();
        let del = Command::new("ip")
            .args(["-n", ns, "link", "del", name])
            .output()
            .unwrap();
        assert!(
            del.status.success(),
            "ip -n {ns} link del {name}: {}",
            show(&del)
        );
    }
    let del = Command::new("ip")
        .args(["netns", "del", ns])
        .output()
        .unwrap();
    assert!(del.status.success(), "ip netns del {ns}: {}", show(&del));
    let path = Path::new("/run/netns").join(ns);
    std::fs::File::create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
}

#[test]
fn a_placeholder_left_by_an_interrupted_netns_add_is_replaced_by_the_namespace() {
    let lab = Lab::up_with("examples/two-sites", &["--no-gateways"]);
    let vm = format!("hn-{}-azure-vm1", lab.id);
    let router = format!("hn-{}-stackhub-vnet-stackhub-vnet", lab.id);
    let stale = format!("hn-{}-azure-gone", lab.id);
    let all = lab.namespaces();
    assert!(
        all.contains(&vm) && all.contains(&router),
        "expected {vm} and {router} among {all:?}"
    );
    leave_placeholder(&vm);
    leave_placeholder(&router);
    // A placeholder of a namespace the lab does not want at all.
    std::fs::File::create(Path::new("/run/netns").join(&stale)).unwrap();
    std::fs::set_permissions(
        Path::new("/run/netns").join(&stale),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    let again = lab.run(&["lab", "up", "--no-gateways", lab.dir.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "lab up over placeholders:\n{}",
        show(&again)
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("placeholder"),
        "the removal is reported:\n{}",
        show(&again)
    );
    assert!(
        !netns_with_prefix(&stale).contains(&stale),
        "{stale} removed"
    );

    // Real namespaces again, wired: the VM reaches its neighbours and the other site's VMs
    // reach theirs through the recreated router.
    for ns in [&vm, &router] {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{ns} is a namespace: {}", show(&out));
    }
    assert!(lab.ping("azure/vm1", "10.1.2.4"), "azure/vm1 works again");
    assert!(
        lab.ping("stackhub/vm1", "10.2.2.10"),
        "stackhub's router works again"
    );
    let status = lab.status();
    let exists = |name: &str| {
        status["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["netns"] == name)
            .map(|n| n["exists"] == true)
    };
    assert_eq!(exists(&vm), Some(true), "{status:#}");
    assert_eq!(exists(&router), Some(true), "{status:#}");

    // A third run changes nothing.
    let third = lab.run(&["lab", "up", "--no-gateways", lab.dir.to_str().unwrap()]);
    assert!(third.status.success(), "{}", show(&third));
    assert!(
        String::from_utf8_lossy(&third.stdout).contains("no changes"),
        "{}",
        show(&third)
    );

    // `lab down` removes placeholders too: nothing with the lab's prefix is left.
    leave_placeholder(&vm);
    let down = lab.down();
    assert!(down.status.success(), "{}", show(&down));
    let left = netns_with_prefix(&format!("hn-{}-", lab.id));
    assert!(left.is_empty(), "left in /run/netns: {left:?}");
}
