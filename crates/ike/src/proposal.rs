//! Proposal negotiation (RFC 7296 §2.7, §3.3): our configured proposals to SA payloads, the
//! responder's selection, and the initiator's check that the choice is one we offered.

use crate::codec::{
    protocol, transform_type, Attribute, ProposalSub, SaPayload, Transform, TransformType,
    ATTR_KEY_LENGTH,
};
use crate::config::{DhGroup, Encryption, Integrity, Prf, Proposal};
use crate::crypto::IkeSuite;

/// The algorithms negotiated for a Child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildSuite {
    /// Encryption.
    pub encryption: Encryption,
    /// Integrity (None with AEAD).
    pub integrity: Option<Integrity>,
    /// PFS group (None for the first Child SA, created without KE).
    pub dh: Option<DhGroup>,
}

impl ChildSuite {
    /// strongSwan-like display, e.g. "AES_CBC_256/HMAC_SHA2_256_128".
    pub fn name(&self) -> String {
        let mut parts = vec![self.encryption.name()];
        if let Some(i) = self.integrity {
            parts.push(i.name());
        }
        if let Some(d) = self.dh {
            parts.push(d.name());
        }
        parts.join("/")
    }
}

fn encr_transform(e: Encryption) -> Transform {
    Transform {
        kind: transform_type::ENCR,
        id: e.iana_id(),
        attributes: e
            .key_length_attribute()
            .map(|bits| Attribute::Tv {
                kind: ATTR_KEY_LENGTH,
                value: bits,
            })
            .into_iter()
            .collect(),
    }
}

fn simple(kind: TransformType, id: u16) -> Transform {
    Transform {
        kind,
        id,
        attributes: vec![],
    }
}

