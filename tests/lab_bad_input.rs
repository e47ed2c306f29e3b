//! Bad input to `hybridnet deploy` against a running lab: each case yields one precise error
//! naming the place (template path or line:column), exits non-zero, and leaves the lab's
//! resources, addresses and namespaces exactly as they were.

use serde_json::Value;
use testkit::lab::{show, Lab};

const VNET_TEMPLATE: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "vnetName": { "type": "string", "defaultValue": "extra-vnet" },
    "space": { "type": "string", "defaultValue": "10.50.0.0/16" },
    "first": { "type": "string", "defaultValue": "10.50.1.0/24" },
    "second": { "type": "string", "defaultValue": "10.50.2.0/24" },
    "gw": { "type": "string", "defaultValue": "10.50.255.0/27" },
    "tier": { "type": "string", "defaultValue": "gold", "allowedValues": [ "gold", "silver" ] }
  },
  "resources": [
    {
      "type": "Microsoft.Network/virtualNetworks",
      "apiVersion": "2023-09-01",
      "name": "[parameters('vnetName')]",
      "location": "[resourceGroup().location]",
      "tags": { "tier": "[parameters('tier')]" },
      "properties": {
        "addressSpace": { "addressPrefixes": [ "[parameters('space')]" ] },
        "subnets": [
          { "name": "first", "properties": { "addressPrefix": "[parameters('first')]" } },
          { "name": "second", "properties": { "addressPrefix": "[parameters('second')]" } },
          { "name": "GatewaySubnet", "properties": { "addressPrefix": "[parameters('gw')]" } }
        ]
      }
    }
  ]
}"#;

/// What must not change: resources with their states and addresses, and the namespaces.
fn snapshot(lab: &Lab) -> (Vec<Value>, Vec<String>) {
    let status = lab.status();
    let sites = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!({
                "vnets": s["virtualNetworks"], "vms": s["virtualMachines"],
                "pips": s["publicIpAddresses"], "other": s["otherResources"],
            })
        })
        .collect();
    (sites, lab.namespaces())
}

#[test]
fn bad_templates_are_rejected_precisely_and_change_nothing() {
    let lab = Lab::up("examples/two-sites");
    let before = snapshot(&lab);
    let dir = &lab.state;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write("vnet.json", VNET_TEMPLATE);
    let malformed = write(
        "malformed.json",
        &VNET_TEMPLATE.replace(r#""tier": {"#, r#""tier" {"#),
    );
    let unknown_fn = write(
        "unknownfn.json",
        &VNET_TEMPLATE.replace("resourceGroup().location", "resourceGroups().location"),
    );
    let missing = write(
        "missing.json",
        &VNET_TEMPLATE.replace(
            r#""type": "string", "defaultValue": "10.50.0.0/16""#,
            r#""type": "string""#,
        ),
    );
    let unknown_type = write(
        "unknowntype.json",
        &VNET_TEMPLATE.replace("Microsoft.Network/virtualNetworks", "Microsoft.Foo/bars"),
    );
    let unknown_network_type = write(
        "unknownnettype.json",
        &VNET_TEMPLATE.replace(
            "Microsoft.Network/virtualNetworks",
            "Microsoft.Network/virtualWidgets",
        ),
    );

    // (arguments, substrings the one error line must contain)
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec![malformed],
            vec!["malformed JSON", "line 10, column 12"],
        ),
        (
            vec![unknown_fn],
            vec!["resources[0].location", "unknown function 'resourceGroups'"],
        ),
        (vec![missing], vec!["parameters.space"]),
        (
            vec![unknown_type],
            vec![
                "resources[0] (Microsoft.Foo/bars 'extra-vnet').type",
                "no resource provider \"Microsoft.Foo\" is registered on an azure site",
                "Microsoft.Network",
            ],
        ),
        (
            vec![unknown_network_type],
            vec![
                "resources[0] (Microsoft.Network/virtualWidgets 'extra-vnet').type",
                "\"virtualWidgets\" could not be found in the namespace \"Microsoft.Network\"",
                "virtualNetworkGateways",
            ],
        ),
        (
            vec![good.clone(), "--set".into(), "tier=bronze".into()],
            vec!["parameters.tier", "bronze", "gold, silver"],
        ),
        (
            vec![good.clone(), "--set".into(), "second=10.50.1.128/25".into()],
            vec![
                "properties.subnets[0].properties.addressPrefix",
                "overlaps",
                "10.50.1.128/25",
            ],
        ),
        (
            vec![good.clone(), "--set".into(), "second=10.60.1.0/24".into()],
            vec![
                "properties.subnets[1].properties.addressPrefix",
                "outside",
                "10.50.0.0/16",
            ],
        ),
        (
            vec![good.clone(), "--set".into(), "gw=10.50.255.0/30".into()],
            vec![
                "properties.subnets[2].properties.addressPrefix",
                "GatewaySubnet",
                "/30",
            ],
        ),
    ];
    for (args, expect) in &cases {
        let mut full = vec!["deploy", "--id", &lab.id, "--site", "azure"];
        full.extend(args.iter().map(String::as_str));
        let out = lab.run(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {args:?}:\n{}", show(&out));
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error for {args:?}:\n{}", show(&out));
        for e in expect {
            assert!(
                errors[0].contains(e),
                "error for {args:?} lacks {e:?}: {}",
                errors[0]
            );
        }
        // The cause is said once, not repeated by each layer.
        let first_expect = expect[0];
        assert_eq!(
            errors[0].matches(first_expect).count(),
            1,
            "repeated: {}",
            errors[0]
        );
        assert_eq!(snapshot(&lab), before, "lab changed after {args:?}");
    }

    // The rejected deployment is visible as failed, with its error.
    let status = lab.status();
    let azure = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "azure")
        .unwrap();
    let vnet_dep = azure["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "vnet")
        .unwrap();
    assert_eq!(vnet_dep["state"], "Failed");

    // And the same template, corrected, deploys and is realized.
    let out = lab.run(&["deploy", "--id", &lab.id, "--site", "azure", &good]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(lab.namespaces().len(), before.1.len() + 1);
    assert!(lab.ping("azure/vm1", "10.1.1.5"), "existing VMs unaffected");
}
