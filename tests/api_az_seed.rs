//! The seed built with az alone: `lab up examples/empty-sites` gives two empty sites; az
//! creates on each a resource group, a VNet with its GatewaySubnet, a public IP, a VPN gateway,
//! a local network gateway for the other side, a connection with a shared key and a VM —
//! `az network …`/`az vm create` on the Azure site, `az rest` with the versions Azure Stack Hub
//! serves on the other (az 2.91 has no hybrid profiles). Both connections report Connected
//! with bytes and the VMs ping each other; then `vnet-gateway reset` and `vpn-connection
//! delete` take effect in the realized lab.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::az::{Api, Az};
use testkit::lab::Lab;

const HUB_NET: &str = "2018-11-01";
const HUB_COMPUTE: &str = "2017-12-01";

/// `az rest` on the Azure Stack Hub site.
struct Hub<'a> {
    az: &'a Az,
    base: String,
}

impl Hub<'_> {
    fn url(&self, path: &str, api: &str) -> String {
        format!(
            "{}resourceGroups/rg-hub/providers/{path}?api-version={api}",
            self.base
        )
    }

    fn put(&self, path: &str, api: &str, body: Value) -> Value {
        let url = self.url(path, api);
        self.az.ok(&[
            "rest",
            "--method",
            "put",
            "--url",
            &url,
            "--body",
            &body.to_string(),
        ]);
        self.wait(path, api)
    }

    fn get(&self, path: &str, api: &str) -> Value {
        self.az
            .ok(&["rest", "--method", "get", "--url", &self.url(path, api)])
    }

    /// GET until provisioningState leaves Updating (a long-running PUT, polled as clients do).
    fn wait(&self, path: &str, api: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.get(path, api);
            let state = v["properties"]["provisioningState"].as_str().unwrap_or("");
            if state != "Updating" || Instant::now() > deadline {
                assert_eq!(state, "Succeeded", "{path}: {v:#}");
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn id(&self, path: &str) -> String {
        let sub = self
            .base
            .split("/subscriptions/")
            .nth(1)
            .unwrap()
            .trim_end_matches('/');
        format!("/subscriptions/{sub}/resourceGroups/rg-hub/providers/{path}")
    }
}

fn wait_connected(get: impl Fn() -> Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = get();
        let status = c["connectionStatus"]
            .as_str()
            .or(c["properties"]["connectionStatus"].as_str())
            .unwrap_or("");
        if status == "Connected" || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `az network vpn-connection show` of the Azure side's connection.
fn show_az_to_hub(azure: &Az) -> Value {
    azure.ok(&[
        "network",
        "vpn-connection",
        "show",
        "-g",
        "rg-az",
        "-n",
        "az-to-hub",
    ])
}

#[test]
fn the_seed_built_with_az_alone() {
    let lab = Lab::up("examples/empty-sites");
    let api = Api::of(&lab);
    let hub_ep = api.endpoint("stackhub");
    let azure = api.login("azure");
    let hub_az = api.login("stackhub");
    let hub = Hub {
        az: &hub_az,
        base: format!(
            "{}subscriptions/{}/",
            hub_ep["url"].as_str().unwrap(),
            hub_ep["subscriptionId"].as_str().unwrap()
        ),
    };

    // Azure: the az commands a user types
    azure.ok(&["group", "create", "-n", "rg-az", "-l", "azure"]);
    azure.ok(&[
        "network",
        "vnet",
        "create",
        "-g",
        "rg-az",
        "-n",
        "vnet-az",
        "--address-prefixes",
        "10.1.0.0/16",
        "--subnet-name",
        "default",
        "--subnet-prefixes",
        "10.1.1.0/24",
    ]);
    azure.ok(&[
        "network",
        "vnet",
        "subnet",
        "create",
        "-g",
        "rg-az",
        "--vnet-name",
        "vnet-az",
        "-n",
        "GatewaySubnet",
        "--address-prefixes",
        "10.1.255.0/27",
    ]);
    azure.ok(&[
        "network",
        "public-ip",
        "create",
        "-g",
        "rg-az",
        "-n",
        "gw-az-pip",
        "--sku",
        "Standard",
    ]);
    azure.ok(&[
        "network",
        "vnet-gateway",
        "create",
        "-g",
        "rg-az",
        "-n",
        "gw-az",
        "--vnet",
        "vnet-az",
        "--public-ip-addresses",
        "gw-az-pip",
        "--gateway-type",
        "Vpn",
        "--vpn-type",
        "RouteBased",
        "--sku",
        "VpnGw1",
    ]);
    let az_ip = azure.ok(&[
        "network",
        "public-ip",
        "show",
        "-g",
        "rg-az",
        "-n",
        "gw-az-pip",
    ])["ipAddress"]
        .as_str()
        .expect("the gateway's public IP is allocated")
        .to_string();

    // Azure Stack Hub: the same resources through az rest
    hub_az.rest(
        "put",
        &format!("{}resourcegroups/rg-hub?api-version=2019-10-01", hub.base),
        Some(&json!({ "location": "stackhub" })),
    );
    hub.put(
        "Microsoft.Network/virtualNetworks/vnet-hub",
        HUB_NET,
        json!({
            "location": "stackhub",
            "properties": {
                "addressSpace": { "addressPrefixes": ["10.2.0.0/16"] },
                "subnets": [
                    { "name": "default", "properties": { "addressPrefix": "10.2.1.0/24" } },
                    { "name": "GatewaySubnet", "properties": { "addressPrefix": "10.2.255.0/27" } },
                ],
            },
        }),
    );
    hub.put(
        "Microsoft.Network/publicIPAddresses/gw-hub-pip",
        HUB_NET,
        json!({
            "location": "stackhub", "properties": { "publicIPAllocationMethod": "Dynamic" },
        }),
    );
    hub.put("Microsoft.Network/virtualNetworkGateways/gw-hub", HUB_NET, json!({
        "location": "stackhub",
        "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased", "sku": { "name": "Standard", "tier": "Standard" },
            "ipConfigurations": [{
                "name": "default",
                "properties": {
                    "privateIPAllocationMethod": "Dynamic",
                    "subnet": { "id": hub.id("Microsoft.Network/virtualNetworks/vnet-hub/subnets/GatewaySubnet") },
                    "publicIPAddress": { "id": hub.id("Microsoft.Network/publicIPAddresses/gw-hub-pip") },
                },
            }],
        },
    }));
    let hub_ip = hub.get("Microsoft.Network/publicIPAddresses/gw-hub-pip", HUB_NET)["properties"]
        ["ipAddress"]
        .as_str()
        .expect("the hub gateway's public IP is allocated")
        .to_string();

    // each side's view of the other, and the connections
    azure.ok(&[
        "network",
        "local-gateway",
        "create",
        "-g",
        "rg-az",
        "-n",
        "lgw-hub",
        "--gateway-ip-address",
        &hub_ip,
        "--local-address-prefixes",
        "10.2.0.0/16",
    ]);
    // Azure Stack Hub runs its fixed policy; Azure offers it through a custom policy
    azure.ok(&[
        "network",
        "vpn-connection",
        "create",
        "-g",
        "rg-az",
        "-n",
        "az-to-hub",
        "--vnet-gateway1",
        "gw-az",
        "--local-gateway2",
        "lgw-hub",
        "--shared-key",
        "built-with-az",
    ]);
    azure.ok(&[
        "network",
        "vpn-connection",
        "ipsec-policy",
        "add",
        "-g",
        "rg-az",
        "--connection-name",
        "az-to-hub",
        "--dh-group",
        "ECP384",
        "--ike-encryption",
        "AES256",
        "--ike-integrity",
        "SHA384",
        "--ipsec-encryption",
        "GCMAES256",
        "--ipsec-integrity",
        "GCMAES256",
        "--pfs-group",
        "ECP384",
        "--sa-lifetime",
        "27000",
        "--sa-max-size",
        "102400000",
    ]);
    hub.put("Microsoft.Network/localNetworkGateways/lgw-az", HUB_NET, json!({
        "location": "stackhub",
        "properties": { "gatewayIpAddress": az_ip, "localNetworkAddressSpace": { "addressPrefixes": ["10.1.0.0/16"] } },
    }));
    hub.put("Microsoft.Network/connections/hub-to-az", HUB_NET, json!({
        "location": "stackhub",
        "properties": {
            "connectionType": "IPsec", "sharedKey": "built-with-az", "routingWeight": 10,
            "virtualNetworkGateway1": { "id": hub.id("Microsoft.Network/virtualNetworkGateways/gw-hub") },
            "localNetworkGateway2": { "id": hub.id("Microsoft.Network/localNetworkGateways/lgw-az") },
        },
    }));

    // a VM on each side
    azure.ok(&[
        "network",
        "nic",
        "create",
        "-g",
        "rg-az",
        "-n",
        "vm-az-nic",
        "--vnet-name",
        "vnet-az",
        "--subnet",
        "default",
    ]);
    let vm = azure.ok(&[
        "vm",
        "create",
        "-g",
        "rg-az",
        "-n",
        "vm-az",
        "--nics",
        "vm-az-nic",
        "--image",
        "Canonical:ubuntu-24_04-lts:server:latest",
        "--admin-username",
        "azureuser",
        "--admin-password",
        "Lab-Passw0rd-123",
        "--size",
        "Standard_B1s",
    ]);
    assert_eq!(vm["powerState"], "VM running", "{vm:#}");
    let az_vm_ip = vm["privateIpAddress"].as_str().unwrap().to_string();
    hub.put("Microsoft.Network/networkInterfaces/vm-hub-nic", HUB_NET, json!({
        "location": "stackhub",
        "properties": { "ipConfigurations": [{ "name": "ipconfig1", "properties": {
            "privateIPAllocationMethod": "Dynamic",
            "subnet": { "id": hub.id("Microsoft.Network/virtualNetworks/vnet-hub/subnets/default") },
        }}]},
    }));
    hub.put("Microsoft.Compute/virtualMachines/vm-hub", HUB_COMPUTE, json!({
        "location": "stackhub",
        "properties": {
            "hardwareProfile": { "vmSize": "Standard_A1_v2" },
            "osProfile": { "computerName": "vm-hub", "adminUsername": "azureuser", "adminPassword": "Lab-Passw0rd-123" },
            "storageProfile": { "imageReference": { "publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts", "version": "latest" } },
            "networkProfile": { "networkInterfaces": [{ "id": hub.id("Microsoft.Network/networkInterfaces/vm-hub-nic") }] },
        },
    }));
    let hub_vm_ip = hub.get("Microsoft.Network/networkInterfaces/vm-hub-nic", HUB_NET)
        ["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
        .as_str()
        .unwrap()
        .to_string();

    // both connections come up and carry the VMs' traffic
    let c = wait_connected(|| show_az_to_hub(&azure));
    assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
    let h = wait_connected(|| hub.get("Microsoft.Network/connections/hub-to-az", HUB_NET));
    assert_eq!(h["properties"]["connectionStatus"], "Connected", "{h:#}");
    assert!(
        lab.ping("azure/vm-az", &hub_vm_ip),
        "azure/vm-az -> {hub_vm_ip}"
    );
    assert!(
        lab.ping("stackhub/vm-hub", &az_vm_ip),
        "stackhub/vm-hub -> {az_vm_ip}"
    );
    let c = show_az_to_hub(&azure);
    assert!(
        c["egressBytesTransferred"].as_u64().unwrap_or(0) > 0,
        "{c:#}"
    );
    assert!(
        c["ingressBytesTransferred"].as_u64().unwrap_or(0) > 0,
        "{c:#}"
    );

    // reset restarts the Azure gateway: another gateway process, and the tunnel comes back
    // by itself
    let gateway_pid = || {
        let st = lab.status();
        let conn = st["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "azure")
            .and_then(|x| {
                x["connections"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == "az-to-hub")
                    .cloned()
            })
            .expect("az-to-hub in lab status");
        let source = conn["resource"]["hybridnet"]["statusSource"]
            .as_str()
            .unwrap_or("")
            .to_string();
        source
            .rsplit("(pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse::<i32>().ok())
    };
    let before = gateway_pid().expect("the gateway reports its pid");
    azure.ok(&[
        "network",
        "vnet-gateway",
        "reset",
        "-g",
        "rg-az",
        "-n",
        "gw-az",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway_pid() == Some(before) || !lab.ping("azure/vm-az", &hub_vm_ip) {
        assert!(
            Instant::now() < deadline,
            "no new gateway process with traffic after the reset"
        );
    }
    let c = wait_connected(|| show_az_to_hub(&azure));
    assert_eq!(c["connectionStatus"], "Connected", "{c:#}");

    // deleting the connection takes the tunnel down for good
    azure.ok(&[
        "network",
        "vpn-connection",
        "delete",
        "-g",
        "rg-az",
        "-n",
        "az-to-hub",
    ]);
    let err = azure.fails(&[
        "network",
        "vpn-connection",
        "show",
        "-g",
        "rg-az",
        "-n",
        "az-to-hub",
    ]);
    assert!(err.contains("ResourceNotFound"), "{err}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lab.ping("azure/vm-az", &hub_vm_ip),
        "traffic still crosses a deleted connection"
    );
}
