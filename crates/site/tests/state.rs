//! The store: idempotent re-apply, convergence, incremental vs complete mode, stale plans,
//! provisioning states and deployments surviving a new process, outputs from runtime state,
//! secrets kept out of everything shown.

mod common;

use common::*;
use serde_json::{json, Value};
use site::{
    ChangeAction, DeploymentMode, DeploymentState, ProvisioningState, Resource, Site, SiteError,
};

fn network() -> Value {
    json!([
        vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24"), ("back", "10.1.2.0/24"), ("GatewaySubnet", "10.1.255.0/27")]),
        pip("vm-pip"),
        {
            "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2018-11-01", "name": "nic1", "location": "here",
            "properties": { "ipConfigurations": [ { "name": "ipconfig1", "properties": {
                "privateIPAllocationMethod": "Dynamic",
                "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet1', 'default')]" },
                "publicIPAddress": { "id": "[resourceId('Microsoft.Network/publicIPAddresses', 'vm-pip')]" } } } ] }
        },
        nic("nic2", "vnet1", "default", None),
        nic("nic3", "vnet1", "back", Some("10.1.2.50")),
        {
            "type": "Microsoft.Compute/virtualMachines", "apiVersion": "2018-10-01", "name": "vm1", "location": "here",
            "properties": {
                "hardwareProfile": { "vmSize": "Standard_B1s" },
                "osProfile": { "computerName": "vm1", "adminUsername": "azureuser", "adminPassword": "Sup3r-Secret!" },
                "storageProfile": { "imageReference": { "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest" } },
                "networkProfile": { "networkInterfaces": [ { "id": "[resourceId('Microsoft.Network/networkInterfaces', 'nic1')]" } ] }
            }
        }
    ])
}

fn with_outputs(resources: Value) -> String {
    json!({
        "$schema": "x", "contentVersion": "1.0.0.0",
        "resources": resources,
        "outputs": {
            "publicIp": { "type": "string", "value": "[reference(resourceId('Microsoft.Network/publicIPAddresses', 'vm-pip')).ipAddress]" },
            "nic2Ip": { "type": "string", "value": "[reference(resourceId('Microsoft.Network/networkInterfaces', 'nic2')).ipConfigurations[0].properties.privateIPAddress]" }
        }
    })
    .to_string()
}

fn nic_ip(rs: &[Resource], name: &str) -> String {
    let Resource::NetworkInterface(n) = find(rs, name) else {
        panic!("{name} is not a NIC")
    };
    n.ip_configurations[0].private_ip_address.to_string()
}

