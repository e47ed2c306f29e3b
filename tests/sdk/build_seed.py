"""The seed built with the Azure SDK for Python against a lab's two empty sites.

Reads the lab's API description (`hybridnet lab status --json`'s "api" object) from the file
named by argv[1]; authenticates each site's service principal with azure-identity's
ClientSecretCredential against the site's AD FS-style authority; creates, with the management
clients' long-running-operation pollers, a resource group, a VNet with its GatewaySubnet, a public
IP, a VPN gateway, a local network gateway for the other side, a connection and a VM on each
site (the Azure Stack Hub site with API versions it serves); prints the VMs' addresses as JSON.
REQUESTS_CA_BUNDLE must name the lab CA.
"""

import json
import sys

from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource import ResourceManagementClient
from azure.mgmt.resource.resources.models import GenericResource

API = json.load(open(sys.argv[1]))
SITES = {
    "azure": dict(prefix="10.1", sku="VpnGw1", network=None, compute="2023-09-01"),
    "stackhub": dict(prefix="10.2", sku="Standard", network="2018-11-01", compute="2017-12-01"),
}
POLICY = {"saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000,
          "ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256", "ikeEncryption": "AES256",
          "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384"}


def endpoint(site):
    return next(e for e in API["endpoints"] if e["site"] == site)


def clients(site):
    ep = endpoint(site)
    url = ep["url"]
    secret = open(ep["secretFile"]).read().strip()
    # Azure Stack Hub's AD FS: the authority is the endpoint's /adfs, the tenant "adfs"
    cred = ClientSecretCredential("adfs", ep["clientId"], secret, authority=url.rstrip("/"),
                                  disable_instance_discovery=True)
    scopes = [url + ".default"]
    kw = dict(base_url=url, credential_scopes=scopes, polling_interval=1)
    return (ResourceManagementClient(cred, ep["subscriptionId"], **kw),
            NetworkManagementClient(cred, ep["subscriptionId"], **kw), ep)


def build_site(site):
    rm, net, ep = clients(site)
    # each call names the API version the site serves (the Azure Stack Hub site: 2018-11-01)
    v = {"api_version": SITES[site]["network"]} if SITES[site]["network"] else {}
    p = SITES[site]["prefix"]
    rg = f"sdk-{site}"
    loc = ep["location"]
    # Resource Manager's own API: Azure Stack Hub serves it up to 2019-10-01
    rv = {"api_version": "2019-10-01"} if SITES[site]["network"] else {}
    rm.resource_groups.create_or_update(rg, {"location": loc}, **rv)
    # bodies in the wire shape (the generated clients pass dicts through as JSON)
    vnet = net.virtual_networks.begin_create_or_update(rg, "vnet", {
        "location": loc, "properties": {
            "addressSpace": {"addressPrefixes": [f"{p}.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": f"{p}.1.0/24"}},
                        {"name": "GatewaySubnet", "properties": {"addressPrefix": f"{p}.255.0/27"}}],
        }}, **v).result()
    assert vnet.provisioning_state == "Succeeded", vnet
    gw_subnet = next(s for s in vnet.subnets if s.name == "GatewaySubnet")
    default = next(s for s in vnet.subnets if s.name == "default")
    pip = net.public_ip_addresses.begin_create_or_update(rg, "gw-pip", {
        "location": loc, "properties": {"publicIPAllocationMethod": "Dynamic"}}, **v).result()
    gw = net.virtual_network_gateways.begin_create_or_update(rg, "gw", {
        "location": loc, "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased",
            "sku": {"name": SITES[site]["sku"], "tier": SITES[site]["sku"]},
            "ipConfigurations": [{"name": "default", "properties": {
                "subnet": {"id": gw_subnet.id}, "publicIPAddress": {"id": pip.id},
                "privateIPAllocationMethod": "Dynamic"}}],
        }}, **v).result()
    assert gw.provisioning_state == "Succeeded", gw
    nic = net.network_interfaces.begin_create_or_update(rg, "vm-nic", {
        "location": loc, "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {
                "subnet": {"id": default.id}, "privateIPAllocationMethod": "Dynamic"}}],
        }}, **v).result()
    vm_id = f"/subscriptions/{ep['subscriptionId']}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm"
    vm = rm.resources.begin_create_or_update_by_id(vm_id, SITES[site]["compute"], GenericResource(
        location=loc,
        properties={
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "osProfile": {"computerName": "vm", "adminUsername": "azureuser", "adminPassword": "Lab-Passw0rd-123"},
            "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                                                  "sku": "server", "version": "latest"}},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        })).result()
    assert vm.properties["provisioningState"] == "Succeeded", vm
    ip = net.public_ip_addresses.get(rg, "gw-pip", **v).ip_address
    nic = net.network_interfaces.get(rg, "vm-nic", **v)
    return dict(net=net, v=v, rg=rg, loc=loc, gw=gw, gateway_ip=ip, prefix=f"{p}.0.0/16",
                vm_ip=nic.ip_configurations[0].private_ip_address)


def connect(me, other, name):
    net = me["net"]
    lgw = net.local_network_gateways.begin_create_or_update(me["rg"], "lgw", {
        "location": me["loc"], "properties": {
            "gatewayIpAddress": other["gateway_ip"],
            "localNetworkAddressSpace": {"addressPrefixes": [other["prefix"]]},
        }}, **me["v"]).result()
    conn = net.virtual_network_gateway_connections.begin_create_or_update(me["rg"], name, {
        "location": me["loc"], "properties": {
            "connectionType": "IPsec", "sharedKey": "built-with-the-sdk",
            "virtualNetworkGateway1": {"id": me["gw"].id}, "localNetworkGateway2": {"id": lgw.id},
            "ipsecPolicies": [POLICY] if me["loc"] == "azure" else [],
        }}, **me["v"]).result()
    assert conn.provisioning_state == "Succeeded", conn


azure, hub = build_site("azure"), build_site("stackhub")
connect(azure, hub, "sdk-azure-to-hub")
connect(hub, azure, "sdk-hub-to-azure")
print(json.dumps({"azure_vm": azure["vm_ip"], "hub_vm": hub["vm_ip"]}))
