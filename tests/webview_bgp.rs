//! The web view shows BGP: on examples/hybrid-connection-bgp the overview page has each
//! gateway's peer (Connected) and learned route with its AS path; when Azure's local network
//! gateway is redeployed with a wrong ASN, the live document's peer row turns to a state that
//! is not Connected, with the reason (Bad Peer AS), without a reload.

use hybridnet_tests::http::get;
use serde_json::Value;
use std::time::Duration;
use testkit::bgp::wait_until;
use testkit::lab::{show, Lab};

/// The live document's rows for `key`.
fn rows(url: &str, key: &str) -> Vec<Vec<String>> {
    let Ok((200, body)) = get(&format!("{url}live.json")) else {
        return vec![];
    };
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    doc["rows"][key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r.as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn peers_and_learned_routes_are_shown_and_follow_the_session() {
    let lab = Lab::up("examples/hybrid-connection-bgp");
    let url = lab.status()["api"]["viewUrl"]
        .as_str()
        .expect("viewUrl")
        .to_string();
    wait_until(
        "peers Connected in the view",
        Duration::from_secs(20),
        || {
            let p = rows(&url, "bgp:peers");
            p.len() == 2 && p.iter().all(|r| r[4] == "Connected")
        },
    );
    let (code, page) = get(&url).unwrap();
    assert_eq!(code, 200);
    for needle in [
        "<h2 id=\"bgp-h\">BGP</h2>",
        "10.2.255.4",
        "10.2.0.0/16",
        "65010",
    ] {
        assert!(page.contains(needle), "{needle} on the overview page");
    }
    let learned = rows(&url, "bgp:routes");
    assert!(
        learned
            .iter()
            .any(|r| r[0] == "azure/azure-gw" && r[1] == "10.2.0.0/16" && r[3] == "65010"),
        "{learned:?}"
    );

    let template = lab.dir.join("templates/connection-bgp.json");
    let out = lab.run(&[
        "deploy", "--site", "azure", template.to_str().unwrap(),
        "--set", "gatewayName=azure-gw", "--set", "localGatewayName=stackhub-lgw",
        "--set", "localGatewayIpAddress=198.51.100.1", "--set", "bgpPeeringAddress=10.2.255.4",
        "--set", "asn=65011", "--set", "connectionName=azure-to-stackhub",
        "--set", "sharedKey=hybridnet-lab-shared-key",
        "--set", r#"ipsecPolicies=[{"saLifeTimeSeconds":27000,"saDataSizeKilobytes":102400000,"ipsecEncryption":"GCMAES256","ipsecIntegrity":"GCMAES256","ikeEncryption":"AES256","ikeIntegrity":"SHA384","dhGroup":"ECP384","pfsGroup":"ECP384"}]"#,
    ]);
    assert!(out.status.success(), "{}", show(&out));
    wait_until(
        "the failing session in the view",
        Duration::from_secs(20),
        || {
            rows(&url, "bgp:peers").iter().any(|r| {
                r[0] == "azure/azure-gw" && r[4] != "Connected" && r[7].contains("Bad Peer AS")
            })
        },
    );
}