#[test]
fn addresses_outputs_and_idempotent_reapply() {
    let mut t = site("azure", "203.0.113.0/24");
    let rec = deploy(
        &mut t.site,
        &with_outputs(network()),
        Default::default(),
        "net",
    )
    .unwrap();
    assert_eq!(rec.outputs["publicIp"], json!("203.0.113.1"));
    assert_eq!(rec.outputs["nic2Ip"], json!("10.1.1.5"));
    let rs = t.site.resources().unwrap();
    assert_eq!(nic_ip(&rs, "nic1"), "10.1.1.4");
    assert_eq!(nic_ip(&rs, "nic2"), "10.1.1.5");
    assert_eq!(nic_ip(&rs, "nic3"), "10.1.2.50");
    let Resource::VirtualMachine(vm) = find(&rs, "vm1") else {
        panic!()
    };
    assert_eq!(vm.os_profile["adminPassword"], json!("***"));
    assert_eq!(vm.hardware_profile["vmSize"], json!("Standard_B1s"));

    // Same deployment again: every resource NoChange, nothing rewritten, states kept.
    let id = t
        .site
        .resource_id("Microsoft.Network/virtualNetworks", "vnet1");
    t.site
        .set_provisioning_state(&id, ProvisioningState::Succeeded)
        .unwrap();
    let plan = t
        .site
        .plan(&with_outputs(network()), Default::default(), "net")
        .unwrap();
    assert!(
        plan.changes
            .iter()
            .all(|c| c.action == ChangeAction::NoChange),
        "{:?}",
        plan.changes
    );
    t.site.apply(plan).unwrap();
    let again = t.site.resources().unwrap();
    assert_eq!(
        again,
        rs.into_iter()
            .map(|mut r| {
                if site::same_id(r.id(), &id) {
                    r.meta_mut().provisioning_state = ProvisioningState::Succeeded;
                }
                r
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn changed_template_converges_and_keeps_nic_addresses() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(network()), Default::default(), "net").unwrap();
    let id = t
        .site
        .resource_id("Microsoft.Network/networkInterfaces", "nic2");
    t.site
        .set_provisioning_state(&id, ProvisioningState::Succeeded)
        .unwrap();

    // New order: nic2 now comes first and a new nic4 is added; nic2 keeps 10.1.1.5, nic4 gets
    // the first free address; the VNet gets a fourth subnet.
    let mut changed = network();
    let arr = changed.as_array_mut().unwrap();
    arr[0] = vnet(
        "vnet1",
        &["10.1.0.0/16"],
        &[
            ("default", "10.1.1.0/24"),
            ("back", "10.1.2.0/24"),
            ("GatewaySubnet", "10.1.255.0/27"),
            ("extra", "10.1.3.0/24"),
        ],
    );
    let nic2 = arr.remove(3);
    arr.insert(1, nic2);
    arr.push(nic("nic4", "vnet1", "default", None));
    let plan = t
        .site
        .plan(&tpl(changed), Default::default(), "net")
        .unwrap();
    let action = |n: &str| plan.changes.iter().find(|c| c.name == n).unwrap().action;
    assert_eq!(action("vnet1"), ChangeAction::Update);
    assert_eq!(action("nic2"), ChangeAction::NoChange);
    assert_eq!(action("nic4"), ChangeAction::Create);
    t.site.apply(plan).unwrap();
    let rs = t.site.resources().unwrap();
    assert_eq!(nic_ip(&rs, "nic2"), "10.1.1.5");
    assert_eq!(nic_ip(&rs, "nic4"), "10.1.1.6");
    assert_eq!(
        *find(&rs, "nic2").provisioning_state(),
        ProvisioningState::Succeeded,
        "unchanged resource keeps its state"
    );
    assert_eq!(
        *find(&rs, "vnet1").provisioning_state(),
        ProvisioningState::Updating,
        "changed resource awaits realization"
    );

    // Moving nic2 to another subnet gives it that subnet's first free address.
    let plan = t
        .site
        .plan(
            &tpl(json!([nic("nic2", "vnet1", "extra", None)])),
            Default::default(),
            "move",
        )
        .unwrap();
    t.site.apply(plan).unwrap();
    assert_eq!(nic_ip(&t.site.resources().unwrap(), "nic2"), "10.1.3.4");
}

#[test]
fn subnet_in_use_cannot_be_removed_or_shrunk() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(network()), Default::default(), "net").unwrap();
    let e = t
        .site
        .plan(
            &tpl(json!([vnet(
                "vnet1",
                &["10.1.0.0/16"],
                &[
                    ("default", "10.1.1.0/24"),
                    ("GatewaySubnet", "10.1.255.0/27")
                ]
            )])),
            Default::default(),
            "x",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.subnets: subnet 'back' is missing from the template but in use by networkInterfaces 'nic3'; it cannot be removed (InUseSubnetCannotBeDeleted)");
    let e = t
        .site
        .plan(
            &tpl(json!([vnet(
                "vnet1",
                &["10.1.0.0/16"],
                &[
                    ("default", "10.1.1.0/24"),
                    ("back", "10.1.2.0/27"),
                    ("GatewaySubnet", "10.1.255.0/27")
                ]
            )])),
            Default::default(),
            "x",
        )
        .unwrap_err();
    assert!(
        e.to_string().ends_with(
            "properties.subnets[1].properties.addressPrefix: 10.1.2.0/27 no longer contains 10.1.2.50, used by networkInterfaces 'nic3'"
        ),
        "{e}"
    );
}

#[test]
fn child_subnet_resources_merge_into_their_vnet() {
    let mut t = site("azure", "203.0.113.0/24");
    let sub = |name: &str, prefix: &str| {
        json!({"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "2018-11-01", "name": format!("vnet1/{name}"),
        "properties": {"addressPrefix": prefix}})
    };
    deploy(
        &mut t.site,
        &tpl(json!([
            vnet("vnet1", &["10.1.0.0/16"], &[]),
            sub("a", "10.1.1.0/24"),
            sub("GatewaySubnet", "10.1.255.0/27")
        ])),
        Default::default(),
        "d",
    )
    .unwrap();
    let Resource::VirtualNetwork(v) = find(&t.site.resources().unwrap(), "vnet1").clone() else {
        panic!()
    };
    assert_eq!(
        v.subnets
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "GatewaySubnet"]
    );
    let e = t
        .site
        .plan(
            &tpl(json!([sub("b", "10.2.0.0/24")])),
            Default::default(),
            "bad",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "resources[0] (Microsoft.Network/virtualNetworks/subnets 'vnet1/b').properties.addressPrefix: 10.2.0.0/24 is outside the address space [10.1.0.0/16]");
    let e = t
        .site
        .plan(
            &tpl(json!([sub("c", "10.1.1.128/25")])),
            Default::default(),
            "bad",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "resources[0] (Microsoft.Network/virtualNetworks/subnets 'vnet1/c').properties.addressPrefix: 10.1.1.128/25 overlaps subnet 'a' (10.1.1.0/24)");
    // Re-deploying the same template (VNet without inline subnets + child subnets) keeps them.
    let plan = t
        .site
        .plan(
            &tpl(json!([
                vnet("vnet1", &["10.1.0.0/16"], &[]),
                sub("a", "10.1.1.0/24"),
                sub("GatewaySubnet", "10.1.255.0/27")
            ])),
            Default::default(),
            "d",
        )
        .unwrap();
    assert!(
        plan.changes
            .iter()
            .all(|c| c.action == ChangeAction::NoChange),
        "{:?}",
        plan.changes
    );
    let e = t
        .site
        .plan(
            &tpl(json!([sub("x", "10.1.9.0/24")])).replace("vnet1/x", "nope/x"),
            Default::default(),
            "bad",
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("/providers/Microsoft.Network/virtualNetworks/nope does not exist in this deployment or site"),
        "{e}"
    );
}

