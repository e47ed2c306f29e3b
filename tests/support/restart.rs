//! A strongSwan peer that restarts — gracefully (SIGTERM: it sends DELETE) or abruptly
//! (SIGKILL: it says nothing) — while hybridnet keeps the other end; how long until traffic
//! flows again without anyone touching hybridnet.

use crate::gw::GatewayProc;
use crate::lifecycle::with_timers;
use crate::sites::{addrs, TwoSites};
use crate::traffic::ping_until_reply;
use std::time::{Duration, Instant};
use testkit::process::Scratch;
use testkit::swan::{Charon, SwanConn};

/// How the peer goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: charon deletes its SAs (sends DELETE) on the way out.
    Graceful,
    /// SIGKILL: nothing is said.
    Abrupt,
}

/// hybridnet on gw-a and strongSwan on gw-b; `ours_initiate` picks the roles (when false,
/// strongSwan initiates with `start_action = start` and we only respond). Returns the time
/// from the peer's stop until a ping crosses the tunnel again, after each way of stopping
/// in `stops` in turn (the peer is started again at once).
pub fn restart_peer(tag: &str, ours_initiate: bool, stops: &[Stop]) -> Vec<Duration> {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new(tag, &net.id).unwrap();
    let psk = crate::random_psk();
    let (ike, esp) = ("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    let conn: SwanConn = crate::swan_b(&psk, !ours_initiate, ike, esp);
    let start_charon = |n: usize| {
        let c = Charon::start(&net.gw_b, &scratch.join(&format!("swan-b{n}"))).expect("charon");
        c.load(&conn).expect("swanctl load");
        c
    };
    let mut charon = start_charon(0);
    let ours = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &with_timers(
            &crate::hybridnet_a(&psk, ours_initiate, &[ike], &[esp]).to_toml(),
            "6s",
            None,
            None,
        ),
    )
    .expect("gw-a");
    ours.wait_established("site-b", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", charon.log()));
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let mut took = Vec::new();
    for (n, stop) in stops.iter().enumerate() {
        let before = ours.connection("site-b").unwrap();
        let signal = match stop {
            Stop::Graceful => libc::SIGTERM,
            Stop::Abrupt => libc::SIGKILL,
        };
        let t0 = Instant::now();
        charon.stop(signal);
        drop(charon);
        charon = start_charon(n + 1);
        ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(30)).unwrap_or_else(|e| {
            panic!("{stop:?}: {e:#}\n{}\n{}", ours.status_text(), charon.log())
        });
        let t = t0.elapsed();
        let after = ours.connection("site-b").unwrap();
        assert_ne!(
            (before.ike_spi_i, before.ike_spi_r),
            (after.ike_spi_i.clone(), after.ike_spi_r.clone()),
            "{stop:?}: a new IKE SA"
        );
        assert_eq!(after.state, "established", "{stop:?}");
        let theirs = charon.wait_child_installed(Duration::from_secs(5)).unwrap();
        crate::assert_spis_match(&after, &theirs).unwrap();
        eprintln!("{stop:?} restart of strongSwan (ours initiate = {ours_initiate}): traffic again after {t:?}");
        took.push(t);
    }
    took
}
