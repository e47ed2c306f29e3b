//! IKEv2 wire format (RFC 7296 §3): header and payloads, parsed into owned structures that
//! encode back to the same octets (reserved fields are written as zero, as the RFC requires).

use crate::error::DecodeError;

use codepoints::code_points;

code_points! {
    /// Exchange types (RFC 7296 §3.1).
    ExchangeType: u8 {
        /// IKE_SA_INIT.
        IkeSaInit = 34 => "IKE_SA_INIT",
        /// IKE_AUTH.
        IkeAuth = 35 => "IKE_AUTH",
        /// CREATE_CHILD_SA.
        CreateChildSa = 36 => "CREATE_CHILD_SA",
        /// INFORMATIONAL.
        Informational = 37 => "INFORMATIONAL",
    }
}

code_points! {
    /// Notify message types (RFC 7296 §3.10.1 and IANA's registry); below 16384 they
    /// report errors, from 16384 on they carry status.
    NotifyType: u16 {
        /// UNSUPPORTED_CRITICAL_PAYLOAD.
        UnsupportedCriticalPayload = 1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        /// INVALID_IKE_SPI.
        InvalidIkeSpi = 4 => "INVALID_IKE_SPI",
        /// INVALID_MAJOR_VERSION.
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        /// INVALID_SYNTAX.
        InvalidSyntax = 7 => "INVALID_SYNTAX",
        /// INVALID_MESSAGE_ID.
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        /// INVALID_SPI.
        InvalidSpi = 11 => "INVALID_SPI",
        /// NO_PROPOSAL_CHOSEN.
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        /// INVALID_KE_PAYLOAD.
        InvalidKePayload = 17 => "INVALID_KE_PAYLOAD",
        /// AUTHENTICATION_FAILED.
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        /// SINGLE_PAIR_REQUIRED.
        SinglePairRequired = 34 => "SINGLE_PAIR_REQUIRED",
        /// NO_ADDITIONAL_SAS.
        NoAdditionalSas = 35 => "NO_ADDITIONAL_SAS",
        /// INTERNAL_ADDRESS_FAILURE.
        InternalAddressFailure = 36 => "INTERNAL_ADDRESS_FAILURE",
        /// FAILED_CP_REQUIRED.
        FailedCpRequired = 37 => "FAILED_CP_REQUIRED",
        /// TS_UNACCEPTABLE.
        TsUnacceptable = 38 => "TS_UNACCEPTABLE",
        /// INVALID_SELECTORS.
        InvalidSelectors = 39 => "INVALID_SELECTORS",
        /// TEMPORARY_FAILURE (RFC 7296 §2.25: try again later).
        TemporaryFailure = 43 => "TEMPORARY_FAILURE",
        /// CHILD_SA_NOT_FOUND (RFC 7296 §2.25: a rekey of a Child SA that does not exist).
        ChildSaNotFound = 44 => "CHILD_SA_NOT_FOUND",
        /// INITIAL_CONTACT.
        InitialContact = 16384 => "INITIAL_CONTACT",
        /// SET_WINDOW_SIZE.
        SetWindowSize = 16385 => "SET_WINDOW_SIZE",
        /// ADDITIONAL_TS_POSSIBLE.
        AdditionalTsPossible = 16386 => "ADDITIONAL_TS_POSSIBLE",
        /// IPCOMP_SUPPORTED.
        IpcompSupported = 16387 => "IPCOMP_SUPPORTED",
        /// NAT_DETECTION_SOURCE_IP.
        NatDetectionSourceIp = 16388 => "NAT_DETECTION_SOURCE_IP",
        /// NAT_DETECTION_DESTINATION_IP.
        NatDetectionDestinationIp = 16389 => "NAT_DETECTION_DESTINATION_IP",
        /// COOKIE.
        Cookie = 16390 => "COOKIE",
        /// USE_TRANSPORT_MODE.
        UseTransportMode = 16391 => "USE_TRANSPORT_MODE",
        /// HTTP_CERT_LOOKUP_SUPPORTED.
        HttpCertLookupSupported = 16392 => "HTTP_CERT_LOOKUP_SUPPORTED",
        /// REKEY_SA.
        RekeySa = 16393 => "REKEY_SA",
        /// ESP_TFC_PADDING_NOT_SUPPORTED.
        EspTfcPaddingNotSupported = 16394 => "ESP_TFC_PADDING_NOT_SUPPORTED",
        /// NON_FIRST_FRAGMENTS_ALSO.
        NonFirstFragmentsAlso = 16395 => "NON_FIRST_FRAGMENTS_ALSO",
    }
}