#[test]
fn incremental_keeps_and_complete_deletes() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(
        &mut t.site,
        &tpl(json!([
            vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24")]),
            pip("p1"),
            pip("p2")
        ])),
        Default::default(),
        "d",
    )
    .unwrap();
    deploy(
        &mut t.site,
        &tpl(json!([pip("p1")])),
        Default::default(),
        "d",
    )
    .unwrap();
    assert_eq!(
        t.site.resources().unwrap().len(),
        3,
        "incremental mode deletes nothing"
    );
    let plan = t
        .site
        .plan_with_mode(
            &tpl(json!([pip("p1")])),
            Default::default(),
            "d",
            DeploymentMode::Complete,
        )
        .unwrap();
    let deleted: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == ChangeAction::Delete)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(deleted, ["p2", "vnet1"]);
    t.site.apply(plan).unwrap();
    let rs = t.site.resources().unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].name(), "p1");

    // Complete mode refuses to delete what a kept resource uses.
    deploy(
        &mut t.site,
        &tpl(json!([
            vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24")]),
            nic("n1", "vnet1", "default", None)
        ])),
        Default::default(),
        "n",
    )
    .unwrap();
    let e = t
        .site
        .plan_with_mode(
            &tpl(json!([nic("n1", "vnet1", "default", None)])),
            Default::default(),
            "n",
            DeploymentMode::Complete,
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("properties.ipConfigurations[0].properties.subnet.id: refers to"),
        "{e}"
    );
}

#[test]
fn stale_plan_is_refused() {
    let mut t = site("azure", "203.0.113.0/24");
    let p1 = t
        .site
        .plan(&tpl(json!([pip("a")])), Default::default(), "one")
        .unwrap();
    let p2 = t
        .site
        .plan(&tpl(json!([pip("b")])), Default::default(), "two")
        .unwrap();
    t.site.apply(p1).unwrap();
    let e = t.site.apply(p2).unwrap_err();
    assert!(matches!(e, SiteError::StalePlan { .. }), "{e}");
    assert_eq!(t.site.resources().unwrap().len(), 1);
}

