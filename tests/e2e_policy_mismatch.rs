//! Broken on purpose: the Azure connection is redeployed without the custom IPsec/IKE policy
//! Azure Stack Hub needs (AZURE-FACTS: Azure's default offers DH group 2, Azure Stack Hub
//! accepts only ECP384). Status says "policy mismatch (NO_PROPOSAL_CHOSEN)" and shows both
//! sides' proposal lists; redeploying with the policy brings the tunnel back.

use hybridnet_tests::e2e::{redeploy_connection, wait_both_connected, wait_conn};
use std::time::Duration;
use testkit::lab::Lab;

#[test]
fn azure_default_policy_against_azure_stack_hub_is_a_named_mismatch() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    redeploy_connection(&lab, "azure", &["ipsecPolicies=[]"]);
    // Azure Stack Hub answers Azure's IKE_SA_INIT: it has both lists in hand.
    let (c, took) = wait_conn(
        &lab,
        "stackhub",
        "stackhub-to-azure",
        Duration::from_secs(15),
        "a policy mismatch with both lists",
        |c| {
            c["connectionStatus"] == "NotConnected"
                && c["reason"].as_str().is_some_and(|r| {
                    r.contains("policy mismatch (NO_PROPOSAL_CHOSEN)")
                        && r.contains("peer's proposals [")
                })
        },
    );
    let reason = c["reason"].as_str().unwrap();
    eprintln!("stackhub after {took:?}: {reason}");
    // Ours: Azure Stack Hub's fixed policy; theirs: Azure's default with DH group 2 (MODP_1024).
    assert!(
        reason.contains("ECP_384") || reason.contains("ecp384"),
        "{reason}"
    );
    assert!(
        reason.contains("MODP_1024") || reason.contains("modp1024"),
        "{reason}"
    );
    let (a, _) = wait_conn(
        &lab,
        "azure",
        "azure-to-stackhub",
        Duration::from_secs(15),
        "a policy mismatch",
        |c| {
            c["connectionStatus"] == "NotConnected"
                && c["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("NO_PROPOSAL_CHOSEN"))
        },
    );
    eprintln!("azure: {}", a["reason"]);
    // The initiator only hears NO_PROPOSAL_CHOSEN; the lab adds the peer's list it knows.
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("modp1024")
            && reason.contains("stackhub/stackhub-to-azure: IKE [aes256-sha384-ecp384]"),
        "{reason}"
    );
    assert!(!lab.ping("azure/vm1", "10.2.1.4"));

    redeploy_connection(&lab, "azure", &[]);
    wait_both_connected(&lab, Duration::from_secs(15));
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));
}