impl NotifyType {
    /// Whether it reports an error (types below 16384): a response carrying one means the
    /// request failed (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        u16::from(self) < 16384
    }
}

code_points! {
    /// Protocol IDs in proposals, notify and delete payloads (RFC 7296 §3.3.1).
    ProtocolId: u8 {
        /// None: a notification about no SA in particular (its SPI is empty).
        Unspecified = 0 => "NONE",
        /// IKE.
        Ike = 1 => "IKE",
        /// AH.
        Ah = 2 => "AH",
        /// ESP.
        Esp = 3 => "ESP",
    }
}

code_points! {
    /// Transform types (RFC 7296 §3.3.2).
    TransformType: u8 {
        /// Encryption algorithm.
        Encr = 1 => "ENCR",
        /// Pseudo-random function.
        Prf = 2 => "PRF",
        /// Integrity algorithm.
        Integ = 3 => "INTEG",
        /// Diffie-Hellman group.
        Dh = 4 => "D-H",
        /// Extended sequence numbers.
        Esn = 5 => "ESN",
    }
}

/// Exchange types by their RFC names.
pub mod exchange {
    use super::ExchangeType;
    /// IKE_SA_INIT.
    pub const IKE_SA_INIT: ExchangeType = ExchangeType::IkeSaInit;
    /// IKE_AUTH.
    pub const IKE_AUTH: ExchangeType = ExchangeType::IkeAuth;
    /// CREATE_CHILD_SA.
    pub const CREATE_CHILD_SA: ExchangeType = ExchangeType::CreateChildSa;
    /// INFORMATIONAL.
    pub const INFORMATIONAL: ExchangeType = ExchangeType::Informational;
}