#[test]
fn state_survives_a_new_process_view() {
    let mut t = site("azure", "203.0.113.0/24");
    let tmpl = read("site-to-site-vpn-create/azuredeploy.json");
    let p = params(
        Some("site-to-site-vpn-create/azuredeploy.parameters.json"),
        json!({"sharedKey": "psk-never-shown-1234"}),
    );
    deploy(&mut t.site, &tmpl, p.clone(), "s2s").unwrap();
    let vnet_id = t
        .site
        .resource_id("Microsoft.Network/virtualNetworks", "azureVnet");
    t.site
        .set_provisioning_state(
            &vnet_id,
            ProvisioningState::Failed {
                error: "bridge br-x: exists".into(),
            },
        )
        .unwrap();
    let bad = t
        .site
        .plan(
            &tpl(json!([vnet("v", &["10.0.0.0/8"], &[("s", "11.0.0.0/24")])])),
            Default::default(),
            "broken",
        )
        .unwrap_err();
    t.site
        .record_failed_deployment(&tpl(json!([])), &Default::default(), "broken", &bad)
        .unwrap();
    drop(t.site);

    let reopened = Site::open(t.dir.path(), "s1").unwrap();
    assert_eq!(reopened.kind().name, "azure");
    let rs = reopened.resources().unwrap();
    assert_eq!(rs.len(), 5);
    let v = find(&rs, "azureVnet");
    assert_eq!(
        v.arm_json()["properties"]["provisioningState"],
        json!("Failed")
    );
    assert_eq!(
        v.arm_json()["properties"]["provisioningError"],
        json!("bridge br-x: exists")
    );
    let Resource::Connection(c) = find(&rs, "Azure2Other") else {
        panic!()
    };
    assert_eq!(
        c.shared_key.as_ref().unwrap().expose(),
        "psk-never-shown-1234",
        "the key survives for the gateway"
    );
    let deps = reopened.deployments().unwrap();
    assert_eq!(deps.len(), 2);
    assert_eq!(deps[0].state, DeploymentState::Succeeded);
    assert!(
        matches!(&deps[1].state, DeploymentState::Failed { error } if error.contains("11.0.0.0/24 is outside the address space"))
    );

    // The key appears nowhere a user can see it, nor in the resources table of the database.
    let shown = format!(
        "{rs:?}{}{deps:?}",
        rs.iter()
            .map(|r| r.arm_json().to_string())
            .collect::<String>()
    );
    assert!(!shown.contains("psk-never-shown-1234"), "{shown}");
    assert!(!serde_json::to_string(&rs)
        .unwrap()
        .contains("psk-never-shown-1234"));

    assert!(matches!(
        Site::create(
            t.dir.path(),
            "s1",
            "azure-stack-hub",
            "203.0.113.0/24".parse().unwrap()
        ),
        Err(SiteError::SiteMismatch { .. })
    ));
    assert!(
        Site::create(
            t.dir.path(),
            "s1",
            "azure",
            "203.0.113.0/24".parse().unwrap()
        )
        .is_ok(),
        "create is idempotent"
    );
    assert!(matches!(
        Site::open(t.dir.path(), "nope"),
        Err(SiteError::NoSuchSite { .. })
    ));
    assert!(matches!(
        Site::open(t.dir.path(), "../etc"),
        Err(SiteError::InvalidSiteName(_))
    ));
    assert!(matches!(reopened.resource("/x"), Ok(None)));
}

