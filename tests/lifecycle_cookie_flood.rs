//! Issue 4, hostile input: a flood of real IKE_SA_INIT requests (bounded: 6 addresses × 40
//! source ports, sent from a namespace while the legitimate peer starts) at a gateway that
//! also accepts `%any` initiators. Past 16 half-open IKE SAs from one address, or 32 in all,
//! the responder answers with COOKIE challenges instead of keeping state or dropping (status
//! shows cookies sent and the half-open count; nothing is dropped), and the legitimate peer —
//! challenged too — echoes the cookie and connects during the flood, with traffic.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::ike_sa_init_flood;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use testkit::process::Scratch;

const FLOOD_IPS: [&str; 6] = [
    "198.51.100.50",
    "198.51.100.51",
    "198.51.100.52",
    "198.51.100.53",
    "198.51.100.54",
    "198.51.100.55",
];

#[test]
fn ike_sa_init_flood_triggers_cookies_and_the_peer_still_connects() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("cookie", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let any = r#"
[[connection]]
name = "anyone"
remote_address = "%any"
psk = "a-different-secret-for-roadwarriors"
local_prefixes = ["10.2.0.0/16"]
remote_prefixes = ["10.77.0.0/16"]
ike_proposals = ["aes128gcm16-prfsha256-ecp256"]
"#;
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &(hybridnet_b(&psk, false, &ike, &esp).to_toml() + any),
    )
    .expect("gw-b");
    for ip in FLOOD_IPS {
        net.gw_a
            .exec("ip", &["addr", "add", &format!("{ip}/32"), "dev", "wan0"])
            .unwrap();
    }
    let flood = ike_sa_init_flood(
        &FLOOD_IPS,
        40,
        addrs::GW_B_WAN,
        "aes128gcm16-prfsha256-ecp256",
    )
    .expect("flood datagrams");
    assert_eq!(flood.len(), 240);
    let target: SocketAddr = format!("{}:500", addrs::GW_B_WAN).parse().unwrap();
    // the flood runs over ~3 s from gw-a's namespace, address by address (the first two are
    // challenged past 16 each, the rest entirely); the legitimate gateway starts 1 s in, when
    // 32 IKE SAs are half-open and it is challenged too
    let sender = net.gw_a.run_in(move || -> std::io::Result<usize> {
        let start = Instant::now();
        let mut sent = 0;
        for (k, (src, dgram)) in flood.iter().enumerate() {
            let s = UdpSocket::bind(src)?;
            s.send_to(dgram, target)?;
            sent += 1;
            let due = Duration::from_millis(12 * k as u64);
            if let Some(w) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(w);
            }
        }
        Ok(sent)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &hybridnet_a(&psk, true, &ike, &esp).to_toml(),
    )
    .expect("gw-a");
    let up = Instant::now();
    a.wait_established("site-b", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", b.status_text()));
    let took = up.elapsed();
    let sent = sender.join().unwrap().unwrap().unwrap();
    assert_eq!(sent, 240);
    b.wait_established("site-a", Duration::from_secs(5))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();

    let st = b.status().unwrap();
    assert!(
        st.cookies_sent > 0,
        "the flood must trigger COOKIE challenges: {st:?}"
    );
    // the first two addresses past 16 each, 4 flood addresses × 40, plus the legitimate
    // peer, which had to echo one
    assert!(
        st.cookies_sent > 2 * 24 + 4 * 40,
        "the legitimate peer was challenged too: {}",
        st.cookies_sent
    );
    assert_eq!(
        st.ike_dropped, 0,
        "nothing is dropped: past the limits requests are challenged"
    );
    assert_eq!(
        st.half_open, 32,
        "state only below the limits (16 per source, 32 in all)"
    );
    let table = b.status_text();
    assert!(
        table.contains(&format!("cookies sent {}", st.cookies_sent)),
        "{table}"
    );
    let anyone = st.connections.iter().find(|c| c.name == "anyone").unwrap();
    assert!(
        anyone.child_sas.is_empty(),
        "no flood request may get past IKE_SA_INIT"
    );
    eprintln!("legitimate peer up {took:?} after start during the flood; cookies sent {}, half-open {}, IKE datagrams dropped {}", st.cookies_sent, st.half_open, st.ike_dropped);
}