/// Header flag bits.
pub mod flags {
    /// Sender is the original initiator.
    pub const INITIATOR: u8 = 0x08;
    /// Sender can speak a higher version.
    pub const VERSION: u8 = 0x10;
    /// Message is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload type numbers (RFC 7296 §3.2).
pub mod payload_type {
    /// No next payload.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 33;
    /// Key Exchange.
    pub const KE: u8 = 34;
    /// Identification - Initiator.
    pub const IDI: u8 = 35;
    /// Identification - Responder.
    pub const IDR: u8 = 36;
    /// Certificate.
    pub const CERT: u8 = 37;
    /// Certificate Request.
    pub const CERTREQ: u8 = 38;
    /// Authentication.
    pub const AUTH: u8 = 39;
    /// Nonce.
    pub const NONCE: u8 = 40;
    /// Notify.
    pub const NOTIFY: u8 = 41;
    /// Delete.
    pub const DELETE: u8 = 42;
    /// Vendor ID.
    pub const VENDOR_ID: u8 = 43;
    /// Traffic Selector - Initiator.
    pub const TSI: u8 = 44;
    /// Traffic Selector - Responder.
    pub const TSR: u8 = 45;
    /// Encrypted and Authenticated.
    pub const SK: u8 = 46;
}

/// Notify message types by their RFC names.
pub mod notify {
    use super::NotifyType;
    /// UNSUPPORTED_CRITICAL_PAYLOAD.
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: NotifyType = NotifyType::UnsupportedCriticalPayload;
    /// INVALID_SYNTAX.
    pub const INVALID_SYNTAX: NotifyType = NotifyType::InvalidSyntax;
    /// NO_PROPOSAL_CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: NotifyType = NotifyType::NoProposalChosen;
    /// INVALID_KE_PAYLOAD.
    pub const INVALID_KE_PAYLOAD: NotifyType = NotifyType::InvalidKePayload;
    /// AUTHENTICATION_FAILED.
    pub const AUTHENTICATION_FAILED: NotifyType = NotifyType::AuthenticationFailed;
    /// SINGLE_PAIR_REQUIRED.
    pub const SINGLE_PAIR_REQUIRED: NotifyType = NotifyType::SinglePairRequired;
    /// NO_ADDITIONAL_SAS.
    pub const NO_ADDITIONAL_SAS: NotifyType = NotifyType::NoAdditionalSas;
    /// INTERNAL_ADDRESS_FAILURE.
    pub const INTERNAL_ADDRESS_FAILURE: NotifyType = NotifyType::InternalAddressFailure;
    /// FAILED_CP_REQUIRED.
    pub const FAILED_CP_REQUIRED: NotifyType = NotifyType::FailedCpRequired;
    /// TS_UNACCEPTABLE.
    pub const TS_UNACCEPTABLE: NotifyType = NotifyType::TsUnacceptable;
    /// TEMPORARY_FAILURE.
    pub const TEMPORARY_FAILURE: NotifyType = NotifyType::TemporaryFailure;
    /// CHILD_SA_NOT_FOUND.
    pub const CHILD_SA_NOT_FOUND: NotifyType = NotifyType::ChildSaNotFound;
    /// INITIAL_CONTACT.
    pub const INITIAL_CONTACT: NotifyType = NotifyType::InitialContact;
    /// NAT_DETECTION_SOURCE_IP.
    pub const NAT_DETECTION_SOURCE_IP: NotifyType = NotifyType::NatDetectionSourceIp;
    /// NAT_DETECTION_DESTINATION_IP.
    pub const NAT_DETECTION_DESTINATION_IP: NotifyType = NotifyType::NatDetectionDestinationIp;
    /// COOKIE.
    pub const COOKIE: NotifyType = NotifyType::Cookie;
    /// USE_TRANSPORT_MODE.
    pub const USE_TRANSPORT_MODE: NotifyType = NotifyType::UseTransportMode;
    /// REKEY_SA.
    pub const REKEY_SA: NotifyType = NotifyType::RekeySa;
}

/// Protocol IDs by their RFC names.
pub mod protocol {
    use super::ProtocolId;
    /// IKE.
    pub const IKE: ProtocolId = ProtocolId::Ike;
    /// AH.
    pub const AH: ProtocolId = ProtocolId::Ah;
    /// ESP.
    pub const ESP: ProtocolId = ProtocolId::Esp;
}

/// Transform types by their RFC names.
pub mod transform_type {
    use super::TransformType;
    /// Encryption algorithm.
    pub const ENCR: TransformType = TransformType::Encr;
    /// Pseudo-random function.
    pub const PRF: TransformType = TransformType::Prf;
    /// Integrity algorithm.
    pub const INTEG: TransformType = TransformType::Integ;
    /// Diffie-Hellman group.
    pub const DH: TransformType = TransformType::Dh;
    /// Extended sequence numbers.
    pub const ESN: TransformType = TransformType::Esn;
}

/// Transform attribute type: Key Length (in bits), TV format.
pub const ATTR_KEY_LENGTH: u16 = 14;

/// Fixed IKE header length.
pub const HEADER_LEN: usize = 28;

/// The fixed IKE header (RFC 7296 §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI (0 in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: u8,
    /// Major/minor version octet (0x20).
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags (I, V, R).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
    /// Total message length.
    pub length: u32,
}