#[test]
fn unknown_types_are_recorded_with_a_note() {
    let mut t = site("azure", "203.0.113.0/24");
    let sa = json!({"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "stor1", "location": "here",
        "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "properties": {"supportsHttpsTrafficOnly": true}});
    let rec = deploy(&mut t.site, &tpl(json!([sa])), Default::default(), "sa").unwrap();
    assert!(
        rec.notes[0].contains("not modelled by hybridnet"),
        "{:?}",
        rec.notes
    );
    let rs = t.site.resources().unwrap();
    let r = find(&rs, "stor1");
    assert!(
        matches!(r.provisioning_state(), ProvisioningState::Pending { reason } if reason.contains("Microsoft.Storage/storageAccounts"))
    );
    assert_eq!(r.arm_json()["sku"]["name"], json!("Standard_LRS"));
    assert_eq!(
        r.arm_json()["properties"]["supportsHttpsTrafficOnly"],
        json!(true)
    );
}

#[test]
fn realized_types_drive_initial_states() {
    let mut t = site("azure", "203.0.113.0/24");
    let mut types: Vec<&str> = site::DEFAULT_REALIZED_TYPES.to_vec();
    types.push("Microsoft.Network/virtualNetworkGateways");
    t.site.set_realized_types(&types);
    let r = json!([
        vnet(
            "vnet1",
            &["10.1.0.0/16"],
            &[("GatewaySubnet", "10.1.255.0/27")]
        ),
        pip("p"),
        gateway("gw", "vnet1", "p", "VpnGw1")
    ]);
    deploy(&mut t.site, &tpl(r), Default::default(), "d").unwrap();
    assert_eq!(
        *find(&t.site.resources().unwrap(), "gw").provisioning_state(),
        ProvisioningState::Updating
    );
}

#[test]
fn dynamic_nics_skip_addresses_later_static_nics_ask_for() {
    let mut t = site("azure", "203.0.113.0/24");
    let r = json!([
        vnet("vnet1", &["10.1.0.0/16"], &[("default", "10.1.1.0/24")]),
        nic("dyn", "vnet1", "default", None),
        nic("fixed", "vnet1", "default", Some("10.1.1.4"))
    ]);
    deploy(&mut t.site, &tpl(r), Default::default(), "d").unwrap();
    let rs = t.site.resources().unwrap();
    assert_eq!(nic_ip(&rs, "fixed"), "10.1.1.4");
    assert_eq!(nic_ip(&rs, "dyn"), "10.1.1.5");
}

#[test]
fn address_space_change_checks_subnets_kept_from_child_resources() {
    let mut t = site("azure", "203.0.113.0/24");
    let sub = json!({"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "2018-11-01", "name": "vnet1/a", "properties": {"addressPrefix": "10.1.1.0/24"}});
    deploy(
        &mut t.site,
        &tpl(json!([vnet("vnet1", &["10.1.0.0/16"], &[]), sub.clone()])),
        Default::default(),
        "d",
    )
    .unwrap();
    let e = t
        .site
        .plan(
            &tpl(json!([vnet("vnet1", &["10.2.0.0/16"], &[]), sub])),
            Default::default(),
            "d",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "resources[0] (Microsoft.Network/virtualNetworks 'vnet1').properties.addressSpace.addressPrefixes: subnet 'a' (10.1.1.0/24) would be outside the address space [10.2.0.0/16]");
}

#[test]
fn database_file_is_private_and_reads_do_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let t = site("azure", "203.0.113.0/24");
    let path = t.site.db_path().to_path_buf();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&path).unwrap();
    for _ in 0..3 {
        t.site.resources().unwrap();
        t.site.deployments().unwrap();
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "reading a site must not modify its database"
    );
}

#[test]
fn delete_refuses_resources_in_use() {
    let mut t = site("azure", "203.0.113.0/24");
    deploy(&mut t.site, &tpl(network()), Default::default(), "net").unwrap();
    let vnet = t
        .site
        .resource_id("Microsoft.Network/virtualNetworks", "vnet1");
    let e = t.site.delete_resource(&vnet).unwrap_err().to_string();
    assert!(
        e.contains("is in use by Microsoft.Network/networkInterfaces 'nic1'"),
        "{e}"
    );
    let vm = t
        .site
        .resource_id("Microsoft.Compute/virtualMachines", "vm1");
    let nic1 = t
        .site
        .resource_id("Microsoft.Network/networkInterfaces", "nic1");
    assert!(matches!(
        t.site.delete_resource(&nic1),
        Err(SiteError::InUse { .. })
    ));
    assert_eq!(t.site.delete_resource(&vm).unwrap().name(), "vm1");
    t.site.delete_resource(&nic1).unwrap();
    assert!(t.site.resource(&vm).unwrap().is_none());
    assert!(matches!(
        t.site.delete_resource(&vm),
        Err(SiteError::NoSuchResource(_))
    ));
    // nic1's address is free again.
    deploy(
        &mut t.site,
        &tpl(json!([nic("nic9", "vnet1", "default", None)])),
        Default::default(),
        "n9",
    )
    .unwrap();
    assert_eq!(nic_ip(&t.site.resources().unwrap(), "nic9"), "10.1.1.4");
}
