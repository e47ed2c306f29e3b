//! Issue 10 (2): a spoofer floods IKE_SA_INIT from the peer's own public address (and port
//! 500) while the peer's gateway restarts. Before the fix the per-source half-open limit
//! dropped the genuine peer's requests for as long as the flood went on; now, past the limit,
//! the gateway answers with COOKIEs (RFC 7296 §2.6), the restarted peer echoes one and is
//! connected again within seconds — while the flood still runs.

use hybridnet_tests::hostile::{lab_gateway, spoof};
use hybridnet_tests::lifecycle::ike_sa_init_flood;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::lab::{show, Lab};

#[test]
fn the_peer_reconnects_through_a_spoofed_half_open_flood() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let azure = lab_gateway(&lab.state, &lab.id, "azure").unwrap();
    let stackhub = lab_gateway(&lab.state, &lab.id, "stackhub").unwrap();
    // real IKE_SA_INITs (fresh SPIs and key shares) that claim to be the Azure Stack Hub
    // gateway; each batch is sent from the peer's address and port 500
    let peer_ip = stackhub.address.to_string();
    let flood: Vec<Vec<u8>> = ike_sa_init_flood(
        &[&peer_ip],
        400,
        &azure.address.to_string(),
        "aes256-sha384-ecp384",
    )
    .unwrap()
    .into_iter()
    .map(|(_, d)| d)
    .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (id, st, from, to) = (
        lab.id.clone(),
        stop.clone(),
        SocketAddr::new(stackhub.address, 500),
        SocketAddr::new(azure.address, 500),
    );
    let flooder = std::thread::spawn(move || {
        let mut sent = 0usize;
        while !st.load(Ordering::Relaxed) {
            for chunk in flood.chunks(40) {
                spoof(&id, from, to, chunk).expect("spoofed batch");
                sent += chunk.len();
                std::thread::sleep(Duration::from_millis(100));
                if st.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        sent
    });
    std::thread::sleep(Duration::from_secs(2));
    let during = azure.status().unwrap();
    assert!(
        during.half_open >= 16,
        "the flood filled the peer's share: {during:?}"
    );
    // the peer's gateway dies without a word and is started again by `lab up`
    // SAFETY: SIGKILL to the lab's gateway process, found by its record.
    assert_eq!(unsafe { libc::kill(stackhub.record.pid, libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    let restarted = Instant::now();
    let again = lab.up_again();
    assert!(again.status.success(), "{}", show(&again));
    let mut up = None;
    while restarted.elapsed() < Duration::from_secs(20) {
        if lab.ping("azure/vm1", "10.2.1.4") {
            up = Some(restarted.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().unwrap();
    let up = up.unwrap_or_else(|| {
        panic!(
            "the peer did not get through the flood:\n{}",
            gateway::status::render(&azure.status().unwrap())
        )
    });
    let after = azure.status().unwrap();
    eprintln!(
        "peer reconnected {up:?} after its restart; {sent} spoofed IKE_SA_INITs; cookies sent {}, half-open {}",
        after.cookies_sent, after.half_open
    );
    assert!(up < Duration::from_secs(15), "back within seconds: {up:?}");
    assert!(after.cookies_sent > 0, "{after:?}");
    assert!(
        after.half_open <= 64,
        "state stays bounded: {}",
        after.half_open
    );
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));
}
