//! `az deployment group create` with examples/hybrid-connection's templates on two empty
//! sites (what lab.yaml does, through the API instead): both sites deployed, what-if and
//! validate before the connections, the connections deployed with the other side's outputs,
//! both Connected and the VMs pinging each other; a template that does not validate is
//! refused with Azure's code and changes nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::az::Api;
use testkit::lab::{repo_root, Lab};

fn template(name: &str) -> String {
    repo_root()
        .join("examples/hybrid-connection/templates")
        .join(name)
        .display()
        .to_string()
}

fn output(d: &Value, name: &str) -> Value {
    d["properties"]["outputs"][name]["value"].clone()
}

#[test]
fn az_deploys_the_seed_templates() {
    let lab = Lab::up("examples/empty-sites");
    let api = Api::of(&lab);
    let hub_ep = api.endpoint("stackhub");
    let azure = api.login("azure");
    let hub = api.login("stackhub");

    azure.ok(&["group", "create", "-n", "azure", "-l", "azure"]);
    // Azure Stack Hub serves Resource Manager up to 2019-10-01: az rest with that version
    let hub_rm = format!(
        "{}subscriptions/{}/resourcegroups/stackhub",
        hub_ep["url"].as_str().unwrap(),
        hub_ep["subscriptionId"].as_str().unwrap()
    );
    hub.rest(
        "put",
        &format!("{hub_rm}?api-version=2019-10-01"),
        Some(&json!({ "location": "stackhub" })),
    );
    let hub_deploy = |name: &str, file: &str, parameters: Value| {
        let url = format!(
            "{hub_rm}/providers/Microsoft.Resources/deployments/{name}?api-version=2019-10-01"
        );
        let text = std::fs::read_to_string(template(file)).unwrap();
        let body = json!({ "properties": {
            "mode": "Incremental",
            "template": serde_json::from_str::<Value>(&text).unwrap(),
            "parameters": parameters,
        }});
        hub.rest("put", &url, Some(&body));
        hub.rest("get", &url, None)
    };
    let a = azure.ok(&[
        "deployment",
        "group",
        "create",
        "-g",
        "azure",
        "-n",
        "azure-site",
        "--template-file",
        &template("azure-site.json"),
    ]);
    assert_eq!(a["properties"]["provisioningState"], "Succeeded", "{a:#}");
    let h = hub_deploy("stackhub-site", "stackhub-site.json", json!({}));
    assert_eq!(h["properties"]["provisioningState"], "Succeeded", "{h:#}");

    let azure_ip = output(&a, "gatewayPublicIp");
    let hub_ip = output(&h, "gatewayPublicIp");
    assert!(azure_ip.is_string() && hub_ip.is_string(), "{a:#} {h:#}");
    let policy = r#"[{"saLifeTimeSeconds":27000,"saDataSizeKilobytes":102400000,"ipsecEncryption":"GCMAES256","ipsecIntegrity":"GCMAES256","ikeEncryption":"AES256","ikeIntegrity":"SHA384","dhGroup":"ECP384","pfsGroup":"ECP384"}]"#;
    let params = |gw: &str, lgw: &str, ip: &Value, prefix: &Value, name: &str| {
        vec![
            format!("gatewayName={gw}"),
            format!("localGatewayName={lgw}"),
            format!("localGatewayIpAddress={}", ip.as_str().unwrap()),
            format!("localAddressPrefixes=[\"{}\"]", prefix.as_str().unwrap()),
            format!("connectionName={name}"),
            "sharedKey=deployed-with-az".to_string(),
        ]
    };
    let mut azure_params = params(
        "azure-gw",
        "stackhub-lgw",
        &hub_ip,
        &output(&h, "vnetAddressPrefix"),
        "azure-to-stackhub",
    );
    azure_params.push(format!("ipsecPolicies={policy}"));
    let hub_params = params(
        "stackhub-gw",
        "azure-lgw",
        &azure_ip,
        &output(&a, "vnetAddressPrefix"),
        "stackhub-to-azure",
    );
    let with = |base: &[&str], ps: &[String]| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.push("--parameters".into());
        v.extend(ps.iter().cloned());
        v
    };
    let conn = template("connection.json");

    // what-if names what would be created, and creates nothing
    let base = [
        "deployment",
        "group",
        "what-if",
        "-g",
        "azure",
        "-n",
        "azure-connection",
        "--template-file",
        &conn,
        "--no-pretty-print",
    ];
    let args = with(&base, &azure_params);
    let whatif = azure.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let changes = whatif["changes"].as_array().expect("what-if lists changes");
    assert!(
        changes.iter().any(|c| c["changeType"] == "Create"
            && c["resourceId"]
                .as_str()
                .unwrap_or("")
                .ends_with("connections/azure-to-stackhub")),
        "{whatif:#}"
    );
    let none = azure.ok(&["network", "vpn-connection", "list", "-g", "azure"]);
    assert_eq!(
        none.as_array().unwrap().len(),
        0,
        "what-if created something: {none:#}"
    );

    // a template that does not validate: the local network overlaps our own VNet
    let mut bad = azure_params.clone();
    bad[3] = "localAddressPrefixes=[\"10.1.0.0/16\"]".into();
    let base = [
        "deployment",
        "group",
        "validate",
        "-g",
        "azure",
        "-n",
        "bad",
        "--template-file",
        &conn,
    ];
    let args = with(&base, &bad);
    let err = azure.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("InvalidTemplateDeployment") || err.contains("overlap"),
        "{err}"
    );

    let base = [
        "deployment",
        "group",
        "create",
        "-g",
        "azure",
        "-n",
        "azure-connection",
        "--template-file",
        &conn,
    ];
    let args = with(&base, &azure_params);
    let d = azure.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(d["properties"]["provisioningState"], "Succeeded", "{d:#}");
    // the same parameters as az's NAME=VALUE, as a deployment body carries them
    let hub_values: serde_json::Map<String, Value> = hub_params
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
            (k.to_string(), json!({ "value": v }))
        })
        .collect();
    let d = hub_deploy(
        "stackhub-connection",
        "connection.json",
        Value::Object(hub_values),
    );
    assert_eq!(d["properties"]["provisioningState"], "Succeeded", "{d:#}");
    let listed = azure.ok(&["deployment", "group", "list", "-g", "azure"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"azure-site") && names.contains(&"azure-connection"),
        "{names:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = azure.ok(&[
            "network",
            "vpn-connection",
            "show",
            "-g",
            "azure",
            "-n",
            "azure-to-stackhub",
        ]);
        if c["connectionStatus"] == "Connected" {
            break;
        }
        assert!(Instant::now() < deadline, "not connected: {c:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let hub_vm = output(&h, "vmPrivateIp");
    let azure_vm = output(&a, "vmPrivateIp");
    assert!(
        lab.ping("azure/vm1", hub_vm.as_str().unwrap()),
        "azure/vm1 -> {hub_vm}"
    );
    assert!(
        lab.ping("stackhub/vm1", azure_vm.as_str().unwrap()),
        "stackhub/vm1 -> {azure_vm}"
    );

    // deleting a deployment forgets its record and keeps what it made (as on Azure)
    azure.ok(&[
        "deployment",
        "group",
        "delete",
        "-g",
        "azure",
        "-n",
        "azure-site",
    ]);
    let listed = azure.ok(&["deployment", "group", "list", "-g", "azure"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["name"] != "azure-site"),
        "{listed:#}"
    );
    let err = azure.fails(&[
        "deployment",
        "group",
        "show",
        "-g",
        "azure",
        "-n",
        "azure-site",
    ]);
    assert!(err.contains("DeploymentNotFound"), "{err}");
    assert!(
        lab.ping("azure/vm1", hub_vm.as_str().unwrap()),
        "the deployment's resources stay"
    );
}
