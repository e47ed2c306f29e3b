//! Two sites (azure, azure-stack-hub), each a VNet with several subnets and VMs: VMs get
//! Azure's addresses (.4 onward), reach each other across subnets of one VNet, and cannot
//! reach the other site's private addresses (no VPN yet); only public IPs are reachable across
//! the simulated internet.

use serde_json::Value;
use testkit::lab::{show, Lab};

fn vm_address(status: &Value, site: &str, vm: &str) -> String {
    let site = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == site)
        .expect("site in status");
    let vm = site["virtualMachines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == vm)
        .expect("vm in status");
    assert_eq!(vm["provisioningState"], "Succeeded", "{vm}");
    assert_eq!(vm["netns"]["exists"], true, "{vm}");
    vm["nics"][0]["privateIpAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn vms_reach_each_other_inside_a_vnet_and_not_across_sites() {
    let lab = Lab::up("examples/two-sites");
    let status = lab.status();

    // Dynamic NICs get the first free address from .4, in deployment order; static ones keep theirs.
    assert_eq!(vm_address(&status, "azure", "vm1"), "10.1.1.4");
    assert_eq!(vm_address(&status, "azure", "vm2"), "10.1.1.5");
    assert_eq!(vm_address(&status, "azure", "vm3"), "10.1.2.4");
    assert_eq!(vm_address(&status, "azure", "db1"), "10.1.3.4");
    assert_eq!(vm_address(&status, "stackhub", "vm1"), "10.2.1.4");
    assert_eq!(vm_address(&status, "stackhub", "vm2"), "10.2.2.10");

    // The kernel agrees with the store: the address is on the VM's eth0.
    let out = lab.exec(
        "azure/vm3",
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10.1.2.4/24"),
        "{}",
        show(&out)
    );

    // The VNet router answers .1 of each subnet; VMs reach each other within and across subnets.
    assert!(lab.ping("azure/vm1", "10.1.1.1"));
    assert!(lab.ping("azure/vm1", "10.1.1.5"), "same subnet");
    assert!(lab.ping("azure/vm1", "10.1.2.4"), "default -> app");
    assert!(lab.ping("azure/vm3", "10.1.3.4"), "app -> data");
    assert!(lab.ping("azure/db1", "10.1.1.4"), "data -> default");
    assert!(
        lab.ping("stackhub/vm2", "10.2.1.4"),
        "stackhub app -> default"
    );

    // No VPN yet: the other site's VMs, routers and public side are unreachable.
    assert!(!lab.ping("azure/vm1", "10.2.1.4"));
    assert!(!lab.ping("azure/vm1", "10.2.1.1"));
    assert!(!lab.ping("stackhub/vm1", "10.1.1.4"));
    assert!(!lab.ping("stackhub/vm2", "10.1.2.4"));
    assert!(
        !lab.ping("azure/vm2", "198.51.100.254"),
        "a VM without a public IP has no way out"
    );

    // Public IPs are 1:1 translated by the VNet router, as in Azure: vm1 (203.0.113.1) reaches
    // stackhub's vm1 by its public IP (198.51.100.1), and it sees the public source address.
    assert!(lab.ping("azure/vm1", "198.51.100.1"));
    assert!(lab.ping("stackhub/vm1", "203.0.113.1"));

    // Without --id, `lab exec` and `lab status` use the only running lab of the state root.
    let out = lab.run(&[
        "lab",
        "exec",
        "azure/vm1",
        "--",
        "ping",
        "-c1",
        "-W1",
        "10.1.3.4",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let out = lab.run(&["lab", "status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("lab {}", lab.id)),
        "{}",
        show(&out)
    );

    // `lab exec` passes the command's exit code through.
    let out = lab.exec("azure/vm1", &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let out = lab.exec("azure/nope", &["true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no VM \"nope\""),
        "{}",
        show(&out)
    );
}
