//! A resource that cannot be realized is marked Failed with the error in the site store,
//! `lab status` shows it (and its deployment as Failed, as Azure does), the command fails, and
//! everything else keeps working.

use testkit::lab::{show, Lab};

/// A VM named `vnet-azure-vnet` maps to the namespace of VNet `azure-vnet`'s router.
const COLLIDING_VM: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": { "vmName": { "type": "string", "defaultValue": "vnet-azure-vnet" } },
  "resources": [
    {
      "type": "Microsoft.Network/networkInterfaces",
      "apiVersion": "2023-09-01",
      "name": "[concat(parameters('vmName'), '-nic')]",
      "location": "[resourceGroup().location]",
      "properties": {
        "ipConfigurations": [ { "name": "ipconfig1", "properties": {
          "privateIPAllocationMethod": "Dynamic",
          "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'azure-vnet', 'default')]" } } } ]
      }
    },
    {
      "type": "Microsoft.Compute/virtualMachines",
      "apiVersion": "2023-09-01",
      "name": "[parameters('vmName')]",
      "location": "[resourceGroup().location]",
      "dependsOn": [ "[resourceId('Microsoft.Network/networkInterfaces', concat(parameters('vmName'), '-nic'))]" ],
      "properties": {
        "hardwareProfile": { "vmSize": "Standard_B1s" },
        "networkProfile": { "networkInterfaces": [ { "id": "[resourceId('Microsoft.Network/networkInterfaces', concat(parameters('vmName'), '-nic'))]" } ] }
      }
    }
  ]
}"#;

#[test]
fn unrealizable_vm_is_failed_and_the_rest_keeps_working() {
    let lab = Lab::up("examples/two-sites");
    let namespaces = lab.namespaces();
    let template = lab.state.join("colliding.json");
    std::fs::write(&template, COLLIDING_VM).unwrap();

    let out = lab.run(&[
        "deploy",
        "--id",
        &lab.id,
        "--site",
        "azure",
        template.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("already used by virtualNetworks/azure-vnet"),
        "{}",
        show(&out)
    );

    let status = lab.status();
    let azure = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "azure")
        .unwrap();
    let vms = azure["virtualMachines"].as_array().unwrap();
    let failed = vms
        .iter()
        .find(|v| v["name"] == "vnet-azure-vnet")
        .expect("the VM is recorded");
    assert_eq!(failed["provisioningState"], "Failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("already used"),
        "{failed}"
    );
    // its deployment is Failed too, naming the resource, as Azure reports it
    let deployment = azure["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "colliding")
        .expect("the deployment is recorded");
    assert_eq!(deployment["state"], "Failed", "{deployment}");
    assert!(
        deployment["error"]
            .as_str()
            .unwrap()
            .contains("Microsoft.Compute/virtualMachines 'vnet-azure-vnet' failed to provision"),
        "{deployment}"
    );
    for vm in vms.iter().filter(|v| v["name"] != "vnet-azure-vnet") {
        assert_eq!(vm["provisioningState"], "Succeeded", "{vm}");
    }
    assert_eq!(lab.namespaces(), namespaces, "no namespace added or lost");
    assert!(lab.ping("azure/vm1", "10.1.2.4"), "the VNet still routes");

    // The text status says it too, and a new `lab up` keeps reporting it (state is kept).
    let text = lab.run(&["lab", "status", "--id", &lab.id]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("vm vnet-azure-vnet [Failed]: "),
        "{}",
        show(&text)
    );
    let again = lab.up_again();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("1 resource(s) failed"),
        "{}",
        show(&again)
    );
}
