//! Broken on purpose: the Azure Stack Hub side's local network gateway names the wrong
//! address space for Azure (10.9.0.0/16 instead of 10.1.0.0/16). The IKE SA authenticates but
//! no Child SA is agreed: status says "traffic-selector mismatch (TS_UNACCEPTABLE)" with both
//! sides' selectors; redeploying the right prefix brings the tunnel back.

use hybridnet_tests::e2e::{redeploy_connection, wait_both_connected, wait_conn};
use std::time::Duration;
use testkit::lab::Lab;

#[test]
fn wrong_address_space_is_a_named_selector_mismatch() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    redeploy_connection(
        &lab,
        "stackhub",
        &["localAddressPrefixes=[\"10.9.0.0/16\"]"],
    );
    let mut seen = Vec::new();
    for (site, name) in [
        ("azure", "azure-to-stackhub"),
        ("stackhub", "stackhub-to-azure"),
    ] {
        let (c, took) = wait_conn(
            &lab,
            site,
            name,
            Duration::from_secs(15),
            "a selector mismatch",
            |c| {
                c["connectionStatus"] == "NotConnected"
                    && c["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("traffic-selector mismatch (TS_UNACCEPTABLE)"))
            },
        );
        eprintln!("{site}/{name} after {took:?}: {}", c["reason"]);
        seen.push(c["reason"].as_str().unwrap().to_string());
    }
    assert!(
        seen.iter().any(|r| r.contains("10.9.0.0/16")),
        "the wrong prefix is named: {seen:?}"
    );
    assert!(!lab.ping("azure/vm1", "10.2.1.4"));

    redeploy_connection(&lab, "stackhub", &[]);
    wait_both_connected(&lab, Duration::from_secs(15));
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
}
