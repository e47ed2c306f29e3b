//! TUN offload work, side by side: the gateway's own (`offload.rs`) against tun-rs's
//! (`gso_split`, `handle_gro`), on the same packets, in one run. `bench/tun-offload.sh` runs it
//! in release mode; crates/gateway/README.md says why the gateway keeps its own. (The
//! gateway sums checksums with tun-rs's SIMD `checksum_no_fold`, so that part is shared.)
//!
//! - split: one 64 KiB TCP super-packet read from TUN into ESP-sized segments. The gateway
//!   writes each segment straight into the UDP GSO send buffer, behind room for the ESP
//!   header, where it is sealed in place; tun-rs splits into one buffer per segment, which the
//!   gateway would then copy into the send buffer (both figures are shown).
//! - coalesce: 46 decrypted in-order segments of one TCP flow joined into one super-packet
//!   for one TUN write.

use std::time::{Duration, Instant};

use gateway::offload::{plan_super, Coalescer, Push, VnetHdr, GSO_TCPV4};
use tun_rs::{GROTable, VirtioNetHdr, VIRTIO_NET_HDR_GSO_TCPV4};

/// TCP payload per segment (a 1,400-byte tunnel MTU less 40 bytes of headers).
const MSS: usize = 1360;
const SEGMENTS: usize = 46;
/// ESP header and IV in front of each segment in the send buffer.
const ESP_HEAD: usize = 24;
/// ESP trailer and ICV behind it.
const ESP_TAIL: usize = 18;
const ROUNDS: usize = 5;
const PER_ROUND: Duration = Duration::from_millis(600);

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/TCP packet with `payload` bytes at sequence `seq`, checksums complete.
fn tcp_packet(seq: u32, payload: usize) -> Vec<u8> {
    let len = 40 + payload;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 1, 0, 4]);
    p[16..20].copy_from_slice(&[10, 2, 0, 4]);
    let c = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&5201u16.to_be_bytes());
    p[22..24].copy_from_slice(&40000u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&7u32.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x10; // ACK
    p[34..36].copy_from_slice(&512u16.to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&p[12..20]);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&((len - 20) as u16).to_be_bytes());
    let sum: u32 = pseudo
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let c = checksum(&p[20..], sum);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// Runs `f` (one unit of work) for [`PER_ROUND`]; returns units per second.
fn rate(mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut units = 0usize;
    while start.elapsed() < PER_ROUND {
        units += f();
    }
    units as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn main() {
    let super_pkt = tcp_packet(1000, MSS * SEGMENTS);
    let ours_hdr = VnetHdr {
        flags: 1,
        gso_type: GSO_TCPV4,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    let theirs_hdr = VirtioNetHdr {
        flags: 1,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    let slot = ESP_HEAD + 40 + MSS + ESP_TAIL;
    let mut send_buf = vec![0u8; SEGMENTS * slot];
    let mut input = super_pkt.clone();
    let mut bufs = vec![vec![0u8; ESP_HEAD + 40 + MSS + ESP_TAIL]; 128];
    let mut sizes = vec![0usize; 128];

    let mut split = |theirs: bool, copy: bool| -> usize {
        if !theirs {
            let plan = plan_super(&super_pkt, &ours_hdr).expect("a valid super-packet");
            let mut at = 0;
            for i in 0..plan.count {
                let n = plan.write_segment(&super_pkt, i, &mut send_buf[at + ESP_HEAD..]);
                at += ESP_HEAD + n + ESP_TAIL;
            }
            std::hint::black_box(&send_buf);
            return plan.count;
        }
        input.copy_from_slice(&super_pkt);
        let n = tun_rs::gso_split(
            &mut input, theirs_hdr, &mut bufs, &mut sizes, ESP_HEAD, false,
        )
        .expect("a valid super-packet");
        if copy {
            let mut at = 0;
            for i in 0..n {
                let len = sizes[i];
                send_buf[at + ESP_HEAD..at + ESP_HEAD + len]
                    .copy_from_slice(&bufs[i][ESP_HEAD..ESP_HEAD + len]);
                at += ESP_HEAD + len + ESP_TAIL;
            }
        }
        std::hint::black_box(&bufs);
        n
    };

    let segments: Vec<Vec<u8>> = (0..SEGMENTS)
        .map(|i| tcp_packet(1000 + (i * MSS) as u32, MSS))
        .collect();
    let mut gro = Coalescer::new();
    let mut table = GROTable::new();
    let mut gro_bufs: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| {
            // room for the whole super-packet: tun-rs merges only into buffers this large
            let mut b = Vec::with_capacity(2 * tun_rs::VIRTIO_NET_HDR_LEN + 65_535);
            b.resize(tun_rs::VIRTIO_NET_HDR_LEN, 0);
            b.extend_from_slice(s);
            b
        })
        .collect();
    // both join the 46 segments into one packet of the same length
    table
        .apply_gro(&mut gro_bufs, tun_rs::VIRTIO_NET_HDR_LEN, false)
        .expect("coalesced");
    for s in &segments {
        gro.push(s);
    }
    let ours_len = gro.flush().expect("one").len();
    assert_eq!(
        gro_bufs[0].len(),
        ours_len,
        "tun-rs and the gateway build the same super-packet"
    );

    let mut coalesce = |theirs: bool| -> (usize, Duration) {
        if !theirs {
            let t = Instant::now();
            for s in &segments {
                assert_eq!(gro.push(s), Push::Merged);
            }
            let out = gro.flush().expect("one super-packet");
            std::hint::black_box(out);
            return (SEGMENTS, t.elapsed());
        }
        for (b, s) in gro_bufs.iter_mut().zip(&segments) {
            b.truncate(tun_rs::VIRTIO_NET_HDR_LEN);
            b.extend_from_slice(s);
        }
        let t = Instant::now();
        table
            .apply_gro(&mut gro_bufs, tun_rs::VIRTIO_NET_HDR_LEN, false)
            .expect("coalesced");
        std::hint::black_box(&gro_bufs);
        (SEGMENTS, t.elapsed())
    };
    let (mut s_ours, mut s_theirs, mut s_theirs_copy) = (vec![], vec![], vec![]);
    let (mut c_ours, mut c_theirs) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        s_ours.push(rate(|| split(false, false)));
        s_theirs.push(rate(|| split(true, false)));
        s_theirs_copy.push(rate(|| split(true, true)));
        for (theirs, out) in [(false, &mut c_ours), (true, &mut c_theirs)] {
            let mut busy = Duration::ZERO;
            let mut n = 0;
            let start = Instant::now();
            while start.elapsed() < PER_ROUND {
                let (k, d) = coalesce(theirs);
                n += k;
                busy += d;
            }
            out.push(n as f64 / busy.as_secs_f64());
        }
    }
    let m = |v: &Vec<f64>| median(v.clone()) / 1e6;
    println!(
        "| work (million segments/s, median of {ROUNDS}) | gateway | tun-rs | tun-rs / gateway |"
    );
    println!("|---|---|---|---|");
    println!(
        "| split a 64 KiB TSO packet | {:.2} | {:.2} | {:.2} |",
        m(&s_ours),
        m(&s_theirs),
        m(&s_theirs) / m(&s_ours)
    );
    println!(
        "| split, into the GSO send buffer | {:.2} | {:.2} | {:.2} |",
        m(&s_ours),
        m(&s_theirs_copy),
        m(&s_theirs_copy) / m(&s_ours)
    );
    println!(
        "| coalesce 46 segments | {:.2} | {:.2} | {:.2} |",
        m(&c_ours),
        m(&c_theirs),
        m(&c_theirs) / m(&c_ours)
    );
}
