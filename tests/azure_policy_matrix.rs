//! Every value Azure accepts in a connection's `ipsecPolicies`, run against strongSwan: the
//! Azure-kind gateway of `examples/azure-to-strongswan` gets the policy through `hybridnet
//! deploy` (one field changed at a time from a sound baseline), the on-premises charon is
//! configured from the connection's device configuration export, and each value must
//! negotiate (strongSwan's IKE and Child SAs show the algorithm; a PFS group shows on the Child
//! SA strongSwan rekeys) and carry a ping. Values Azure
//! accepts but IKEv2 cannot run (no DH group) and inconsistent pairs are refused up front with
//! the template path, and the running lab (namespaces, processes, SAs, stored state) is
//! unchanged after each refusal.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::lab::{show, Lab};
use testkit::process::wait_for_every;

fn baseline() -> Value {
    json!({
        "saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000,
        "ikeEncryption": "AES256", "ikeIntegrity": "SHA256", "dhGroup": "DHGroup14",
        "ipsecEncryption": "AES256", "ipsecIntegrity": "SHA256", "pfsGroup": "None"
    })
}

fn policy(over: &Value) -> Value {
    let mut p = baseline();
    for (k, v) in over.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// `hybridnet deploy` of the example's connection template with `policy`.
fn deploy(lab: &Lab, policy: &Value) -> std::process::Output {
    let template = std::fs::read_to_string(lab.dir.join("templates/connection.json")).unwrap();
    let policies = format!("ipsecPolicies={}", json!([policy]));
    lab.deploy_text(
        "azure",
        "azure-connection",
        &template,
        &[
            "--set",
            "gatewayName=azure-gw",
            "--set",
            "localGatewayName=onprem-lgw",
            "--set",
            "localGatewayIpAddress=${deployments.onprem-site.outputs.devicePublicIp}",
            "--set",
            r#"localAddressPrefixes=["${deployments.onprem-site.outputs.lanAddressPrefix}"]"#,
            "--set",
            "connectionName=azure-to-onprem",
            "--set",
            "sharedKey=hybridnet-lab-shared-key",
            "--set",
            &policies,
        ],
    )
}

/// The on-premises device's established IKE SA: (IKE algorithms, Child SA algorithms).
fn device_sa(status: &Value) -> Option<(String, String)> {
    let dev = status["strongswanDevices"]
        .as_array()?
        .iter()
        .find(|d| d["site"] == "onprem")?;
    let ike = dev["sas"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == "ESTABLISHED")?;
    let child = ike["children"]
        .as_array()?
        .iter()
        .find(|c| c["state"] == "INSTALLED")?;
    Some((
        ike["algorithms"].as_str()?.to_string(),
        child["algorithms"].as_str()?.to_string(),
    ))
}

/// Has the device's charon rekey its Child SA (CREATE_CHILD_SA): the first Child SA rides on
/// IKE_AUTH without a key exchange, so a PFS group shows only on a rekey.
fn rekey_child(lab: &Lab) -> Result<(), String> {
    let status = lab.status();
    let child = status["strongswanDevices"][0]["sas"][0]["children"][0]["name"]
        .as_str()
        .ok_or("no Child SA to rekey")?
        .to_string();
    let dir = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("strongswan")
        .join("onprem");
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("hn-{}-onprem-gw-strongswan", lab.id),
        ])
        .args(["swanctl", "--rekey", "--child", &child, "--uri"])
        .arg(format!("unix://{}", dir.join("charon.vici").display()))
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(show(&out))
    }
}