impl Header {
    /// Parses the first 28 octets.
    pub fn decode(b: &[u8]) -> Result<Header, DecodeError> {
        if b.len() < HEADER_LEN {
            return Err(DecodeError::Truncated("IKE header"));
        }
        let h = Header {
            spi_i: u64::from_be_bytes(b[0..8].try_into().expect("8 octets")),
            spi_r: u64::from_be_bytes(b[8..16].try_into().expect("8 octets")),
            next_payload: b[16],
            version: b[17],
            exchange: ExchangeType::from(b[18]),
            flags: b[19],
            message_id: u32::from_be_bytes(b[20..24].try_into().expect("4 octets")),
            length: u32::from_be_bytes(b[24..28].try_into().expect("4 octets")),
        };
        if h.version >> 4 != 2 {
            return Err(DecodeError::UnsupportedVersion(h.version >> 4));
        }
        Ok(h)
    }

    /// Appends the 28 header octets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange.into());
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    /// Whether the R flag is set.
    pub fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }

    /// Whether the I flag is set (sender is the original initiator).
    pub fn from_initiator(&self) -> bool {
        self.flags & flags::INITIATOR != 0
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    /// Type/Value format (AF bit set), e.g. Key Length.
    Tv {
        /// Attribute type (15 bits).
        kind: u16,
        /// Value.
        value: u16,
    },
    /// Type/Length/Value format.
    Tlv {
        /// Attribute type (15 bits).
        kind: u16,
        /// Value octets.
        value: Vec<u8>,
    },
}

/// A transform substructure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    /// Transform type (ENCR, PRF, INTEG, DH, ESN).
    pub kind: TransformType,
    /// Transform ID.
    pub id: u16,
    /// Attributes (Key Length for AES).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv { kind, value } if *kind == ATTR_KEY_LENGTH => Some(*value),
            _ => None,
        })
    }
}

/// A proposal substructure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalSub {
    /// Proposal number (1-based).
    pub number: u8,
    /// Protocol ID (IKE or ESP).
    pub protocol: ProtocolId,
    /// SPI (empty in IKE_SA_INIT, 4 octets for ESP).
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// Security Association payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaPayload {
    /// Proposals.
    pub proposals: Vec<ProposalSub>,
}

/// Key Exchange payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KePayload {
    /// DH group number.
    pub group: u16,
    /// Public value.
    pub data: Vec<u8>,
}

/// Identification payload (IDi or IDr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdPayload {
    /// ID type.
    pub id_type: u8,
    /// Identification data.
    pub data: Vec<u8>,
}

impl IdPayload {
    /// The "RestOfIDPayload" octets signed in AUTH (type, 3 reserved, data).
    pub fn rest_of_payload(&self) -> Vec<u8> {
        let mut v = vec![self.id_type, 0, 0, 0];
        v.extend_from_slice(&self.data);
        v
    }
}

/// Authentication payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPayload {
    /// Auth method (2 = shared key MIC).
    pub method: u8,
    /// Authentication data.
    pub data: Vec<u8>,
}

/// Notify payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyPayload {
    /// Protocol ID (NONE when not SA-specific).
    pub protocol: ProtocolId,
    /// SPI (often empty).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub kind: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

/// Delete payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletePayload {
    /// Protocol ID (IKE or ESP).
    pub protocol: ProtocolId,
    /// SPI size (0 for IKE, 4 for ESP).
    pub spi_size: u8,
    /// SPIs.
    pub spis: Vec<Vec<u8>>,
}

/// One traffic selector on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsEntry {
    /// TS type (7 = IPv4 range, 8 = IPv6 range).
    pub ts_type: u8,
    /// IP protocol ID.
    pub protocol: u8,
    /// Start port.
    pub start_port: u16,
    /// End port.
    pub end_port: u16,
    /// Start address octets.
    pub start: Vec<u8>,
    /// End address octets.
    pub end: Vec<u8>,
}

/// Traffic Selector payload (TSi or TSr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsPayload {
    /// Selectors.
    pub selectors: Vec<TsEntry>,
}

/// Encrypted and Authenticated payload, still encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkPayload {
    /// Type of the first inner payload.
    pub first_inner: u8,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

