//! The state the endpoint keeps: configured connections and their IKE SAs, each IKE SA's
//! phase, Child SAs, outstanding request and pending rekey.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Established,
    Down,
}

pub(super) struct Connection {
    pub(super) cfg: ConnectionConfig,
    pub(super) state: ConnState,
    pub(super) last_error: Option<String>,
    pub(super) ike_sa: Option<u64>,
    pub(super) established_at: Option<Instant>,
    pub(super) ike_algorithms: Option<String>,
    pub(super) esp_algorithms: Option<String>,
    pub(super) retry_at: Option<Instant>,
    pub(super) dropped: u64,
    /// (we are behind NAT, the peer is behind NAT) from the IKE_SA_INIT of the current
    /// authenticated IKE SA.
    pub(super) nat: (bool, bool),
    /// Unauthenticated negotiation failures (see [`ConnectionStatus::failed_attempts`]).
    pub(super) failed_attempts: u64,
    /// Times the connection went down since it was last up (drives the back-off).
    pub(super) failures: u32,
    /// When and why the last one failed.
    pub(super) last_attempt: Option<(Instant, DownReason)>,
    /// The peer narrowed the traffic selectors and part of the configured ones has no
    /// Child SA: both selector sets and what is left out.
    pub(super) selector_warning: Option<String>,
}

pub(super) struct ChildSa {
    pub(super) spi_in: u32,
    pub(super) spi_out: u32,
    pub(super) local_ts: Vec<TrafficSelector>,
    pub(super) remote_ts: Vec<TrafficSelector>,
    /// When we (as the rekeying side) replace it; `None` while a rekey runs or after it.
    pub(super) rekey_at: Option<Instant>,
    /// A rekey of it completed (ours or the peer's): it only waits for its DELETE.
    pub(super) replaced: bool,
}

impl ChildSa {
    /// Whether it holds all of the selector pair (`local`, `remote`).
    pub(super) fn covers_pair(&self, local: &TrafficSelector, remote: &TrafficSelector) -> bool {
        TrafficSelector::uncovered(&[*local], &self.local_ts).is_empty()
            && TrafficSelector::uncovered(&[*remote], &self.remote_ts).is_empty()
    }

    /// Whether it holds part of the selector pair (`local`, `remote`) on both sides.
    pub(super) fn touches_pair(&self, local: &TrafficSelector, remote: &TrafficSelector) -> bool {
        self.local_ts.iter().any(|t| t.intersect(local).is_some())
            && self.remote_ts.iter().any(|t| t.intersect(remote).is_some())
    }
}

/// Our side of a simultaneous rekey of one Child SA (RFC 7296 §2.8.1): the peer's exchange,
/// which we answered while ours was outstanding.
pub(super) struct Collision {
    /// The peer's nonce and ours in its exchange.
    pub(super) nonces: (Vec<u8>, Vec<u8>),
}

/// A CREATE_CHILD_SA we started and whose response we await.
pub(super) enum PendingRekey {
    Child {
        /// The Child SA it replaces (our inbound SPI); `None` asks for an additional Child
        /// SA: the peer narrowed the selectors and this one is for what was left out.
        old_spi_in: Option<u32>,
        new_spi_in: u32,
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
        /// The selectors asked for (for an additional Child SA's refusal message).
        ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
        /// The peer rekeyed the same Child SA at the same time.
        collision: Option<Collision>,
    },
    Ike {
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        /// What we proposed: the answer is checked against it even when the connection was
        /// removed meanwhile (the new IKE SA must then be deleted, which takes its keys).
        offered: Arc<[crate::config::Proposal]>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RequestKind {
    IkeSaInit,
    IkeAuth,
    Dpd,
    DeleteIke,
    DeleteChild(u32),
    Rekey,
}

pub(super) struct Outstanding {
    pub(super) msg_id: u32,
    pub(super) bytes: Vec<u8>,
    pub(super) tries: u32,
    pub(super) next_at: Instant,
    pub(super) kind: RequestKind,
}

/// Initiator waiting for the IKE_SA_INIT response.
pub(super) struct InitiatorInit {
    pub(super) dh: DhPrivate,
    pub(super) cookie: Option<Vec<u8>>,
    pub(super) restarts: u32,
    /// An error notification answered our request; it is unauthenticated, so it only
    /// ends the attempt if no genuine response arrives within the grace time.
    pub(super) refused: Option<DownReason>,
}

/// Where an IKE SA stands; each phase holds what is valid in it: no keys before the key
/// exchange, so nothing can be protected with keys that do not exist.
pub(super) enum Phase {
    /// We sent IKE_SA_INIT and wait for the answer.
    InitiatorInit(Box<InitiatorInit>),
    /// The key exchange is done.
    Keyed { keys: IkeKeys, step: Step },
}

/// The steps of a keyed IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Our IKE_AUTH (offering the first Child SA with this inbound SPI) is out.
    InitiatorAuth { child_spi_in: u32 },
    /// We answered IKE_SA_INIT and wait for the initiator's IKE_AUTH.
    ResponderAuth,
    /// Authenticated: the IKE SA carries exchanges and Child SAs.
    Established,
}

impl Phase {
    /// The IKE SA's keys, once the key exchange is done.
    pub(super) fn keys(&self) -> Option<&IkeKeys> {
        match self {
            Phase::InitiatorInit(_) => None,
            Phase::Keyed { keys, .. } => Some(keys),
        }
    }