/// SA payload for IKE_SA_INIT offering all our IKE proposals.
pub fn ike_sa_payload(props: &[Proposal]) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encryption.iter().map(|e| encr_transform(*e)).collect();
            t.extend(
                p.prf
                    .iter()
                    .map(|x| simple(transform_type::PRF, x.iana_id())),
            );
            if p.encryption.iter().any(|e| !e.is_aead()) {
                t.extend(
                    p.integrity
                        .iter()
                        .map(|x| simple(transform_type::INTEG, x.iana_id())),
                );
            }
            t.extend(p.dh.iter().map(|x| simple(transform_type::DH, x.iana_id())));
            ProposalSub {
                number: (i + 1) as u8,
                protocol: protocol::IKE,
                spi: vec![],
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

/// SA payload offering our ESP proposals with inbound SPI `spi` (no DH: the first Child SA
/// in IKE_AUTH reuses the IKE key exchange; `with_dh` adds PFS groups for CREATE_CHILD_SA).
pub fn esp_sa_payload(props: &[Proposal], spi: u32, with_dh: bool) -> SaPayload {
    let proposals = props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encryption.iter().map(|e| encr_transform(*e)).collect();
            if p.encryption.iter().any(|e| !e.is_aead()) {
                t.extend(
                    p.integrity
                        .iter()
                        .map(|x| simple(transform_type::INTEG, x.iana_id())),
                );
            }
            if with_dh {
                t.extend(p.dh.iter().map(|x| simple(transform_type::DH, x.iana_id())));
            }
            t.push(simple(transform_type::ESN, 0));
            ProposalSub {
                number: (i + 1) as u8,
                protocol: protocol::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect();
    SaPayload { proposals }
}

fn enc_of(t: &Transform) -> Option<Encryption> {
    Encryption::from_iana(t.id, t.key_length())
}

fn of_kind(p: &ProposalSub, kind: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.kind == kind)
}

/// First of ours (in our order) that the peer offered; `Some(None)` when neither side has the type.
fn pick<T: Copy + PartialEq>(ours: &[T], theirs: &[T], required: bool) -> Option<Option<T>> {
    if ours.is_empty() && theirs.is_empty() && !required {
        return Some(None);
    }
    ours.iter().find(|o| theirs.contains(o)).map(|o| Some(*o))
}

struct Offered {
    enc: Vec<Encryption>,
    integ: Vec<Integrity>,
    prf: Vec<Prf>,
    dh: Vec<DhGroup>,
    esn: Vec<u16>,
}

fn offered(p: &ProposalSub) -> Offered {
    Offered {
        enc: of_kind(p, transform_type::ENCR)
            .filter_map(enc_of)
            .collect(),
        integ: of_kind(p, transform_type::INTEG)
            .filter_map(|t| Integrity::from_iana(t.id))
            .collect(),
        prf: of_kind(p, transform_type::PRF)
            .filter_map(|t| Prf::from_iana(t.id))
            .collect(),
        dh: of_kind(p, transform_type::DH)
            .filter_map(|t| DhGroup::from_iana(t.id))
            .collect(),
        esn: of_kind(p, transform_type::ESN).map(|t| t.id).collect(),
    }
}

fn ike_match(ours: &Proposal, p: &ProposalSub) -> Option<IkeSuite> {
    if p.protocol != protocol::IKE {
        return None;
    }
    let o = offered(p);
    let encryption = pick(&ours.encryption, &o.enc, true)??;
    let integrity = if encryption.is_aead() {
        None
    } else {
        Some(pick(&ours.integrity, &o.integ, true)??)
    };
    let prf = pick(&ours.prf, &o.prf, true)??;
    let dh = pick(&ours.dh, &o.dh, true)??;
    Some(IkeSuite {
        encryption,
        integrity,
        prf,
        dh,
    })
}

/// Responder: chooses from the peer's IKE proposals, preferring our order.
/// Returns the proposal number and suite.
pub fn select_ike(ours: &[Proposal], theirs: &SaPayload) -> Option<(u8, IkeSuite)> {
    for op in ours {
        for tp in &theirs.proposals {
            if let Some(s) = ike_match(op, tp) {
                return Some((tp.number, s));
            }
        }
    }
    None
}

fn esp_match(ours: &Proposal, p: &ProposalSub) -> Option<ChildSuite> {
    esp_match_pfs(ours, p, false)
}

/// ESP match; with `pfs` the DH group must match too (CREATE_CHILD_SA with KE).
fn esp_match_pfs(ours: &Proposal, p: &ProposalSub, pfs: bool) -> Option<ChildSuite> {
    if p.protocol != protocol::ESP || p.spi.len() != 4 {
        return None;
    }
    let o = offered(p);
    let encryption = pick(&ours.encryption, &o.enc, true)??;
    let integrity = if encryption.is_aead() {
        None
    } else {
        Some(pick(&ours.integrity, &o.integ, true)??)
    };
    // We only do 32-bit sequence numbers: the peer must allow "no ESN" (or omit ESN).
    if !o.esn.is_empty() && !o.esn.contains(&0) {
        return None;
    }
    let dh = if pfs {
        Some(pick(&ours.dh, &o.dh, true)??)
    } else {
        None
    };
    Some(ChildSuite {
        encryption,
        integrity,
        dh,
    })
}

/// Responder: chooses from the peer's ESP proposals (DH transforms ignored, as in IKE_AUTH).
/// Returns the proposal number, suite and the peer's inbound SPI.
pub fn select_esp(ours: &[Proposal], theirs: &SaPayload) -> Option<(u8, ChildSuite, u32)> {
    for op in ours {
        for tp in &theirs.proposals {
            if let Some(s) = esp_match(op, tp) {
                let spi = u32::from_be_bytes(tp.spi[..4].try_into().expect("4 octets"));
                return Some((tp.number, s, spi));
            }
        }
    }
    None
}

/// Responder of a CREATE_CHILD_SA: like [`select_esp`], and with `pfs` (the request carried
/// KE) the DH group is negotiated too.
pub fn select_esp_pfs(
    ours: &[Proposal],
    theirs: &SaPayload,
    pfs: bool,
) -> Option<(u8, ChildSuite, u32)> {
    for op in ours {
        for tp in &theirs.proposals {
            if let Some(s) = esp_match_pfs(op, tp, pfs) {
                let spi = u32::from_be_bytes(tp.spi[..4].try_into().expect("4 octets"));
                return Some((tp.number, s, spi));
            }
        }
    }
    None
}

/// The single-proposal SA payload a responder returns for an IKE selection.
pub fn ike_reply(number: u8, s: &IkeSuite) -> SaPayload {
    let mut t = vec![
        encr_transform(s.encryption),
        simple(transform_type::PRF, s.prf.iana_id()),
    ];
    if let Some(i) = s.integrity {
        t.push(simple(transform_type::INTEG, i.iana_id()));
    }
    t.push(simple(transform_type::DH, s.dh.iana_id()));
    SaPayload {
        proposals: vec![ProposalSub {
            number,
            protocol: protocol::IKE,
            spi: vec![],
            transforms: t,
        }],
    }
}

/// IKE SA rekey: the reply proposal carrying our new 8-octet SPI.
pub fn ike_rekey_reply(number: u8, s: &IkeSuite, spi: u64) -> SaPayload {
    let mut sa = ike_reply(number, s);
    sa.proposals[0].spi = spi.to_be_bytes().to_vec();
    sa
}

/// The single-proposal SA payload a responder returns for an ESP selection.
pub fn esp_reply(number: u8, s: &ChildSuite, spi: u32) -> SaPayload {
    let mut t = vec![encr_transform(s.encryption)];
    if let Some(i) = s.integrity {
        t.push(simple(transform_type::INTEG, i.iana_id()));
    }
    if let Some(d) = s.dh {
        t.push(simple(transform_type::DH, d.iana_id()));
    }
    t.push(simple(transform_type::ESN, 0));
    SaPayload {
        proposals: vec![ProposalSub {
            number,
            protocol: protocol::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: t,
        }],
    }
}

/// Initiator: checks the responder chose exactly one proposal, one transform per type, all
/// offered by us in that proposal.
pub fn accept_ike(ours: &[Proposal], reply: &SaPayload) -> Option<IkeSuite> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    if p.protocol != protocol::IKE {
        return None;
    }
    let o = offered(p);
    if o.enc.len() != 1 || o.prf.len() != 1 || o.dh.len() != 1 || o.integ.len() > 1 {
        return None;
    }
    let ours_p = ours.get((p.number as usize).checked_sub(1)?)?;
    let s = ike_match(ours_p, p)?;
    if !s.encryption.is_aead() && s.integrity.is_none() {
        return None;
    }
    Some(s)
}