/// Payload contents by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadBody {
    /// SA.
    Sa(SaPayload),
    /// KE.
    Ke(KePayload),
    /// IDi.
    IdI(IdPayload),
    /// IDr.
    IdR(IdPayload),
    /// AUTH.
    Auth(AuthPayload),
    /// Ni / Nr.
    Nonce(Vec<u8>),
    /// N.
    Notify(NotifyPayload),
    /// D.
    Delete(DeletePayload),
    /// V.
    VendorId(Vec<u8>),
    /// TSi.
    TsI(TsPayload),
    /// TSr.
    TsR(TsPayload),
    /// SK (only as the last outer payload).
    Sk(SkPayload),
    /// Any other payload (CERT, CERTREQ, CP, EAP, ...), kept opaque and otherwise ignored.
    Other {
        /// Payload type number.
        kind: u8,
        /// Body octets.
        data: Vec<u8>,
    },
}

/// A payload with its generic header flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Critical bit.
    pub critical: bool,
    /// Contents.
    pub body: PayloadBody,
}

impl Payload {
    /// A non-critical payload.
    pub fn new(body: PayloadBody) -> Payload {
        Payload {
            critical: false,
            body,
        }
    }

    /// Payload type number.
    pub fn kind(&self) -> u8 {
        use payload_type::*;
        match &self.body {
            PayloadBody::Sa(_) => SA,
            PayloadBody::Ke(_) => KE,
            PayloadBody::IdI(_) => IDI,
            PayloadBody::IdR(_) => IDR,
            PayloadBody::Auth(_) => AUTH,
            PayloadBody::Nonce(_) => NONCE,
            PayloadBody::Notify(_) => NOTIFY,
            PayloadBody::Delete(_) => DELETE,
            PayloadBody::VendorId(_) => VENDOR_ID,
            PayloadBody::TsI(_) => TSI,
            PayloadBody::TsR(_) => TSR,
            PayloadBody::Sk(s) => {
                let _ = s;
                SK
            }
            PayloadBody::Other { kind, .. } => *kind,
        }
    }

    /// The "next payload" value this payload's predecessor must carry.
    fn chain_kind(&self) -> u8 {
        self.kind()
    }
}

/// A whole IKE message; for encrypted messages `payloads` ends with the still-encrypted SK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Header (its length and next_payload are recomputed by `encode`).
    pub header: Header,
    /// Outer payloads.
    pub payloads: Vec<Payload>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.pos < n {
            return Err(DecodeError::Truncated(what));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
    fn done(&self) -> bool {
        self.pos == self.b.len()
    }
}

fn decode_transform(b: &[u8]) -> Result<Transform, DecodeError> {
    let mut r = Reader::new(b);
    let kind = r.u8("transform")?;
    r.u8("transform")?;
    let id = r.u16("transform")?;
    let mut attributes = vec![];
    while !r.done() {
        let t = r.u16("attribute")?;
        if t & 0x8000 != 0 {
            let value = r.u16("attribute")?;
            attributes.push(Attribute::Tv {
                kind: t & 0x7fff,
                value,
            });
        } else {
            let len = r.u16("attribute")? as usize;
            let value = r.take(len, "attribute value")?.to_vec();
            attributes.push(Attribute::Tlv { kind: t, value });
        }
    }
    Ok(Transform {
        kind: TransformType::from(kind),
        id,
        attributes,
    })
}

