//! The web view and the metrics explain a broken tunnel: on the seed, the Azure Stack Hub
//! side is redeployed with another shared key. Azure's connection page (server-rendered, as a
//! browser first gets it) says NotConnected, the gateway's last error AUTHENTICATION_FAILED and
//! its explanation (pre-shared key mismatch); `/metrics` has the cause and counts the fall
//! from Connected; neither a page, the live document nor a metric shows either key.
//! Redeploying the right key brings the tunnel back, which the metrics count as an up.

use hybridnet_tests::e2e::redeploy_connection;
use hybridnet_tests::http::get;
use serde_json::Value;
use std::time::Duration;
use testkit::lab::Lab;
use testkit::process::wait_for;

const AZ: &str = "conn:azure/azure-to-stackhub";

/// The live document's text for `key` (`conn:SITE/NAME:FIELD`).
fn live(url: &str, key: &str) -> Option<String> {
    let (code, body) = get(&format!("{url}live.json")).ok()?;
    let doc: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    doc["values"][key].as_str().map(str::to_string)
}

/// The value of a metric line that starts with `series` (labels included), if present.
fn metric(url: &str, series: &str) -> Option<f64> {
    let (_, body) = get(&format!("{url}metrics")).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Neither the lab's key nor the wrong one in `text`.
fn no_keys(what: &str, text: &str) {
    for key in ["hybridnet-lab-shared-key", "not-the-same-key"] {
        assert!(!text.contains(key), "{what} shows a shared key");
    }
}

#[test]
fn a_shared_key_mismatch_is_explained_on_the_page_and_in_the_metrics() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let url = lab.status()["api"]["viewUrl"]
        .as_str()
        .expect("viewUrl")
        .to_string();
    // asking keeps the view refreshing every 250 ms; it must have seen the tunnel up
    wait_for(Duration::from_secs(10), "Connected in the view", || {
        (live(&url, &format!("{AZ}:status"))? == "Connected").then_some(())
    })
    .unwrap();

    redeploy_connection(&lab, "stackhub", &["sharedKey=not-the-same-key"]);
    wait_for(Duration::from_secs(20), "NotConnected in the view", || {
        (live(&url, &format!("{AZ}:status"))? == "NotConnected").then_some(())
    })
    .unwrap();
    let (code, page) = get(&format!("{url}connections/azure/azure-to-stackhub")).unwrap();
    assert_eq!(code, 200);
    for needle in [
        r#"data-state="down" data-live="conn:azure/azure-to-stackhub:status">NotConnected<"#,
        "AUTHENTICATION_FAILED",
        "pre-shared key mismatch (AUTHENTICATION_FAILED)",
        "<dt>Failures in a row</dt>",
    ] {
        assert!(page.contains(needle), "the blade lacks {needle:?}:\n{page}");
    }
    no_keys("the connection's page", &page);
    no_keys("the overview", &get(&url).unwrap().1);
    no_keys(
        "the live document",
        &get(&format!("{url}live.json")).unwrap().1,
    );

    let l = r#"{site="azure",gateway="azure-gw",connection="azure-to-stackhub""#;
    let cause = format!("hybridnet_connection_last_error{l},cause=\"AUTHENTICATION_FAILED\"}}");
    let downs = format!("hybridnet_connection_downs_total{l},cause=\"AUTHENTICATION_FAILED\"}}");
    let got = wait_for(Duration::from_secs(5), "the cause in the metrics", || {
        Some((metric(&url, &cause)?, metric(&url, &downs)?))
    })
    .unwrap();
    assert_eq!(got, (1.0, 1.0), "{cause} and {downs}");
    assert_eq!(
        metric(&url, &format!("hybridnet_connection_up{l}}}")),
        Some(0.0)
    );
    no_keys("/metrics", &get(&format!("{url}metrics")).unwrap().1);

    redeploy_connection(&lab, "stackhub", &[]);
    wait_for(
        Duration::from_secs(20),
        "Connected again in the view",
        || (live(&url, &format!("{AZ}:status"))? == "Connected").then_some(()),
    )
    .unwrap();
    let ups = format!("hybridnet_connection_ups_total{l}}}");
    let up = wait_for(Duration::from_secs(5), "the up in the metrics", || {
        metric(&url, &ups).filter(|n| *n >= 1.0)
    })
    .unwrap();
    assert_eq!(up, 1.0, "{ups}");
    assert_eq!(
        live(&url, &format!("{AZ}:lastError")).as_deref(),
        Some("none"),
        "the error is cleared once Connected"
    );
}
