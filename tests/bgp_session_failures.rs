//! A BGP session that cannot come up says why, on both ends, and takes the routes with it:
//! in examples/hybrid-connection-bgp, Azure's local network gateway is redeployed first with
//! a wrong ASN for the hub (Bad Peer AS, both numbers named; the hub hears the NOTIFICATION),
//! then with a wrong BGP address (no answer from that address), then put right again.

use std::time::Duration;

use testkit::bgp::wait_until;
use testkit::lab::{show, Lab};

const POLICY: &str = r#"ipsecPolicies=[{"saLifeTimeSeconds":27000,"saDataSizeKilobytes":102400000,"ipsecEncryption":"GCMAES256","ipsecIntegrity":"GCMAES256","ikeEncryption":"AES256","ikeIntegrity":"SHA384","dhGroup":"ECP384","pfsGroup":"ECP384"}]"#;

fn redeploy(lab: &Lab, address: &str, asn: &str) {
    let template = lab.dir.join("templates/connection-bgp.json");
    let (a, n) = (format!("bgpPeeringAddress={address}"), format!("asn={asn}"));
    let out = lab.run(&[
        "deploy",
        "--site",
        "azure",
        template.to_str().unwrap(),
        "--set",
        "gatewayName=azure-gw",
        "--set",
        "localGatewayName=stackhub-lgw",
        "--set",
        "localGatewayIpAddress=198.51.100.1",
        "--set",
        &a,
        "--set",
        &n,
        "--set",
        "connectionName=azure-to-stackhub",
        "--set",
        "sharedKey=hybridnet-lab-shared-key",
        "--set",
        POLICY,
    ]);
    assert!(out.status.success(), "deploy:\n{}", show(&out));
}

fn error_of(lab: &Lab, site: &str, gw: &str) -> Option<String> {
    let p = lab.gateway_list("list-bgp-peer-status", site, gw);
    p.first()
        .filter(|p| p["state"] != "Connected")
        .and_then(|p| p["lastError"].as_str().map(str::to_string))
}

#[test]
fn wrong_asn_and_wrong_address_are_reported_with_the_reason() {
    let lab = Lab::up("examples/hybrid-connection-bgp");
    wait_until("learned", Duration::from_secs(20), || {
        lab.learned_path("azure", "azure-gw", "10.2.0.0/16")
            .is_some()
    });

    redeploy(&lab, "10.2.255.4", "65011");
    let mut why = String::new();
    wait_until("Azure says Bad Peer AS", Duration::from_secs(20), || {
        why = error_of(&lab, "azure", "azure-gw").unwrap_or_default();
        why.contains("Bad Peer AS")
    });
    assert!(
        why.contains("65010") && why.contains("65011"),
        "both numbers: {why}"
    );
    wait_until("the hub hears why", Duration::from_secs(20), || {
        error_of(&lab, "stackhub", "stackhub-gw").is_some_and(|e| e.contains("Bad Peer AS"))
    });
    assert!(lab
        .learned_path("azure", "azure-gw", "10.2.0.0/16")
        .is_none());
    assert!(!lab.ping("azure/vm1", "10.2.1.4"), "no session, no route");

    redeploy(&lab, "10.2.255.99", "65010");
    wait_until(
        "Azure says nothing answers at the wrong address",
        Duration::from_secs(30),
        || {
            error_of(&lab, "azure", "azure-gw")
                .is_some_and(|e| e.contains("no answer from 10.2.255.99 port 179"))
        },
    );

    redeploy(&lab, "10.2.255.4", "65010");
    wait_until("up again", Duration::from_secs(30), || {
        lab.learned_path("azure", "azure-gw", "10.2.0.0/16")
            .as_deref()
            == Some("65010")
    });
    assert!(error_of(&lab, "azure", "azure-gw").is_none());
    wait_until("traffic again", Duration::from_secs(10), || {
        lab.ping("azure/vm1", "10.2.1.4")
    });
}
