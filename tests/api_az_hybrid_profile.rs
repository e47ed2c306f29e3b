//! az as Azure Stack Hub users run it: the 2.66 LTS release with the cloud registered under a
//! hybrid API profile (`--profile 2019-03-01-hybrid`, then `az cloud update --profile …`)
//! drives the seed's Azure Stack Hub site with the profile's API versions; with the `latest`
//! profile the site refuses, as Azure Stack Hub does.

use serde_json::Value;
use testkit::az::Api;
use testkit::lab::Lab;

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn hybrid_profiles_drive_the_azure_stack_hub_site() {
    let lab = Lab::up("examples/hybrid-connection");
    let api = Api::of(&lab);
    let hub = api.login_with_profile("stackhub", "2019-03-01-hybrid");

    // what the seed's templates made, read with the profile's versions
    assert!(names(&hub.ok(&["group", "list"])).contains(&"stackhub".to_string()));
    let conn = hub.ok(&[
        "network",
        "vpn-connection",
        "show",
        "-g",
        "stackhub",
        "-n",
        "stackhub-to-azure",
    ]);
    assert_eq!(conn["connectionStatus"], "Connected", "{conn:#}");
    assert!(
        conn["egressBytesTransferred"].as_u64().unwrap_or(0) > 0,
        "{conn:#}"
    );
    assert!(names(&hub.ok(&["vm", "list"])).contains(&"vm1".to_string()));
    let key = hub.ok(&[
        "network",
        "vpn-connection",
        "shared-key",
        "show",
        "-g",
        "stackhub",
        "--connection-name",
        "stackhub-to-azure",
    ]);
    assert!(key["value"].is_string(), "{key:#}");

    // a new group and VNet through the profile's versions, realized in the lab
    let location = api.endpoint("stackhub")["location"]
        .as_str()
        .unwrap()
        .to_string();
    hub.ok(&["group", "create", "-n", "hubnet", "-l", &location]);
    hub.ok(&[
        "network",
        "vnet",
        "create",
        "-g",
        "hubnet",
        "-n",
        "hubvnet",
        "--address-prefixes",
        "10.80.0.0/16",
        "--subnet-name",
        "default",
        "--subnet-prefixes",
        "10.80.1.0/24",
    ]);
    // the 2019-03-01-hybrid profile's subnet command takes one prefix (Network 2018-11-01)
    hub.ok(&[
        "network",
        "vnet",
        "subnet",
        "create",
        "-g",
        "hubnet",
        "--vnet-name",
        "hubvnet",
        "-n",
        "GatewaySubnet",
        "--address-prefix",
        "10.80.255.0/27",
    ]);
    let vnet = hub.ok(&["network", "vnet", "show", "-g", "hubnet", "-n", "hubvnet"]);
    assert_eq!(vnet["provisioningState"], "Succeeded", "{vnet:#}");
    assert_eq!(
        vnet["subnets"].as_array().map(Vec::len),
        Some(2),
        "{vnet:#}"
    );
    let status = lab.status();
    let site = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stackhub")
        .unwrap();
    assert!(
        site["virtualNetworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "hubvnet" && v["router"]["exists"] == true),
        "{:#}",
        site["virtualNetworks"]
    );

    // the newest profile Azure Stack Hub has works as well
    hub.ok(&["cloud", "update", "--profile", "2020-09-01-hybrid"]);
    let listed = hub.ok(&["network", "vnet", "list", "--query", "[].name"]);
    assert!(
        listed.as_array().unwrap().iter().any(|n| n == "hubvnet"),
        "{listed:#}"
    );

    // `latest` asks for versions the site does not have: refused with Azure's codes
    hub.ok(&["cloud", "update", "--profile", "latest"]);
    let err = hub.fails(&["group", "list"]);
    assert!(err.contains("InvalidApiVersionParameter"), "{err}");
    let err = hub.fails(&["network", "vnet", "list"]);
    assert!(
        err.contains("NoRegisteredProviderFound") && err.contains("2018-11-01"),
        "{err}"
    );
    hub.ok(&["cloud", "update", "--profile", "2019-03-01-hybrid"]);
    assert!(names(&hub.ok(&["group", "list"])).contains(&"hubnet".to_string()));
}
