//! Issue 11 (1): strongSwan, the responder, restarts — first gracefully (SIGTERM: it sends
//! DELETE), then abruptly (SIGKILL) — and is back at once. Before the fix a DELETE left our
//! initiating connection down for good; now it tries again after about a second (and after
//! dead-peer detection, 6 s here, when nothing was said), with traffic flowing again without
//! anyone touching hybridnet.
use hybridnet_tests::restart::{restart_peer, Stop};
use std::time::Duration;

#[test]
fn strongswan_restarts_and_our_initiator_brings_the_tunnel_back() {
    let took = restart_peer("restart-we", true, &[Stop::Graceful, Stop::Abrupt]);
    assert!(took[0] < Duration::from_secs(5), "graceful: {:?}", took[0]);
    // DPD timeout 6 s, then the first retry about a second later
    assert!(took[1] < Duration::from_secs(12), "abrupt: {:?}", took[1]);
}
