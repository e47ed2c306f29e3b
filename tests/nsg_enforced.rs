//! Network security groups are enforced as Azure enforces them: a VM with a public IP whose
//! NIC's NSG allows only SSH answers a TCP connection to port 22 from the internet and nothing
//! else (no ping, no other port), while its VNet traffic across the tunnel keeps flowing
//! (the default AllowVnetInBound covers the on-premises prefixes) and its own outbound flows
//! get their replies (stateful). A deny rule with a higher priority than the allow takes
//! effect on the running lab, and removing it restores the allow. Through the API,
//! `list-effective-nsg` shows the rules in effect with the service tags expanded.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::az::Api;
use testkit::lab::{show, Lab};
use testkit::process::wait_for_every;

/// An NSG (rules given), a public IP, a NIC in the seed's Azure VNet with both, and a VM.
fn template(rules: &Value) -> String {
    let nic_id = "[resourceId('Microsoft.Network/networkInterfaces', 'vm2-nic')]";
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [
            { "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": "vm2-nsg",
              "location": "[resourceGroup().location]", "properties": { "securityRules": rules } },
            { "type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2023-09-01", "name": "vm2-pip",
              "location": "[resourceGroup().location]", "sku": { "name": "Standard" },
              "properties": { "publicIPAllocationMethod": "Static" } },
            { "type": "Microsoft.Network/networkInterfaces", "apiVersion": "2023-09-01", "name": "vm2-nic",
              "location": "[resourceGroup().location]",
              "dependsOn": [ "[resourceId('Microsoft.Network/networkSecurityGroups', 'vm2-nsg')]",
                             "[resourceId('Microsoft.Network/publicIPAddresses', 'vm2-pip')]" ],
              "properties": {
                "networkSecurityGroup": { "id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'vm2-nsg')]" },
                "ipConfigurations": [ { "name": "ipconfig1", "properties": {
                    "privateIPAllocationMethod": "Dynamic",
                    "subnet": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'azure-vnet', 'default')]" },
                    "publicIPAddress": { "id": "[resourceId('Microsoft.Network/publicIPAddresses', 'vm2-pip')]" } } } ] } },
            { "type": "Microsoft.Compute/virtualMachines", "apiVersion": "2023-09-01", "name": "vm2",
              "location": "[resourceGroup().location]", "dependsOn": [ nic_id ],
              "properties": { "hardwareProfile": { "vmSize": "Standard_B1s" },
                "osProfile": { "computerName": "vm2", "adminUsername": "azureuser", "adminPassword": "Lab-Passw0rd!" },
                "storageProfile": { "imageReference": { "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest" } },
                "networkProfile": { "networkInterfaces": [ { "id": nic_id } ] } } }
        ],
        "outputs": {
            "publicIp": { "type": "string", "value": "[reference('vm2-pip').ipAddress]" },
            "privateIp": { "type": "string", "value": "[reference('vm2-nic').ipConfigurations[0].properties.privateIPAddress]" }
        }
    })
    .to_string()
}

fn rule(
    name: &str,
    priority: u32,
    access: &str,
    protocol: &str,
    port: &str,
    source: &str,
) -> Value {
    json!({ "name": name, "properties": {
        "priority": priority, "direction": "Inbound", "access": access, "protocol": protocol,
        "sourcePortRange": "*", "destinationPortRange": port,
        "sourceAddressPrefix": source, "destinationAddressPrefix": "*" } })
}

fn deploy(lab: &Lab, rules: &Value) -> (String, String) {
    let out = lab.deploy_text("azure", "vm2", &template(rules), &[]);
    assert!(out.status.success(), "{}", show(&out));
    let outputs = lab.outputs("azure", "vm2");
    (
        outputs["publicIp"].as_str().unwrap().to_string(),
        outputs["privateIp"].as_str().unwrap().to_string(),
    )
}

