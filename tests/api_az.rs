//! The real az CLI against both sites of the seed (`lab up examples/hybrid-connection`): cloud
//! registration and service-principal login per site, resource groups and networks created
//! through the API and realized, the VPN connections shown Connected with bytes, a shared
//! key changed through the API that really changes the tunnel, Azure's errors (api-version the
//! Azure Stack Hub site does not serve, no token or an expired one, the other site's token, a subnet in use),
//! and `lab down` leaving no controller behind.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::az::{Api, Az};
use testkit::lab::Lab;

fn connection(az: &Az, group: &str) -> Value {
    let list = az.ok(&["network", "vpn-connection", "list", "-g", group]);
    let name = list[0]["name"].as_str().expect("a connection").to_string();
    az.ok(&[
        "network",
        "vpn-connection",
        "show",
        "-g",
        group,
        "-n",
        &name,
    ])
}

fn wait_status(az: &Az, group: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = connection(az, group);
        if c["connectionStatus"] == want || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `az`'s token for `resource`, with the same claims but expired an hour ago, signed with
/// the lab's token key (what a client that kept an old token sends).
fn expired_copy(az: &Az, resource: &str, key_file: &std::path::Path) -> String {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let token = az.ok(&["account", "get-access-token", "--resource", resource])["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let key = std::fs::read_to_string(key_file).unwrap();
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let mut claims = jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_secret(key.trim().as_bytes()).unwrap(),
        &v,
    )
    .expect("the lab's token verifies with the lab's key")
    .claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["iat"] = (now - 7200).into();
    claims["nbf"] = (now - 7200).into();
    claims["exp"] = (now - 3600).into();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.trim().as_bytes()).unwrap(),
    )
    .unwrap()
}