fn decode_sa(b: &[u8]) -> Result<SaPayload, DecodeError> {
    let mut r = Reader::new(b);
    let mut proposals = vec![];
    loop {
        let last = r.u8("proposal")?;
        r.u8("proposal")?;
        let len = r.u16("proposal")? as usize;
        if len < 8 {
            return Err(DecodeError::BadLength("proposal"));
        }
        let body = r.take(len - 4, "proposal")?;
        let mut pr = Reader::new(body);
        let number = pr.u8("proposal")?;
        let protocol = pr.u8("proposal")?;
        let spi_size = pr.u8("proposal")? as usize;
        let ntrans = pr.u8("proposal")? as usize;
        let spi = pr.take(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(ntrans.min(64));
        for i in 0..ntrans {
            let tlast = pr.u8("transform")?;
            pr.u8("transform")?;
            let tlen = pr.u16("transform")? as usize;
            if tlen < 8 {
                return Err(DecodeError::BadLength("transform"));
            }
            let tb = pr.take(tlen - 4, "transform")?;
            transforms.push(decode_transform(tb)?);
            let expect_last = i + 1 == ntrans;
            if (tlast == 0) != expect_last || (tlast != 0 && tlast != 3) {
                return Err(DecodeError::Invalid("transform last-substructure marker"));
            }
        }
        if !pr.done() {
            return Err(DecodeError::BadLength("proposal"));
        }
        proposals.push(ProposalSub {
            number,
            protocol: ProtocolId::from(protocol),
            spi,
            transforms,
        });
        match last {
            0 => break,
            2 => {}
            _ => return Err(DecodeError::Invalid("proposal last-substructure marker")),
        }
    }
    if !r.done() {
        return Err(DecodeError::BadLength("SA payload"));
    }
    Ok(SaPayload { proposals })
}

fn encode_sa(sa: &SaPayload, out: &mut Vec<u8>) {
    for (pi, p) in sa.proposals.iter().enumerate() {
        let start = out.len();
        out.push(if pi + 1 == sa.proposals.len() { 0 } else { 2 });
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.push(p.number);
        out.push(p.protocol.into());
        out.push(p.spi.len() as u8);
        out.push(p.transforms.len() as u8);
        out.extend_from_slice(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            let ts = out.len();
            out.push(if ti + 1 == p.transforms.len() { 0 } else { 3 });
            out.push(0);
            out.extend_from_slice(&[0, 0]);
            out.push(t.kind.into());
            out.push(0);
            out.extend_from_slice(&t.id.to_be_bytes());
            for a in &t.attributes {
                match a {
                    Attribute::Tv { kind, value } => {
                        out.extend_from_slice(&(kind | 0x8000).to_be_bytes());
                        out.extend_from_slice(&value.to_be_bytes());
                    }
                    Attribute::Tlv { kind, value } => {
                        out.extend_from_slice(&(kind & 0x7fff).to_be_bytes());
                        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            }
            let tl = (out.len() - ts) as u16;
            out[ts + 2..ts + 4].copy_from_slice(&tl.to_be_bytes());
        }
        let pl = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&pl.to_be_bytes());
    }
}

fn decode_ts(b: &[u8]) -> Result<TsPayload, DecodeError> {
    let mut r = Reader::new(b);
    let n = r.u8("TS payload")? as usize;
    r.take(3, "TS payload")?;
    let mut selectors = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let ts_type = r.u8("traffic selector")?;
        let protocol = r.u8("traffic selector")?;
        let len = r.u16("traffic selector")? as usize;
        if len < 8 {
            return Err(DecodeError::BadLength("traffic selector"));
        }
        let body = r.take(len - 4, "traffic selector")?;
        let start_port = u16::from_be_bytes([body[0], body[1]]);
        let end_port = u16::from_be_bytes([body[2], body[3]]);
        let addrs = &body[4..];
        let alen = match ts_type {
            7 => 4,
            8 => 16,
            _ => addrs.len() / 2,
        };
        if addrs.len() != 2 * alen {
            return Err(DecodeError::BadLength("traffic selector"));
        }
        selectors.push(TsEntry {
            ts_type,
            protocol,
            start_port,
            end_port,
            start: addrs[..alen].to_vec(),
            end: addrs[alen..].to_vec(),
        });
    }
    if !r.done() {
        return Err(DecodeError::BadLength("TS payload"));
    }
    Ok(TsPayload { selectors })
}

fn encode_ts(ts: &TsPayload, out: &mut Vec<u8>) {
    out.push(ts.selectors.len() as u8);
    out.extend_from_slice(&[0, 0, 0]);
    for s in &ts.selectors {
        out.push(s.ts_type);
        out.push(s.protocol);
        out.extend_from_slice(&((8 + s.start.len() + s.end.len()) as u16).to_be_bytes());
        out.extend_from_slice(&s.start_port.to_be_bytes());
        out.extend_from_slice(&s.end_port.to_be_bytes());
        out.extend_from_slice(&s.start);
        out.extend_from_slice(&s.end);
    }
}

fn decode_body(kind: u8, next: u8, b: &[u8]) -> Result<PayloadBody, DecodeError> {
    use payload_type::*;
    let mut r = Reader::new(b);
    Ok(match kind {
        SA => PayloadBody::Sa(decode_sa(b)?),
        KE => {
            let group = r.u16("KE payload")?;
            r.take(2, "KE payload")?;
            PayloadBody::Ke(KePayload {
                group,
                data: r.rest().to_vec(),
            })
        }
        IDI | IDR => {
            let id_type = r.u8("ID payload")?;
            r.take(3, "ID payload")?;
            let p = IdPayload {
                id_type,
                data: r.rest().to_vec(),
            };
            if kind == IDI {
                PayloadBody::IdI(p)
            } else {
                PayloadBody::IdR(p)
            }
        }
        AUTH => {
            let method = r.u8("AUTH payload")?;
            r.take(3, "AUTH payload")?;
            PayloadBody::Auth(AuthPayload {
                method,
                data: r.rest().to_vec(),
            })
        }
        NONCE => PayloadBody::Nonce(b.to_vec()),
        NOTIFY => {
            let protocol = r.u8("Notify payload")?;
            let spi_size = r.u8("Notify payload")? as usize;
            let kind = r.u16("Notify payload")?;
            let spi = r.take(spi_size, "Notify SPI")?.to_vec();
            PayloadBody::Notify(NotifyPayload {
                protocol: ProtocolId::from(protocol),
                spi,
                kind: NotifyType::from(kind),
                data: r.rest().to_vec(),
            })
        }
        DELETE => {
            let protocol = r.u8("Delete payload")?;
            let spi_size = r.u8("Delete payload")?;
            let n = r.u16("Delete payload")? as usize;
            let mut spis = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                spis.push(r.take(spi_size as usize, "Delete SPI")?.to_vec());
            }
            if !r.done() {
                return Err(DecodeError::BadLength("Delete payload"));
            }
            PayloadBody::Delete(DeletePayload {
                protocol: ProtocolId::from(protocol),
                spi_size,
                spis,
            })
        }
        VENDOR_ID => PayloadBody::VendorId(b.to_vec()),
        TSI => PayloadBody::TsI(decode_ts(b)?),
        TSR => PayloadBody::TsR(decode_ts(b)?),
        SK => PayloadBody::Sk(SkPayload {
            first_inner: next,
            data: b.to_vec(),
        }),
        _ => PayloadBody::Other {
            kind,
            data: b.to_vec(),
        },
    })
}

