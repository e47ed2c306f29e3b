//! Issue 11 (1), the other role: strongSwan initiates (`start_action = start`) and we only
//! respond. It restarts gracefully (DELETE first) and abruptly (SIGKILL; it comes back with
//! INITIAL_CONTACT): either way its new IKE SA is accepted at once, stale SAs are dropped, and
//! traffic flows again within seconds.
use hybridnet_tests::restart::{restart_peer, Stop};
use std::time::Duration;

#[test]
fn strongswan_restarts_and_our_responder_takes_it_back() {
    let took = restart_peer("restart-they", false, &[Stop::Graceful, Stop::Abrupt]);
    for (stop, t) in ["graceful", "abrupt"].iter().zip(&took) {
        assert!(*t < Duration::from_secs(5), "{stop}: {t:?}");
    }
}