#[test]
fn az_drives_both_sites_of_the_seed() {
    let lab = Lab::up("examples/hybrid-connection");
    let status = lab.status();
    let api = Api::of(&lab);
    let (azure_ep, hub_ep) = (api.endpoint("azure"), api.endpoint("stackhub"));
    let azure = api.login("azure");
    // az 2.91 has no hybrid API profiles any more: on the Azure Stack Hub site the network
    // calls go through `az rest` with a version that site serves.
    let hub = api.login("stackhub");
    let hub_sub = hub_ep["subscriptionId"].as_str().unwrap().to_string();
    let hub_conn_url = |suffix: &str| {
        format!(
            "{}subscriptions/{hub_sub}/resourceGroups/stackhub/providers/Microsoft.Network/connections{suffix}?api-version=2018-11-01",
            hub_ep["url"].as_str().unwrap()
        )
    };

    // each site is a subscription of its own, and its groups are what the templates made
    let account = azure.ok(&["account", "show"]);
    assert_eq!(account["id"], azure_ep["subscriptionId"]);
    // Resource Manager's own API in the versions Azure Stack Hub has; the latest az's is refused
    let err = hub.fails(&["group", "list"]);
    assert!(err.contains("InvalidApiVersionParameter"), "{err}");
    let groups = hub.rest(
        "get",
        &format!(
            "{}subscriptions/{hub_sub}/resourcegroups?api-version=2019-10-01",
            hub_ep["url"].as_str().unwrap()
        ),
        None,
    );
    assert!(
        groups["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "stackhub"),
        "{groups:#}"
    );

    // the connections the templates made, live from the gateways
    let hub_conns = hub.ok(&["rest", "--method", "get", "--url", &hub_conn_url("")]);
    let hub_conn = hub_conns["value"][0]["name"]
        .as_str()
        .expect("a connection")
        .to_string();
    let hub_view = hub.ok(&[
        "rest",
        "--method",
        "get",
        "--url",
        &hub_conn_url(&format!("/{hub_conn}")),
    ]);
    for c in [connection(&azure, "azure"), hub_view["properties"].clone()] {
        assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
        assert!(
            c["egressBytesTransferred"].as_u64().unwrap_or(0) > 0,
            "{c:#}"
        );
        assert!(
            c.get("sharedKey").is_none(),
            "GET never shows the key: {c:#}"
        );
    }

    // a resource group and a network made through the API are realized as a VNet router
    azure.ok(&["group", "create", "-n", "api-rg", "-l", "azure"]);
    let vnet = azure.ok(&[
        "network",
        "vnet",
        "create",
        "-g",
        "api-rg",
        "-n",
        "api-vnet",
        "--address-prefixes",
        "10.77.0.0/16",
        "--subnet-name",
        "apps",
        "--subnet-prefixes",
        "10.77.1.0/24",
    ]);
    assert_eq!(
        vnet["newVNet"]["provisioningState"], "Succeeded",
        "{vnet:#}"
    );
    let subnet = azure.ok(&[
        "network",
        "vnet",
        "subnet",
        "create",
        "-g",
        "api-rg",
        "--vnet-name",
        "api-vnet",
        "-n",
        "GatewaySubnet",
        "--address-prefixes",
        "10.77.255.0/27",
    ]);
    assert_eq!(subnet["addressPrefix"], "10.77.255.0/27");
    assert!(
        lab.namespaces()
            .iter()
            .any(|n| n.ends_with("azure-vnet-api-vnet")),
        "the VNet has its router namespace: {:?}",
        lab.namespaces()
    );
    // optimistic concurrency: a PUT with a stale ETag is refused, with the current one accepted
    let vnet_url = format!(
        "{}subscriptions/{}/resourceGroups/api-rg/providers/Microsoft.Network/virtualNetworks/api-vnet?api-version=2024-05-01",
        azure_ep["url"].as_str().unwrap(),
        azure_ep["subscriptionId"].as_str().unwrap()
    );
    let current = azure.rest("get", &vnet_url, None);
    let etag = current["etag"].as_str().expect("an ETag").to_string();
    let mut tagged = current.clone();
    tagged["tags"] = serde_json::json!({ "owner": "api-test" });
    let body = tagged.to_string();
    let stale = "If-Match=W/\"00000000-0000-0000-0000-000000000000\"";
    let err = azure.fails(&[
        "rest",
        "--method",
        "put",
        "--url",
        &vnet_url,
        "--body",
        &body,
        "--headers",
        stale,
    ]);
    assert!(err.contains("PreconditionFailed"), "{err}");
    let fresh = format!("If-Match={etag}");
    let updated = azure.ok(&[
        "rest",
        "--method",
        "put",
        "--url",
        &vnet_url,
        "--body",
        &body,
        "--headers",
        &fresh,
    ]);
    assert_eq!(updated["tags"]["owner"], "api-test", "{updated:#}");
    assert_ne!(
        updated["etag"].as_str(),
        Some(etag.as_str()),
        "a change gives a new ETag"
    );

    // overlapping the VNet's own subnet is refused and changes nothing
    let err = azure.fails(&[
        "network",
        "vnet",
        "subnet",
        "create",
        "-g",
        "api-rg",
        "--vnet-name",
        "api-vnet",
        "-n",
        "clash",
        "--address-prefixes",
        "10.77.1.128/25",
    ]);
    assert!(
        err.contains("NetcfgSubnetRangesOverlap") || err.contains("overlap"),
        "{err}"
    );
    let subnets = azure.ok(&[
        "network",
        "vnet",
        "subnet",
        "list",
        "-g",
        "api-rg",
        "--vnet-name",
        "api-vnet",
    ]);
    let shown = azure.ok(&["network", "vnet", "show", "-g", "api-rg", "-n", "api-vnet"]);
    assert_eq!(
        subnets.as_array().unwrap().len(),
        2,
        "{subnets:#} {shown:#}"
    );

    // a subnet in use cannot be deleted: Azure's code, nothing deleted
    let vnets = azure.ok(&["network", "vnet", "list", "-g", "azure"]);
    let seed_vnet = vnets[0]["name"].as_str().unwrap().to_string();
    let err = azure.fails(&[
        "network",
        "vnet",
        "subnet",
        "delete",
        "-g",
        "azure",
        "--vnet-name",
        &seed_vnet,
        "-n",
        "GatewaySubnet",
    ]);
    assert!(err.contains("InUseSubnetCannotBeDeleted"), "{err}");
    azure.ok(&[
        "network",
        "vnet",
        "subnet",
        "show",
        "-g",
        "azure",
        "--vnet-name",
        &seed_vnet,
        "-n",
        "GatewaySubnet",
    ]);

    // the Azure Stack Hub site refuses an api-version it does not serve, as Azure Stack Hub does
    let url = format!(
        "{}subscriptions/{hub_sub}/resourceGroups/stackhub/providers/Microsoft.Network/virtualNetworks?api-version=2024-05-01",
        hub_ep["url"].as_str().unwrap()
    );
    let err = hub.fails(&["rest", "--method", "get", "--url", &url]);
    assert!(err.contains("NoRegisteredProviderFound"), "{err}");
    let ok_url = url.replace("2024-05-01", "2018-11-01");
    let listed = hub.ok(&["rest", "--method", "get", "--url", &ok_url]);
    assert!(
        !listed["value"].as_array().unwrap().is_empty(),
        "{listed:#}"
    );
    // no token: 401; the other site's genuine token: 403
    let err = hub.fails(&[
        "rest",
        "--method",
        "get",
        "--url",
        &ok_url,
        "--skip-authorization-header",
    ]);
    assert!(
        err.contains("AuthenticationFailed") && err.contains("Unauthorized"),
        "{err}"
    );
    // the site's own token, expired (re-signed with the lab's key an hour in the past): 401
    let expired = expired_copy(
        &hub,
        hub_ep["url"].as_str().unwrap(),
        &api.ca.with_file_name("token.key"),
    );
    let err = hub.fails(&[
        "rest",
        "--method",
        "get",
        "--url",
        &ok_url,
        "--skip-authorization-header",
        "--headers",
        &format!("Authorization=Bearer {expired}"),
    ]);
    assert!(
        err.contains("ExpiredAuthenticationToken") && err.contains("Unauthorized"),
        "{err}"
    );
    let token = azure.ok(&[
        "account",
        "get-access-token",
        "--resource",
        hub_ep["url"].as_str().unwrap(),
    ])["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = format!("Authorization=Bearer {token}");
    let err = hub.fails(&[
        "rest",
        "--method",
        "get",
        "--url",
        &ok_url,
        "--skip-authorization-header",
        "--headers",
        &bearer,
    ]);
    assert!(
        err.contains("AuthorizationFailed") && err.contains("Forbidden"),
        "{err}"
    );

    // a new shared key on one side breaks the tunnel, on both sides mends it
    let key_of = |az: &Az, group: &str| {
        let name = connection(az, group)["name"].as_str().unwrap().to_string();
        (name, group.to_string())
    };
    let (azure_conn, _) = key_of(&azure, "azure");
    azure.ok(&[
        "network",
        "vpn-connection",
        "shared-key",
        "update",
        "-g",
        "azure",
        "--connection-name",
        &azure_conn,
        "--value",
        "rotated-by-az-1",
    ]);
    let shown = azure.ok(&[
        "network",
        "vpn-connection",
        "shared-key",
        "show",
        "-g",
        "azure",
        "--connection-name",
        &azure_conn,
    ]);
    assert_eq!(shown["value"], "rotated-by-az-1");
    let down = wait_status(&azure, "azure", "NotConnected", Duration::from_secs(40));
    assert_ne!(
        down["connectionStatus"], "Connected",
        "the old key no longer works: {down:#}"
    );
    hub.ok(&[
        "rest",
        "--method",
        "put",
        "--url",
        &hub_conn_url(&format!("/{hub_conn}/sharedkey")),
        "--body",
        r#"{"value": "rotated-by-az-1"}"#,
    ]);
    let up = wait_status(&azure, "azure", "Connected", Duration::from_secs(60));
    assert_eq!(up["connectionStatus"], "Connected", "{up:#}");
    let hub_vm_ip = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stackhub")
        .and_then(|s| s["virtualMachines"][0]["nics"][0]["privateIpAddress"].as_str())
        .unwrap_or_else(|| panic!("no stackhub VM address in lab status: {status:#}"))
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.ping("azure/vm1", &hub_vm_ip) {
        assert!(
            Instant::now() < deadline,
            "VM traffic did not come back after the key change"
        );
    }

    // reset makes a new key of the length asked for
    azure.ok(&[
        "network",
        "vpn-connection",
        "shared-key",
        "reset",
        "-g",
        "azure",
        "--connection-name",
        &azure_conn,
        "--key-length",
        "40",
    ]);
    let reset = azure.ok(&[
        "network",
        "vpn-connection",
        "shared-key",
        "show",
        "-g",
        "azure",
        "--connection-name",
        &azure_conn,
    ]);
    let key = reset["value"].as_str().unwrap_or_default();
    assert!(key.len() == 40 && key != "rotated-by-az-1", "{reset:#}");

    // lab down ends the controller and its port
    let pid = api.doc["pid"].as_i64().unwrap();
    let port = azure_ep["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let out = lab.down();
    assert!(out.status.success(), "{}", testkit::lab::show(&out));
    // ended (a zombie until whoever inherited it reaps it is not running)
    assert!(
        !fabric::daemon::is_live(pid as i32),
        "controller {pid} still runs"
    );
    assert!(
        !lab.state.join("labs").join(&lab.id).join("api").exists(),
        "the controller's files are gone"
    );
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "port {port} still answers"
    );
}
