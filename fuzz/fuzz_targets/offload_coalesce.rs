//! The receive direction's coalescer fed hostile decrypted packets (an authenticated peer may
//! still send anything inside its tunnel), and the send direction's super-packet split fed
//! hostile offload headers. Neither may panic; what the coalescer joins must split back into
//! the packets that went in (lengths and payloads; checksums are recomputed by the split).
//!
//! Input: byte 0 picks the mode. Mode 0: the rest is a list of packets, each a big-endian u16
//! length and that many bytes, pushed in order (a refused packet flushes what is pending and
//! is pushed again). Mode 1: the rest is one TUN read (a `virtio_net_hdr` and a packet), split
//! into segments as the send direction does.
#![no_main]

use gateway::offload::{plan_super, Coalescer, Push, VnetHdr, GSO_NONE, VNET_HDR_LEN};
use libfuzzer_sys::fuzz_target;

/// Flushes `c` and checks the result against the packets that were merged into it.
fn flush_and_check(c: &mut Coalescer, merged: &mut Vec<Vec<u8>>) {
    let Some(out) = c.flush().map(<[u8]>::to_vec) else {
        assert!(merged.is_empty());
        return;
    };
    let inputs = std::mem::take(merged);
    let hdr = VnetHdr::parse(&out).expect("a header in front");
    let pkt = &out[VNET_HDR_LEN..];
    if hdr.gso_type == GSO_NONE {
        assert_eq!(inputs.len(), 1);
        assert_eq!(pkt, &inputs[0][..], "a lone packet goes out unchanged");
        return;
    }
    let plan = plan_super(pkt, &hdr).expect("the coalescer's own super-packet splits");
    assert_eq!(plan.count, inputs.len(), "one segment per packet merged");
    let mut seg = vec![0u8; 65_536];
    for (i, input) in inputs.iter().enumerate() {
        let n = plan.write_segment(pkt, i, &mut seg);
        assert_eq!(n, input.len(), "segment {i} length");
        assert_eq!(seg[plan.hdr_len..n], input[plan.hdr_len..], "segment {i} payload");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut c = Coalescer::new().with_udp(true);
        let mut merged = Vec::new();
        let mut rest = rest;
        while rest.len() >= 2 {
            let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            let p = rest[2..2 + len].to_vec();
            rest = &rest[2 + len..];
            if c.push(&p) == Push::Rejected {
                flush_and_check(&mut c, &mut merged);
                if c.push(&p) == Push::Merged {
                    merged.push(p);
                }
            } else {
                merged.push(p);
            }
        }
        flush_and_check(&mut c, &mut merged);
    } else {
        if rest.len() < VNET_HDR_LEN {
            return;
        }
        let hdr = VnetHdr::parse(rest).expect("10 bytes");
        let pkt = &rest[VNET_HDR_LEN..];
        if let Ok(plan) = plan_super(pkt, &hdr) {
            let mut seg = vec![0u8; 65_536];
            for i in 0..plan.count.min(70_000) {
                let n = plan.segment_len(i);
                assert_eq!(plan.write_segment(pkt, i, &mut seg[..n.max(plan.hdr_len)]), n);
            }
        }
    }
});