    /// The step of a keyed IKE SA.
    pub(super) fn step(&self) -> Option<Step> {
        match self {
            Phase::InitiatorInit(_) => None,
            Phase::Keyed { step, .. } => Some(*step),
        }
    }

    /// Whether the IKE SA is authenticated.
    pub(super) fn is_established(&self) -> bool {
        self.step() == Some(Step::Established)
    }

    /// Authentication succeeded.
    pub(super) fn establish(&mut self) {
        if let Phase::Keyed { step, .. } = self {
            *step = Step::Established;
        }
    }
}

pub(super) struct IkeSa {
    pub(super) conn: ConnectionId,
    pub(super) initiator: bool,
    pub(super) spi_i: u64,
    pub(super) spi_r: u64,
    pub(super) local_port: u16,
    pub(super) remote: SocketAddr,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    pub(super) init_request: Vec<u8>,
    pub(super) init_response: Vec<u8>,
    pub(super) gcm_iv: u64,
    pub(super) next_out_id: u32,
    pub(super) outstanding: Option<Outstanding>,
    pub(super) queued: VecDeque<RequestKind>,
    pub(super) peer_next_id: u32,
    pub(super) cached_response: Option<Vec<u8>>,
    pub(super) last_request: Vec<u8>,
    pub(super) children: Vec<ChildSa>,
    pub(super) phase: Phase,
    pub(super) created: Instant,
    /// When IKE_AUTH (or the rekey that made it) completed.
    pub(super) established_at: Option<Instant>,
    pub(super) last_recv: Instant,
    /// (we are behind NAT, the peer is behind NAT) as IKE_SA_INIT showed; the connection
    /// takes it over only once this SA is authenticated.
    pub(super) nat: (bool, bool),
    pub(super) dead: bool,
    pub(super) quiet: bool,
    /// Set when this SA was replaced by a rekey; it only waits for the peer's DELETE.
    pub(super) rekeyed_at: Option<Instant>,
    /// The peer deleted this IKE SA, already replaced by its rekey, while our own rekey of it
    /// was in flight: the answer may still come (its SA may be the survivor of the collision),
    /// and then the SA goes without a DELETE of ours.
    pub(super) peer_deleted: bool,
    pub(super) pending_rekey: Option<Box<PendingRekey>>,
    /// When we rekey this IKE SA (initiating side only).
    pub(super) ike_rekey_at: Option<Instant>,
    /// An additional Child SA to ask for (local, remote selectors): the peer narrowed the
    /// selectors and left part of the configured ones out.
    pub(super) wanted_extra: Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// Additional Child SAs asked for so far on this IKE SA.
    pub(super) extra_asked: u32,
    /// No additional Child SA is asked for before this: on an IKE SA the peer started with
    /// one Child SA per selector pair, the peer sets up its own pairs first (asking for the
    /// same pair at the same moment would make two Child SAs of it).
    pub(super) extras_not_before: Option<Instant>,
    /// Selector pairs the peer refused an additional Child SA for.
    pub(super) refused_extra: Vec<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// Why the peer refused the last additional Child SA.
    pub(super) extra_refusal: Option<String>,
}

impl IkeSa {
    /// Authentication succeeded. The IKE_SA_INIT messages were kept only to be signed in
    /// IKE_AUTH: they go now (~0.5 KB per SA, 5 MB in a gateway with 10,000 tunnels).
    pub(super) fn establish(&mut self) {
        self.phase.establish();
        self.init_request = Vec::new();
        self.init_response = Vec::new();
    }

    /// The IKE SA that replaces `old` after an IKE SA rekey (RFC 7296 §1.3.2): fresh SPIs,
    /// nonces and keys, message IDs from zero, and `old`'s Child SAs moved over.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn successor(
        old: &mut IkeSa,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        (ni, nr): (Vec<u8>, Vec<u8>),
        keys: IkeKeys,
        now: Instant,
        ike_rekey_at: Option<Instant>,
    ) -> IkeSa {
        IkeSa {
            conn: old.conn,
            initiator,
            spi_i,
            spi_r,
            local_port: old.local_port,
            remote: old.remote,
            ni,
            nr,
            init_request: vec![],
            init_response: vec![],
            gcm_iv: 0,
            next_out_id: 0,
            outstanding: None,
            queued: VecDeque::new(),
            peer_next_id: 0,
            cached_response: None,
            last_request: vec![],
            children: std::mem::take(&mut old.children),
            phase: Phase::Keyed {
                keys,
                step: Step::Established,
            },
            created: now,
            established_at: Some(now),
            last_recv: now,
            nat: old.nat,
            dead: false,
            quiet: false,
            rekeyed_at: None,
            peer_deleted: false,
            pending_rekey: None,
            ike_rekey_at,
            wanted_extra: None,
            extra_asked: 0,
            extras_not_before: None,
            refused_extra: std::mem::take(&mut old.refused_extra),
            extra_refusal: old.extra_refusal.take(),
        }
    }

    pub(super) fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
}