fn encode_body(body: &PayloadBody, out: &mut Vec<u8>) {
    match body {
        PayloadBody::Sa(sa) => encode_sa(sa, out),
        PayloadBody::Ke(ke) => {
            out.extend_from_slice(&ke.group.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ke.data);
        }
        PayloadBody::IdI(id) | PayloadBody::IdR(id) => out.extend_from_slice(&id.rest_of_payload()),
        PayloadBody::Auth(a) => {
            out.extend_from_slice(&[a.method, 0, 0, 0]);
            out.extend_from_slice(&a.data);
        }
        PayloadBody::Nonce(n) | PayloadBody::VendorId(n) => out.extend_from_slice(n),
        PayloadBody::Notify(n) => {
            out.push(n.protocol.into());
            out.push(n.spi.len() as u8);
            out.extend_from_slice(&u16::from(n.kind).to_be_bytes());
            out.extend_from_slice(&n.spi);
            out.extend_from_slice(&n.data);
        }
        PayloadBody::Delete(d) => {
            out.push(d.protocol.into());
            out.push(d.spi_size);
            out.extend_from_slice(&(d.spis.len() as u16).to_be_bytes());
            for s in &d.spis {
                out.extend_from_slice(s);
            }
        }
        PayloadBody::TsI(t) | PayloadBody::TsR(t) => encode_ts(t, out),
        PayloadBody::Sk(sk) => out.extend_from_slice(&sk.data),
        PayloadBody::Other { data, .. } => out.extend_from_slice(data),
    }
}

