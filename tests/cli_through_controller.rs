//! While a lab controller runs, `hybridnet deploy`, `lab status` and `vpn-connection list`
//! are carried out by it: a CLI deployment and an az change made at the same moment both land,
//! each side sees the other's, and the controller's log has the CLI's request.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::az::Api;
use testkit::lab::{show, Lab};

fn vnet_template(name: &str, prefix: &str, subnet: &str) -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{
            "type": "Microsoft.Network/virtualNetworks",
            "apiVersion": "2020-11-01",
            "name": name,
            "location": "[resourceGroup().location]",
            "properties": {
                "addressSpace": { "addressPrefixes": [prefix] },
                "subnets": [{ "name": "default", "properties": { "addressPrefix": subnet } }]
            }
        }]
    })
}

#[test]
fn cli_and_api_act_through_one_controller() {
    let lab = Lab::up("examples/empty-sites");
    let api = Api::of(&lab);
    let pid = api.doc["pid"].as_i64().expect("controller pid");
    let endpoint = api.endpoint("azure");
    let az = api.login("azure");

    let template = lab.state.join("clivnet.json");
    std::fs::write(
        &template,
        vnet_template("clivnet", "10.50.0.0/16", "10.50.1.0/24").to_string(),
    )
    .unwrap();
    az.ok(&[
        "group",
        "create",
        "-n",
        "net",
        "-l",
        endpoint["location"].as_str().unwrap(),
    ]);

    // the CLI deployment and an az change at the same moment
    let deploy = {
        let state = lab.state.clone();
        let (id, template) = (lab.id.clone(), template.clone());
        std::thread::spawn(move || {
            testkit::lab::hybridnet(
                &state,
                &[
                    "deploy",
                    "--id",
                    &id,
                    "--site",
                    "azure",
                    template.to_str().unwrap(),
                ],
            )
        })
    };
    let created = az.ok(&[
        "network",
        "vnet",
        "create",
        "-g",
        "net",
        "-n",
        "azvnet",
        "--address-prefixes",
        "10.60.0.0/16",
        "--subnet-name",
        "default",
        "--subnet-prefixes",
        "10.60.1.0/24",
    ]);
    assert_eq!(
        created["newVNet"]["provisioningState"], "Succeeded",
        "{created:#}"
    );
    let out = deploy.join().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "deployed clivnet to azure by the lab controller (pid {pid})"
        )),
        "{}",
        show(&out)
    );

    // az sees the CLI's VNet, the CLI sees az's, both realized
    let listed = az.ok(&["network", "vnet", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["provisioningState"] == "Succeeded")
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&"clivnet") && names.contains(&"azvnet"),
        "{listed:#}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let azure = lab.site_status("azure");
        let realized = |name: &str| {
            azure["virtualNetworks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| {
                    v["name"] == name
                        && v["provisioningState"] == "Succeeded"
                        && v["router"]["exists"] == true
                })
        };
        if realized("clivnet") && realized("azvnet") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both VNets realized: {:#}",
            azure["virtualNetworks"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // a site without connections lists none, through the controller too
    let out = lab.run(&["vpn-connection", "list", "--id", &lab.id, "--site", "azure"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    // an unknown site is refused by the controller with the sites it knows
    let out = lab.run(&[
        "vpn-connection",
        "list",
        "--id",
        &lab.id,
        "--site",
        "nowhere",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no site \"nowhere\"") && err.contains("stackhub"),
        "{}",
        show(&out)
    );

    let log = std::fs::read_to_string(
        std::path::Path::new(api.doc["caFile"].as_str().unwrap())
            .parent()
            .unwrap()
            .join("controller.log"),
    )
    .unwrap();
    assert!(log.contains("cli deploy clivnet -> azure: done"), "{log}");
    assert!(log.contains("cli status: done"), "{log}");
}
