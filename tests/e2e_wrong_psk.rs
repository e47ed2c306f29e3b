//! Broken on purpose: the Azure Stack Hub side is redeployed with another shared key. Both
//! connections report NotConnected with the reason "pre-shared key mismatch
//! (AUTHENTICATION_FAILED)"; redeploying the right key brings the tunnel back with traffic.

use hybridnet_tests::e2e::{redeploy_connection, wait_both_connected, wait_conn};
use std::time::Duration;
use testkit::lab::Lab;

/// The pid recorded for a gateway process of the lab.
fn gateway_pid(lab: &Lab, stem: &str) -> i64 {
    let p = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("gateways")
        .join(format!("{stem}.json"));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    rec["pid"].as_i64().unwrap()
}

#[test]
fn different_shared_keys_are_reported_and_fixed_by_redeploying() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let (azure_pid, stackhub_pid) = (
        gateway_pid(&lab, "azure--azure-gw"),
        gateway_pid(&lab, "stackhub--stackhub-gw"),
    );
    redeploy_connection(&lab, "stackhub", &["sharedKey=not-the-same-key"]);
    // No process restarts: the changed side's gateway reloads that connection in place.
    assert_eq!(
        gateway_pid(&lab, "azure--azure-gw"),
        azure_pid,
        "the peer's gateway is left alone"
    );
    assert_eq!(
        gateway_pid(&lab, "stackhub--stackhub-gw"),
        stackhub_pid,
        "the changed gateway reloads instead of restarting"
    );
    for (site, name) in [
        ("azure", "azure-to-stackhub"),
        ("stackhub", "stackhub-to-azure"),
    ] {
        let (c, took) = wait_conn(
            &lab,
            site,
            name,
            Duration::from_secs(15),
            "failed with AUTHENTICATION_FAILED",
            |c| {
                c["connectionStatus"] == "NotConnected"
                    && c["reason"].as_str().is_some_and(|r| {
                        r.starts_with("pre-shared key mismatch (AUTHENTICATION_FAILED)")
                    })
            },
        );
        eprintln!("{site}/{name}: {} after {took:?}", c["reason"]);
        assert!(
            !c.to_string().contains("not-the-same-key")
                && !c.to_string().contains("hybridnet-lab-shared-key"),
            "a key is shown: {c:#}"
        );
    }
    assert!(!lab.ping("azure/vm1", "10.2.1.4"), "no tunnel, no traffic");
    let text = lab.run(&["lab", "status", "--id", &lab.id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("NotConnected: pre-shared key mismatch"));

    redeploy_connection(&lab, "stackhub", &[]);
    wait_both_connected(&lab, Duration::from_secs(15));
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));
}