/// `python3 -c CODE` in namespace `ns`; true when it exits 0.
fn py(ns: &str, code: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", code])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a TCP connection to `addr:port` from namespace `ns` is answered within 2 s.
fn connects(ns: &str, addr: &str, port: u16) -> bool {
    py(
        ns,
        &format!("import socket; socket.create_connection(('{addr}', {port}), 2).close()"),
    )
}

/// A TCP listener on `port` in namespace `ns` (killed when the guard drops).
struct Listener(Child);

impl Listener {
    fn start(lab: &Lab, vm: &str, port: u16) -> Listener {
        let code = format!(
            "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', {port})); s.listen(16)\nwhile True:\n    c, _ = s.accept(); c.close()"
        );
        // `lab exec` becomes the command (exec), so killing the child ends the listener
        let child = testkit::lab::hybridnet_cmd(
            &lab.state,
            &[
                "lab", "exec", "--id", &lab.id, vm, "--", "python3", "-c", &code,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("listener");
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-q", addr,
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn nsg_rules_are_enforced_stateful_and_follow_changes() {
    let lab = Lab::up("examples/hybrid-connection");
    let internet = lab.status()["internet"]["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let allow_ssh = json!([rule("AllowSSH", 1000, "Allow", "Tcp", "22", "*")]);
    let (public, private) = deploy(&lab, &allow_ssh);
    let _ssh = Listener::start(&lab, "azure/vm2", 22);
    let _web = Listener::start(&lab, "azure/vm2", 8080);
    let in_vm = |vm: &str, addr: &str, port: u16| {
        let code =
            format!("import socket; socket.create_connection(('{addr}', {port}), 2).close()");
        lab.exec(vm, &["python3", "-c", &code]).status.success()
    };
    // the listeners are up (seen from inside the VM itself)
    wait_for_every(
        Duration::from_millis(100),
        Duration::from_secs(10),
        "listeners",
        || {
            (in_vm("azure/vm2", "127.0.0.1", 22) && in_vm("azure/vm2", "127.0.0.1", 8080))
                .then_some(())
        },
    )
    .unwrap();

    // from the internet: SSH answers, nothing else does
    assert!(
        connects(&internet, &public, 22),
        "SSH from the internet is allowed"
    );
    assert!(
        !connects(&internet, &public, 8080),
        "port 8080 is not allowed"
    );
    assert!(
        !ping(&internet, &public),
        "ICMP from the internet is denied"
    );
    // across the tunnel: the VNet's traffic (on-premises prefixes are VirtualNetwork)
    assert!(
        lab.ping("stackhub/vm1", &private),
        "the tunnel still reaches vm2"
    );
    assert!(lab.ping("azure/vm2", "10.2.1.4"), "vm2 reaches on-premises");
    // stateful: vm2's own flows out get their replies though inbound from there is denied
    let router = lab_router_internet_address(&lab);
    assert!(!ping(&internet, &public), "still no ping in");
    assert!(
        lab.ping("azure/vm2", &router),
        "vm2's ping out gets its reply"
    );

    // a deny above the allow takes effect on the running lab ...
    let deny_first = json!([
        rule("AllowSSH", 1000, "Allow", "Tcp", "22", "*"),
        rule("DenySSHFromInternet", 500, "Deny", "Tcp", "22", "Internet"),
    ]);
    deploy(&lab, &deny_first);
    assert!(
        !connects(&internet, &public, 22),
        "the higher-priority deny wins"
    );
    assert!(
        in_vm("stackhub/vm1", &private, 22),
        "SSH across the tunnel is VirtualNetwork, not Internet: still allowed"
    );
    // ... and removing it restores the allow
    deploy(&lab, &allow_ssh);
    assert!(connects(&internet, &public, 22), "allowed again");

    // the rules in effect, through the API as az shows them
    let api = Api::of(&lab);
    let az = api.login("azure");
    let eff = az.ok(&[
        "network",
        "nic",
        "list-effective-nsg",
        "-g",
        "azure",
        "-n",
        "vm2-nic",
    ]);
    let rules = eff["value"][0]["effectiveSecurityRules"]
        .as_array()
        .unwrap_or_else(|| panic!("{eff:#}"));
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for want in [
        "securityRules/AllowSSH",
        "defaultSecurityRules/AllowVnetInBound",
        "defaultSecurityRules/DenyAllInBound",
        "defaultSecurityRules/AllowInternetOutBound",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let vnet_in = rules
        .iter()
        .find(|r| r["name"] == "defaultSecurityRules/AllowVnetInBound")
        .unwrap();
    let expanded: Vec<&str> = vnet_in["expandedSourceAddressPrefix"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        expanded.contains(&"10.1.0.0/16") && expanded.contains(&"10.2.0.0/16"),
        "VirtualNetwork = the VNet and the on-premises prefixes: {expanded:?}"
    );

    // a rule added with az takes effect in the lab, and deleting it with az undoes it
    az.ok(&[
        "network",
        "nsg",
        "rule",
        "create",
        "-g",
        "azure",
        "--nsg-name",
        "vm2-nsg",
        "-n",
        "DenySSH",
        "--priority",
        "400",
        "--access",
        "Deny",
        "--protocol",
        "Tcp",
        "--direction",
        "Inbound",
        "--destination-port-ranges",
        "22",
        "--source-address-prefixes",
        "Internet",
    ]);
    assert!(!connects(&internet, &public, 22), "the az rule is enforced");
    let dup = az.fails(&[
        "network",
        "nsg",
        "rule",
        "create",
        "-g",
        "azure",
        "--nsg-name",
        "vm2-nsg",
        "-n",
        "Other",
        "--priority",
        "400",
        "--access",
        "Allow",
        "--protocol",
        "Udp",
        "--direction",
        "Inbound",
        "--destination-port-ranges",
        "53",
    ]);
    assert!(dup.contains("same priority 400"), "{dup}");
    az.ok(&[
        "network",
        "nsg",
        "rule",
        "delete",
        "-g",
        "azure",
        "--nsg-name",
        "vm2-nsg",
        "-n",
        "DenySSH",
    ]);
    assert!(connects(&internet, &public, 22), "and its deletion too");
}

/// The internet router's address on the azure site's public prefix (something outside the
/// VNet that answers).
fn lab_router_internet_address(lab: &Lab) -> String {
    lab.site_status("azure")["internetAddress"]
        .as_str()
        .unwrap()
        .to_string()
}
