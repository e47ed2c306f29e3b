//! Re-running `lab up` changes nothing (same addresses, same namespaces, "no changes");
//! changing a template converges: a new VM appears, a changed static address is applied,
//! and the rest is left as it was.

use testkit::lab::{show, Lab};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn up_twice_changes_nothing_and_template_changes_converge() {
    let lab = Lab::up_copy("examples/two-sites");
    let before = lab.status();
    let ns_before = lab.namespaces();

    let again = lab.up_again();
    assert!(again.status.success(), "{}", show(&again));
    assert!(stdout(&again).contains("no changes"), "{}", show(&again));
    assert_eq!(
        lab.status(),
        before,
        "status identical after a second lab up"
    );
    assert_eq!(lab.namespaces(), ns_before);

    // Converge: stackhub's vm2 moves to another static address, and a vm3 appears.
    let path = lab.dir.join("templates/stackhub-vms.json");
    let template = std::fs::read_to_string(&path).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&template).unwrap();
    let resources = doc["resources"].as_array_mut().unwrap();
    for r in resources.iter_mut() {
        if r["name"] == "vm2-nic" {
            r["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] =
                "10.2.2.20".into();
        }
    }
    let mut nic3 = resources
        .iter()
        .find(|r| r["name"] == "vm2-nic")
        .unwrap()
        .clone();
    nic3["name"] = "vm3-nic".into();
    nic3["properties"]["ipConfigurations"][0]["properties"]["privateIPAllocationMethod"] =
        "Dynamic".into();
    nic3["properties"]["ipConfigurations"][0]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("privateIPAddress");
    let mut vm3 = resources
        .iter()
        .find(|r| r["name"] == "vm2")
        .unwrap()
        .clone();
    vm3["name"] = "vm3".into();
    vm3["dependsOn"] =
        serde_json::json!(["[resourceId('Microsoft.Network/networkInterfaces', 'vm3-nic')]"]);
    vm3["properties"]["osProfile"]["computerName"] = "vm3".into();
    vm3["properties"]["networkProfile"]["networkInterfaces"][0]["id"] =
        "[resourceId('Microsoft.Network/networkInterfaces', 'vm3-nic')]".into();
    resources.push(nic3);
    resources.push(vm3);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();

    let changed = lab.up_again();
    assert!(changed.status.success(), "{}", show(&changed));
    assert!(
        !stdout(&changed).contains("no changes"),
        "{}",
        show(&changed)
    );

    let addr = |target: &str| {
        let out = lab.exec(target, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let vm2 = addr("stackhub/vm2");
    assert!(
        vm2.contains("10.2.2.20/24") && !vm2.contains("10.2.2.10/"),
        "vm2 moved: {vm2}"
    );
    assert!(
        addr("stackhub/vm3").contains("10.2.2.4/24"),
        "vm3 got the first free address"
    );
    assert!(lab.ping("stackhub/vm3", "10.2.2.20"));
    assert!(lab.ping("stackhub/vm1", "10.2.2.4"));
    assert_eq!(lab.namespaces().len(), ns_before.len() + 1);
    // Untouched elsewhere: azure's VMs keep their addresses.
    assert!(addr("azure/vm1").contains("10.1.1.4/24"));

    let third = lab.up_again();
    assert!(stdout(&third).contains("no changes"), "{}", show(&third));
}
