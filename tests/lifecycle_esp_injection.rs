//! Issue 4, hostile ESP: real ESP packets captured on the wire (tcpdump in gw-b's namespace)
//! are sent again from gw-a's address and port — as exact replays, truncated, bit-flipped
//! (sequence number and ciphertext) and with an unknown SPI — while a TCP stream runs through
//! the tunnel. gw-b drops every one, counts it under its reason in `gateway status`, and the
//! stream's every byte arrives intact.
use gateway::datapath::DropCounters;
use gateway::GatewayStatus;
use hybridnet_tests::established_pair;
use hybridnet_tests::lifecycle::{capture_udp, send_udp_raw, Stream, UdpFlow};
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::{ping, ping_until_reply};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::process::Scratch;

/// Connection and unattributed drops together.
fn drops(st: &GatewayStatus) -> DropCounters {
    let mut d = st.drops;
    for c in &st.connections {
        d.unknown_spi += c.drops.unknown_spi;
        d.replayed += c.drops.replayed;
        d.auth_failed += c.drops.auth_failed;
        d.malformed += c.drops.malformed;
    }
    d
}

#[test]
fn replayed_truncated_bitflipped_and_unknown_spi_esp_is_dropped_and_counted() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("espinj", &net.id).unwrap();
    let (a, b) = established_pair(
        &net,
        &scratch.path,
        &["aes256gcm16-prfsha384-ecp384"],
        &["aes256gcm16"],
    )
    .expect("an established pair");
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5701, &net.vm_a, 2 << 20).expect("stream");

    // real ESP from gw-a to gw-b: the pings' packets (small, one datagram each)
    let vm_a = &net.vm_a;
    let captured = capture_udp(
        &net.gw_b,
        "wan0",
        &UdpFlow {
            src: addrs::GW_A_WAN,
            dst: addrs::GW_B_WAN,
            dport: 4500,
            max_len: 200,
        },
        10,
        &scratch.join("esp.pcap"),
        || {
            ping(vm_a, addrs::VM_B, 12).unwrap();
        },
    )
    .expect("capture");
    let esp: Vec<Vec<u8>> = captured
        .into_iter()
        .filter(|p| p.len() > 8 && p[..4] != [0, 0, 0, 0])
        .collect();
    assert!(esp.len() >= 8, "captured only {} ESP packets", esp.len());
    let before = drops(&b.status().unwrap());

    let from: SocketAddr = format!("{}:4500", addrs::GW_A_WAN).parse().unwrap();
    let to: SocketAddr = format!("{}:4500", addrs::GW_B_WAN).parse().unwrap();
    let n = esp.len() as u64;
    // exact copies: already received
    send_udp_raw(&net.gw_a, from, to, &esp).unwrap();
    // truncated inside the header and IV
    let truncated: Vec<Vec<u8>> = esp.iter().map(|p| p[..12].to_vec()).collect();
    send_udp_raw(&net.gw_a, from, to, &truncated).unwrap();
    // bit-flipped: the sequence number's top bit (so it is new to the replay window) and
    // one ciphertext bit; the ICV cannot verify
    let flipped: Vec<Vec<u8>> = esp
        .iter()
        .map(|p| {
            let mut q = p.clone();
            q[4] ^= 0x80;
            let mid = q.len() / 2;
            q[mid] ^= 0x01;
            q
        })
        .collect();
    send_udp_raw(&net.gw_a, from, to, &flipped).unwrap();
    // an SPI nobody installed
    let unknown: Vec<Vec<u8>> = esp
        .iter()
        .take(5)
        .map(|p| {
            let mut q = p.clone();
            q[..4].copy_from_slice(&[0x0b, 0xad, 0x5e, 0x1f]);
            q
        })
        .collect();
    send_udp_raw(&net.gw_a, from, to, &unknown).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let st = b.status().unwrap();
    let after = drops(&st);
    let table = b.status_text();
    assert_eq!(
        after.replayed - before.replayed,
        n,
        "replays counted as replayed:\n{table}"
    );
    assert_eq!(
        after.malformed - before.malformed,
        n,
        "truncated counted as malformed:\n{table}"
    );
    assert_eq!(
        after.auth_failed - before.auth_failed,
        n,
        "bit flips counted as auth_failed:\n{table}"
    );
    assert_eq!(
        after.unknown_spi - before.unknown_spi,
        5,
        "unknown SPI counted:\n{table}"
    );
    assert!(
        table.contains("replayed=") && table.contains("auth_failed="),
        "{table}"
    );

    // the tunnel and the stream are unharmed
    std::thread::sleep(Duration::from_secs(1));
    ping(&net.vm_a, addrs::VM_B, 3).unwrap();
    let (sent, got) = stream
        .finish()
        .expect("the stream survived the injection, every byte verified");
    assert!(got > 2 << 20, "stream carried only {got} of {sent}");
    assert_eq!(a.connection("site-b").unwrap().state, "established");
    eprintln!("injected {n} replayed, {n} truncated, {n} bit-flipped, 5 unknown-SPI ESP packets; counted {:?}", after);
}