/// What must not change when a policy is refused: namespaces, the gateway and charon
/// processes, the device's SAs, and the stored connection with its policy.
fn snapshot(lab: &Lab) -> Value {
    let s = lab.status();
    let azure = lab.site_status("azure");
    let gateway_pid = azure["otherResources"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["gatewayProcess"]["pid"].as_i64());
    let conn = azure["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "azure-to-onprem")
        .unwrap();
    let dev = s["strongswanDevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["site"] == "onprem")
        .unwrap();
    let sas: Vec<Value> = dev["sas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sa| json!([sa["state"], sa["algorithms"], sa["local"], sa["remote"]]))
        .collect();
    json!({
        "namespaces": lab.namespaces(),
        "gatewayPid": gateway_pid,
        "charonPid": dev["charonPid"],
        "sas": sas,
        "connectionState": conn["provisioningState"],
        "policy": conn["resource"]["properties"]["ipsecPolicies"],
    })
}

#[test]
fn every_azure_policy_value_negotiates_with_strongswan_or_is_refused_up_front() {
    let lab = Lab::up("examples/azure-to-strongswan");

    // (the fields changed from the baseline, what strongSwan's IKE SA shows, its Child SA)
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"ikeEncryption": "DES"}), "DES_CBC", ""),
        (json!({"ikeEncryption": "DES3"}), "3DES_CBC", ""),
        (json!({"ikeEncryption": "AES128"}), "AES_CBC-128", ""),
        (json!({"ikeEncryption": "AES192"}), "AES_CBC-192", ""),
        (
            json!({"ikeEncryption": "GCMAES128", "ikeIntegrity": "GCMAES128"}),
            "AES_GCM_16-128",
            "",
        ),
        (
            json!({"ikeEncryption": "GCMAES256", "ikeIntegrity": "GCMAES256"}),
            "AES_GCM_16-256",
            "",
        ),
        (json!({"ikeIntegrity": "MD5"}), "HMAC_MD5_96", ""),
        (json!({"ikeIntegrity": "SHA1"}), "HMAC_SHA1_96", ""),
        (json!({"ikeIntegrity": "SHA384"}), "HMAC_SHA2_384_192", ""),
        (json!({"dhGroup": "DHGroup1"}), "MODP_768", ""),
        (json!({"dhGroup": "DHGroup2"}), "MODP_1024", ""),
        (json!({"dhGroup": "DHGroup2048"}), "MODP_2048", ""),
        (json!({"dhGroup": "ECP256"}), "ECP_256", ""),
        (json!({"dhGroup": "ECP384"}), "ECP_384", ""),
        (json!({"dhGroup": "DHGroup24"}), "MODP_2048_256", ""),
        (json!({"ipsecEncryption": "None"}), "", "NULL"),
        (json!({"ipsecEncryption": "DES"}), "", "DES_CBC"),
        (json!({"ipsecEncryption": "DES3"}), "", "3DES_CBC"),
        (json!({"ipsecEncryption": "AES128"}), "", "AES_CBC-128"),
        (json!({"ipsecEncryption": "AES192"}), "", "AES_CBC-192"),
        (
            json!({"ipsecEncryption": "GCMAES128", "ipsecIntegrity": "GCMAES128"}),
            "",
            "AES_GCM_16-128",
        ),
        (
            json!({"ipsecEncryption": "GCMAES192", "ipsecIntegrity": "GCMAES192"}),
            "",
            "AES_GCM_16-192",
        ),
        (
            json!({"ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256"}),
            "",
            "AES_GCM_16-256",
        ),
        (json!({"ipsecIntegrity": "MD5"}), "", "HMAC_MD5_96"),
        (json!({"ipsecIntegrity": "SHA1"}), "", "HMAC_SHA1_96"),
        (json!({"pfsGroup": "PFS1"}), "", "MODP_768"),
        (json!({"pfsGroup": "PFS2"}), "", "MODP_1024"),
        // consecutive cases expect different algorithms, so a stale SA cannot pass for a new one
        (json!({"pfsGroup": "PFS2048"}), "", "MODP_2048"),
        (json!({"pfsGroup": "ECP256"}), "", "ECP_256"),
        (json!({"pfsGroup": "PFS14"}), "", "MODP_2048"),
        (json!({"pfsGroup": "ECP384"}), "", "ECP_384"),
        (json!({"pfsGroup": "PFS24"}), "", "MODP_2048_256"),
        (
            json!({"pfsGroup": "PFSMM", "dhGroup": "ECP384"}),
            "ECP_384",
            "ECP_384",
        ),
        // the baseline itself: AES256 / SHA256 / DHGroup14, no PFS
        (
            json!({}),
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
            "AES_CBC-256/HMAC_SHA2_256_128",
        ),
    ];
    let mut failures = Vec::new();
    for (over, want_ike, want_child) in &cases {
        let p = policy(over);
        let out = deploy(&lab, &p);
        if !out.status.success() {
            failures.push(format!("{over}: deploy failed:\n{}", show(&out)));
            continue;
        }
        // a PFS group is negotiated by CREATE_CHILD_SA: strongSwan rekeys, we answer
        let pfs = over.get("pfsGroup").is_some();
        if pfs {
            let established = wait_for_every(
                Duration::from_millis(300),
                Duration::from_secs(30),
                "the tunnel with the new policy",
                || device_sa(&lab.status()).filter(|(ike, _)| ike.contains(want_ike)),
            );
            if let Err(e) = established
                .map_err(|e| e.to_string())
                .and_then(|_| rekey_child(&lab))
            {
                failures.push(format!("{over}: {e}"));
                continue;
            }
        }
        let got = wait_for_every(
            Duration::from_millis(300),
            Duration::from_secs(30),
            "strongSwan's SAs with the policy",
            || {
                let (ike, child) = device_sa(&lab.status())?;
                (ike.contains(want_ike) && child.contains(want_child)).then_some((ike, child))
            },
        );
        match got {
            Ok((ike, child)) => {
                if !lab.ping("azure/vm1", "10.2.1.4") {
                    failures.push(format!("{over}: negotiated {ike} / {child} but no ping"));
                } else {
                    eprintln!("{over}: {ike} / {child}");
                }
            }
            Err(e) => failures.push(format!(
                "{over}: {e}; device SA now {:?}; connection {:#}",
                device_sa(&lab.status()),
                lab.status()["sites"][0]["connections"]
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // refused up front, precisely, and nothing changes
    let refusals: Vec<(Value, &str)> = vec![
        (
            json!({"dhGroup": "None"}),
            "ipsecPolicies[0].dhGroup: None: an IKEv2 SA needs a Diffie-Hellman group",
        ),
        (
            json!({"ipsecEncryption": "GCMAES256", "ipsecIntegrity": "SHA256"}),
            "ipsecPolicies[0].ipsecIntegrity: SHA256 with ipsecEncryption GCMAES256",
        ),
        (
            json!({"ikeEncryption": "AES256", "ikeIntegrity": "GCMAES256"}),
            "ipsecPolicies[0].ikeIntegrity: GCMAES256 with ikeEncryption AES256",
        ),
    ];
    let before = snapshot(&lab);
    for (over, want) in &refusals {
        let out = deploy(&lab, &policy(over));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(want),
            "{over}: expected {want:?}:\n{}",
            show(&out)
        );
        let after = snapshot(&lab);
        assert_eq!(after, before, "{over} changed the lab");
    }
    assert!(lab.ping("azure/vm1", "10.2.1.4"), "the tunnel still works");
}