/// Known payload types; unknown ones with the critical bit set make the message unacceptable.
fn is_known(kind: u8) -> bool {
    matches!(kind, 33..=48 | 53)
}

/// Decodes a payload chain starting with type `first`; an SK payload must be last.
pub fn decode_chain(first: u8, b: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = vec![];
    let mut next = first;
    let mut r = Reader::new(b);
    while next != payload_type::NONE {
        let kind = next;
        let np = r.u8("generic payload header")?;
        let fl = r.u8("generic payload header")?;
        let len = r.u16("generic payload header")? as usize;
        if len < 4 {
            return Err(DecodeError::BadLength("generic payload header"));
        }
        let body = r.take(len - 4, "payload body")?;
        let critical = fl & 0x80 != 0;
        if !is_known(kind) && critical {
            return Err(DecodeError::UnsupportedCriticalPayload(kind));
        }
        let pb = decode_body(kind, np, body)?;
        payloads.push(Payload { critical, body: pb });
        if kind == payload_type::SK {
            if !r.done() {
                return Err(DecodeError::SkNotLast);
            }
            return Ok(payloads);
        }
        next = np;
    }
    if !r.done() {
        return Err(DecodeError::BadLength("payload chain"));
    }
    Ok(payloads)
}

/// Encodes a payload chain; returns the type of the first payload.
pub fn encode_chain(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = match &p.body {
            PayloadBody::Sk(sk) => sk.first_inner,
            _ => payloads
                .get(i + 1)
                .map_or(payload_type::NONE, |n| n.chain_kind()),
        };
        let start = out.len();
        out.push(next);
        out.push(if p.critical { 0x80 } else { 0 });
        out.extend_from_slice(&[0, 0]);
        encode_body(&p.body, out);
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    payloads
        .first()
        .map_or(payload_type::NONE, |p| p.chain_kind())
}

impl Message {
    /// Parses a whole message; the header length must equal the datagram length.
    pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
        let header = Header::decode(b)?;
        if header.length as usize != b.len() {
            return Err(DecodeError::BadLength("IKE header length"));
        }
        let payloads = decode_chain(header.next_payload, &b[HEADER_LEN..])?;
        Ok(Message { header, payloads })
    }

    /// Serializes, fixing up next_payload and length in the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.header.encode(&mut out);
        let first = encode_chain(&self.payloads, &mut out);
        out[16] = first;
        let len = out.len() as u32;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// First notify of the given type.
    pub fn notify(&self, kind: NotifyType) -> Option<&NotifyPayload> {
        find_notify(&self.payloads, kind)
    }
}

/// First notify of the given type in a payload list.
pub fn find_notify(payloads: &[Payload], kind: NotifyType) -> Option<&NotifyPayload> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

/// Offset of the SK payload's generic header inside an encoded message, if it has one.
pub fn sk_offset(b: &[u8]) -> Result<Option<usize>, DecodeError> {
    let header = Header::decode(b)?;
    let mut next = header.next_payload;
    let mut pos = HEADER_LEN;
    while next != payload_type::NONE {
        if b.len() < pos + 4 {
            return Err(DecodeError::Truncated("generic payload header"));
        }
        if next == payload_type::SK {
            return Ok(Some(pos));
        }
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        if len < 4 {
            return Err(DecodeError::BadLength("generic payload header"));
        }
        next = b[pos];
        pos += len;
    }
    Ok(None)
}