/// Initiator: validates the responder's ESP choice; returns suite and the peer's inbound SPI.
pub fn accept_esp(ours: &[Proposal], reply: &SaPayload) -> Option<(ChildSuite, u32)> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let o = offered(p);
    if o.enc.len() != 1 || o.integ.len() > 1 {
        return None;
    }
    let ours_p = ours.get((p.number as usize).checked_sub(1)?)?;
    let s = esp_match(ours_p, p)?;
    let spi = u32::from_be_bytes(p.spi[..4].try_into().ok()?);
    Some((s, spi))
}

/// strongSwan-style text for each proposal the peer offered, for error messages; transforms we
/// do not implement are shown by type and number.
pub fn describe(sa: &SaPayload) -> Vec<String> {
    sa.proposals
        .iter()
        .map(|p| {
            let proto = match p.protocol {
                protocol::IKE => "IKE",
                protocol::ESP => "ESP",
                protocol::AH => "AH",
                _ => "?",
            };
            let mut known = Proposal {
                encryption: vec![],
                integrity: vec![],
                prf: vec![],
                dh: vec![],
                esn: false,
            };
            let mut unknown: Vec<String> = vec![];
            for t in &p.transforms {
                let ok = match t.kind {
                    transform_type::ENCR => enc_of(t).map(|e| known.encryption.push(e)).is_some(),
                    transform_type::INTEG => Integrity::from_iana(t.id)
                        .map(|i| known.integrity.push(i))
                        .is_some(),
                    transform_type::PRF => {
                        Prf::from_iana(t.id).map(|x| known.prf.push(x)).is_some()
                    }
                    transform_type::DH => {
                        DhGroup::from_iana(t.id).map(|x| known.dh.push(x)).is_some()
                    }
                    transform_type::ESN => {
                        known.esn |= t.id == 1;
                        t.id <= 1
                    }
                    _ => false,
                };
                if !ok {
                    let kl = t.key_length().map(|k| format!("/{k}")).unwrap_or_default();
                    let name = match t.kind {
                        transform_type::ENCR => "ENCR",
                        transform_type::PRF => "PRF",
                        transform_type::INTEG => "INTEG",
                        transform_type::DH => "DH",
                        _ => "T",
                    };
                    unknown.push(format!("{name}_{}{kl}", t.id));
                }
            }
            if p.protocol == protocol::ESP {
                known.prf.clear();
            }
            let mut text = known.to_string();
            for u in unknown {
                if !text.is_empty() {
                    text.push('-');
                }
                text.push_str(&u);
            }
            format!("{proto}:{text}")
        })
        .collect()
}
