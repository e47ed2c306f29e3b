//! Building and reading payloads: notifications, identities, traffic selectors (with
//! RFC 7296 §2.9 narrowing), NAT detection hashes, nonce checks.

use super::*;

pub(super) fn wrap(local_port: u16, remote: SocketAddr, msg: Vec<u8>) -> Transmit {
    let payload = if local_port == 500 {
        msg
    } else {
        let mut v = Vec::with_capacity(msg.len() + 4);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&msg);
        v
    };
    Transmit {
        local_port,
        remote,
        payload,
    }
}

pub(super) fn notify_payload(kind: NotifyType, data: Vec<u8>) -> Payload {
    Payload::new(PayloadBody::Notify(NotifyPayload {
        protocol: ProtocolId::Unspecified,
        spi: vec![],
        kind,
        data,
    }))
}

pub(super) fn id_payload(id: &Identity) -> IdPayload {
    IdPayload {
        id_type: id.id_type(),
        data: id.data(),
    }
}

pub(super) fn ts_to_entry(ts: &TrafficSelector) -> TsEntry {
    let oct = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    TsEntry {
        ts_type: if ts.is_v6() { 8 } else { 7 },
        protocol: ts.protocol,
        start_port: ts.start_port,
        end_port: ts.end_port,
        start: oct(ts.start),
        end: oct(ts.end),
    }
}

pub(super) fn entry_to_ts(e: &TsEntry) -> Option<TrafficSelector> {
    let addr = |b: &[u8]| -> Option<IpAddr> {
        match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
            _ => None,
        }
    };
    match e.ts_type {
        7 if e.start.len() == 4 => {}
        8 if e.start.len() == 16 => {}
        _ => return None,
    }
    Some(TrafficSelector {
        start: addr(&e.start)?,
        end: addr(&e.end)?,
        protocol: e.protocol,
        start_port: e.start_port,
        end_port: e.end_port,
    })
}

pub(super) fn ts_payload(list: &[TrafficSelector]) -> TsPayload {
    TsPayload {
        selectors: list.iter().map(ts_to_entry).collect(),
    }
}

pub(super) fn ts_list(p: &TsPayload) -> Vec<TrafficSelector> {
    p.selectors.iter().filter_map(entry_to_ts).collect()
}

pub(super) fn ts_text(list: &[TrafficSelector]) -> String {
    format!(
        "[{}]",
        list.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// RFC 7296 §2.9 narrowing: every intersection of a proposed selector with a configured one.
pub(super) fn narrow(
    proposed: &[TrafficSelector],
    configured: &[TrafficSelector],
) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = vec![];
    for p in proposed {
        for c in configured {
            if let Some(i) = p.intersect(c) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// (we are behind NAT, peer is behind NAT) from the NAT_DETECTION payloads of `payloads`;
/// absent payloads mean no NAT.
pub(super) fn nat_detect(
    view: &MessageView,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> (bool, bool) {
    let dst = view.notify_data(notify::NAT_DETECTION_DESTINATION_IP);
    let src = view.notify_data(notify::NAT_DETECTION_SOURCE_IP);
    let ours = crypto::nat_hash(spi_i, spi_r, local);
    let theirs = crypto::nat_hash(spi_i, spi_r, remote);
    let local_nat = !dst.is_empty() && !dst.contains(&ours.as_slice());
    let remote_nat = !src.is_empty() && !src.contains(&theirs.as_slice());
    (local_nat, remote_nat)
}

pub(super) fn first_error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    })
}

/// A Child SA agreed in IKE_AUTH: suite, inbound SPI, outbound SPI, local and remote selectors.
pub(super) type NegotiatedChild = (
    ChildSuite,
    u32,
    u32,
    Vec<TrafficSelector>,
    Vec<TrafficSelector>,
);
/// RFC 7296 §2.10: a nonce is at least half the PRF's key size (and at least 16 octets,
/// which [`MessageView::ike_sa_init`] checks along with the upper bound).
pub(super) fn check_nonce(prf: crate::config::Prf, nonce: &[u8]) -> Result<(), IkeError> {
    if nonce.len() < prf.output_len() / 2 {
        return Err(IkeError::InvalidPayload(
            "nonce shorter than half the PRF key size (RFC 7296 §2.10)",
        ));
    }
    Ok(())
}
