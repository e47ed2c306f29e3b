//! Helpers for the end-to-end scenarios on the seed: connection statuses from `lab status
//! --json`, waiting for a status, and redeploying one side's connection with changed
//! parameters, as a user would with `hybridnet deploy`.

use serde_json::Value;
use std::time::{Duration, Instant};
use testkit::lab::{show, Lab};
use testkit::process::wait_for_every;

/// The connection `site/name` in a `lab status --json` document.
pub fn conn(status: &Value, site: &str, name: &str) -> Value {
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == site)
        .and_then(|s| {
            s["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no connection {site}/{name} in {status:#}"))
}

/// Polls `lab status` (every 100 ms) until `pred` holds for connection `site/name`; returns
/// it and the time it took, or panics with the last status after `timeout`.
pub fn wait_conn(
    lab: &Lab,
    site: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    let mut last = Value::Null;
    let found = wait_for_every(Duration::from_millis(100), timeout, what, || {
        last = conn(&lab.status(), site, name);
        pred(&last).then(|| last.clone())
    });
    match found {
        Ok(c) => (c, start.elapsed()),
        Err(_) => panic!("{site}/{name}: not {what} within {timeout:?}; last status:\n{last:#}"),
    }
}

/// Both connections of the seed are Connected (within `timeout`).
pub fn wait_both_connected(lab: &Lab, timeout: Duration) {
    for (site, name) in [
        ("azure", "azure-to-stackhub"),
        ("stackhub", "stackhub-to-azure"),
    ] {
        wait_conn(lab, site, name, timeout, "Connected", |c| {
            c["connectionStatus"] == "Connected"
        });
    }
}

/// `hybridnet deploy` of the seed's connection template to one side (the lab must be a copy
/// made by `Lab::up_copy`, so that `templates/connection.json` is in its directory), with the
/// seed's parameters for that side overridden by `extra` (`NAME=VALUE`).
pub fn redeploy_connection(lab: &Lab, side: &str, extra: &[&str]) {
    let template = lab.dir.join("templates/connection.json");
    let mut args: Vec<String> = vec![
        "deploy".into(),
        "--id".into(),
        lab.id.clone(),
        "--site".into(),
        side.into(),
        template.display().to_string(),
    ];
    let base: Vec<String> = match side {
        "azure" => vec![
            "gatewayName=azure-gw".into(),
            "localGatewayName=stackhub-lgw".into(),
            "localGatewayIpAddress=${deployments.stackhub-site.outputs.gatewayPublicIp}".into(),
            "localAddressPrefixes=[\"10.2.0.0/16\"]".into(),
            "connectionName=azure-to-stackhub".into(),
            "sharedKey=hybridnet-lab-shared-key".into(),
            format!("ipsecPolicies={}", SEED_POLICY),
        ],
        _ => vec![
            "gatewayName=stackhub-gw".into(),
            "localGatewayName=azure-lgw".into(),
            "localGatewayIpAddress=${deployments.azure-site.outputs.gatewayPublicIp}".into(),
            "localAddressPrefixes=[\"10.1.0.0/16\"]".into(),
            "connectionName=stackhub-to-azure".into(),
            "sharedKey=hybridnet-lab-shared-key".into(),
        ],
    };
    let mut params: Vec<String> = base;
    for e in extra {
        let key = e.split('=').next().unwrap();
        params.retain(|p| p.split('=').next().unwrap() != key);
        params.push(e.to_string());
    }
    args.push("--name".into());
    args.push(format!("{side}-connection"));
    for p in params {
        args.push("--set".into());
        args.push(p);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.run(&refs);
    assert!(
        out.status.success(),
        "hybridnet deploy failed:\n{}",
        show(&out)
    );
}

/// The custom policy the Azure side of the seed carries (Azure Stack Hub's fixed policy).
pub const SEED_POLICY: &str = r#"[{"saLifeTimeSeconds":27000,"saDataSizeKilobytes":102400000,"ipsecEncryption":"GCMAES256","ipsecIntegrity":"GCMAES256","ikeEncryption":"AES256","ikeIntegrity":"SHA384","dhGroup":"ECP384","pfsGroup":"ECP384"}]"#;
