//! Issue 11 (1): strongSwan has the wrong pre-shared key for a while. We keep trying with
//! back-off (retry_max 5 s), status says why and when the next attempt is; once its operator
//! fixes the key (`swanctl --load-all`), the tunnel is up within the back-off cap — nobody
//! touches hybridnet.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, random_psk, swan_b};
use std::time::{Duration, Instant};
use testkit::process::{wait_for, Scratch};
use testkit::swan::Charon;

#[test]
fn a_peer_fixed_after_a_key_mismatch_is_reconnected_within_the_backoff_cap() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("psk-fixed", &net.id).unwrap();
    let psk = random_psk();
    let (ike, esp) = ("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let charon = Charon::start(&net.gw_b, &scratch.join("swan-b")).expect("charon");
    charon
        .load(&swan_b("0x0123456789abcdef", false, ike, esp))
        .expect("wrong key loaded");
    let toml = hybridnet_a(&psk, true, &[ike], &[esp]).to_toml().replace(
        "dpd_timeout = \"45s\"",
        "dpd_timeout = \"45s\"\nretry_max = \"5s\"",
    );
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &toml).expect("gw-a");
    // a few refused attempts: the back-off reaches its cap
    let refused = wait_for(Duration::from_secs(30), "three refused attempts", || {
        a.connection("site-b")
            .ok()
            .filter(|c| c.consecutive_failures >= 4)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
    let err = refused.last_error.clone().unwrap_or_default();
    assert!(err.starts_with("AUTHENTICATION_FAILED"), "{err}");
    assert!(refused.retry_in_ms.is_some(), "{refused:?}");
    assert!(
        a.status_text().contains("next attempt in"),
        "{}",
        a.status_text()
    );
    // the peer's operator fixes the key
    charon
        .load(&swan_b(&psk, false, ike, esp))
        .expect("right key");
    let fixed = Instant::now();
    a.wait_established("site-b", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
    let took = fixed.elapsed();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    eprintln!("up {took:?} after the peer's key was fixed (back-off cap 5 s)");
    assert!(took <= Duration::from_secs(7), "{took:?}");
    let up = a.connection("site-b").unwrap();
    assert_eq!(up.consecutive_failures, 0);
    assert_eq!(up.last_error, None);
}
