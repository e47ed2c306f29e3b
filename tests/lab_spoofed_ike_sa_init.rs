//! Issue 10 (1): from the lab's internet, IKE_SA_INIT requests forged with the peer's public
//! address offering what nobody accepts (3DES/MD5/MODP768), on 500 and on 4500, to both
//! gateways. Before the fix one such datagram marked the established connection down and
//! removed its ESP SAs; now it is refused, counted as a failed attempt, and the tunnel —
//! SPIs, state, last error — is untouched: ping keeps working, both stay Connected.

use hybridnet_tests::hostile::{lab_gateway, spoof, unacceptable_ike_sa_init};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::lab::{show, Lab};

#[test]
fn spoofed_unacceptable_ike_sa_init_leaves_the_tunnel_up() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let azure = lab_gateway(&lab.state, &lab.id, "azure").unwrap();
    let stackhub = lab_gateway(&lab.state, &lab.id, "stackhub").unwrap();
    let before_a = azure.status().unwrap();
    let before_s = stackhub.status().unwrap();
    for (victim, peer) in [(&azure, &stackhub), (&stackhub, &azure)] {
        for port in [500u16, 4500] {
            let mut dgrams = vec![];
            for k in 0..5u64 {
                let m =
                    unacceptable_ike_sa_init(0x0bad_0000_0000_0000 | (u64::from(port) << 8) | k);
                dgrams.push(if port == 500 {
                    m
                } else {
                    [vec![0, 0, 0, 0], m].concat()
                });
            }
            spoof(
                &lab.id,
                SocketAddr::new(peer.address, port),
                SocketAddr::new(victim.address, port),
                &dgrams,
            )
            .unwrap();
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(lab.ping("azure/vm1", "10.2.1.4"), "ping across the tunnel");
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));
    for (g, before) in [(&azure, &before_a), (&stackhub, &before_s)] {
        let st = g.status().unwrap();
        let (b, c) = (&before.connections[0], &st.connections[0]);
        assert_eq!(c.state, "established", "{c:?}");
        assert_eq!(
            (&c.ike_spi_i, &c.ike_spi_r),
            (&b.ike_spi_i, &b.ike_spi_r),
            "same IKE SA"
        );
        let spis = |r: &gateway::status::ConnectionReport| -> Vec<String> {
            r.child_sas.iter().map(|c| c.spi_in.clone()).collect()
        };
        assert_eq!(spis(c), spis(b), "same Child SAs");
        assert_eq!(c.last_error, None, "last error untouched");
        assert_eq!(c.failed_attempts, 10, "each forged request counted: {c:?}");
        assert!(c
            .last_failed_attempt
            .as_deref()
            .is_some_and(|e| e.contains("NO_PROPOSAL_CHOSEN")));
    }
    let status = lab.status();
    for s in status["sites"].as_array().unwrap() {
        for c in s["connections"].as_array().unwrap() {
            assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
        }
    }
    // a second `lab up` finds nothing to blame
    let again = lab.up_again();
    assert!(again.status.success(), "{}", show(&again));
}
