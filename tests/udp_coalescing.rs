//! Small UDP datagrams across two hybridnet gateways: the receiving gateway joins datagrams of
//! one flow into UDP super-packets for the TUN device (one write for many), and the kernel
//! cuts them back into exactly the datagrams that were sent — same payloads, in order, with
//! valid checksums (a bad one would be dropped and counted as `InCsumErrors`).
use hybridnet_tests::established_pair;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::udp_snmp;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use testkit::process::Scratch;

const DATAGRAMS: u32 = 20_000;
const PAYLOAD: usize = 64;
const PORT: u16 = 7300;
const BURST: u32 = 32;

/// The payload of datagram `i`: its number, then bytes derived from it.
fn payload(i: u32) -> [u8; PAYLOAD] {
    let mut p = [0u8; PAYLOAD];
    p[..4].copy_from_slice(&i.to_be_bytes());
    for (k, b) in p[4..].iter_mut().enumerate() {
        *b = (i as usize * 31 + k * 7) as u8;
    }
    p
}

#[test]
fn small_datagrams_are_joined_for_the_tun_device_and_arrive_intact() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("udpgro", &net.id).unwrap();
    let (_a, b) = established_pair(
        &net,
        &scratch.path,
        &["aes256gcm16-prfsha384-ecp384"],
        &["aes256gcm16"],
    )
    .expect("an established pair");
    hybridnet_tests::traffic::ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10))
        .unwrap();
    let csum_errors = udp_snmp(net.vm_b.name(), "InCsumErrors");
    let before = b.status().unwrap().batches.tun_write;

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = net.vm_b.run_in(move || {
        let s = UdpSocket::bind((addrs::VM_B, PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sender = net.vm_a.run_in(|| {
        let s = UdpSocket::bind((addrs::VM_A, 0)).unwrap();
        s.connect((addrs::VM_B, PORT)).unwrap();
        let start = Instant::now();
        // bursts of back-to-back datagrams (what the gateway may join), paced so that the
        // gateways (a debug build, on a shared machine) keep up
        for i in 0..DATAGRAMS {
            // a full socket buffer is a drop the sender sees; wait and send again
            while s.send(&payload(i)).is_err() {
                std::thread::sleep(Duration::from_micros(50));
            }
            if i % BURST == BURST - 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        start.elapsed()
    });
    let took = sender.join().unwrap().unwrap();
    let got = receiver.join().unwrap().unwrap();

    // every datagram that arrived is one that was sent, whole, and in sending order
    let mut last = None;
    for d in &got {
        assert_eq!(d.len(), PAYLOAD, "a datagram changed length");
        let i = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(d[..], payload(i)[..], "datagram {i} changed");
        assert!(last.is_none_or(|l| i > l), "datagram {i} after {last:?}");
        last = Some(i);
    }
    assert_eq!(
        udp_snmp(net.vm_b.name(), "InCsumErrors"),
        csum_errors,
        "datagrams with bad checksums reached vm-b"
    );
    // UDP may lose datagrams under load (queues, socket buffers), but not most of them
    assert!(
        got.len() as u32 >= DATAGRAMS / 2,
        "{} of {DATAGRAMS} datagrams arrived in {took:?}",
        got.len()
    );
    // the receiving gateway wrote most of them to TUN several at a time
    let after = b.status().unwrap().batches.tun_write;
    let grew = |bucket: &str| {
        let count =
            |v: &[(String, u64)]| v.iter().find(|(b, _)| b == bucket).map_or(0, |(_, n)| *n);
        count(&after) - count(&before)
    };
    let single = grew("1");
    let joined = grew("2-4") + grew("5-16") + grew("17-64");
    assert!(joined > 0, "no TUN write joined datagrams: {after:?}");
    assert!(
        (single as usize) < got.len(),
        "{single} single writes for {} datagrams: {after:?}",
        got.len()
    );
    eprintln!(
        "{} of {DATAGRAMS} datagrams in {took:?}; TUN writes: {single} single, {joined} joined ({after:?})",
        got.len()
    );
}
