//! The gateway's TOML configuration: parsed by hand from a `toml::Table` so that every error
//! names the offending key and connection, unknown keys are rejected (a typo must not silently
//! fall back to a default), and the PSK never reaches a `Debug` or error string.

use crate::placement::CpuPlacement;
use ike::config::{
    ConnectionConfig, DownAction, Identity, Proposal, Psk, Recovery, TrafficSelector,
    MAX_SELECTOR_PAIRS,
};
use ipnet::IpNet;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Default TUN device name (fits IFNAMSIZ with room for a suffix).
pub const DEFAULT_TUN_NAME: &str = "hn-gw0";
/// No busy poll unless asked for: on the 2-core Intel test VM every spin variant measured
/// (yielding, adaptive, in the idle class) added more round-trip time than blocking at once
/// (`crates/gateway/README.md`, "Busy polling"). The interop race that kept it off before
/// (a DELETE overtaking an IKE_AUTH answer inside strongSwan) is solved in the IKE layer, so
/// hosts where it measures better can turn it on freely.
pub const DEFAULT_BUSY_POLL: Duration = Duration::ZERO;
/// Default IKE proposals: Azure's and Azure Stack Hub's common ground first.
pub const DEFAULT_IKE_PROPOSALS: &[&str] =
    &["aes256gcm16-prfsha384-ecp384", "aes256-sha256-modp2048"];
/// Default ESP proposals (no PFS, like Azure's default policy).
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256gcm16", "aes256-sha256"];
/// Azure's IKE SA lifetime (28800 s).
pub const DEFAULT_IKE_LIFETIME: Duration = Duration::from_secs(28_800);
/// Azure's Child SA lifetime (27000 s).
pub const DEFAULT_CHILD_LIFETIME: Duration = Duration::from_secs(27_000);
/// Azure's DPD timeout (45 s).
pub const DEFAULT_DPD_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a configuration file was rejected; each variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// A required key is absent.
    #[error("{place}: missing required key `{key}`")]
    Missing {
        /// Where in the config file.
        place: Place,
        /// The key concerned.
        key: &'static str,
    },
    /// A key that the gateway does not know (probably a typo).
    #[error("{place}: unknown key `{key}`")]
    UnknownKey {
        /// Where in the config file.
        place: Place,
        /// The key concerned.
        key: String,
    },
    /// A key has the wrong TOML type.
    #[error("{place}: key `{key}` must be {expected}")]
    WrongType {
        /// Where in the config file.
        place: Place,
        /// The key concerned.
        key: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A key has a value of the right type that is not acceptable.
    #[error("{place}: key `{key}`: invalid value {value:?}: {reason}")]
    Invalid {
        /// Where in the config file.
        place: Place,
        /// The key concerned.
        key: String,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// The file named by `psk_file` could not be read.
    #[error("{place}: key `psk_file`: cannot read {path}: {cause}")]
    PskFile {
        /// Where in the config file.
        place: Place,
        /// Where it is.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// Both or neither of `psk` and `psk_file` are given.
    #[error("{place}: exactly one of `psk` and `psk_file` is required")]
    PskChoice {
        /// Where in the config file.
        place: Place,
    },
    /// Two connections share a name.
    #[error("{place}: duplicate connection name")]
    DuplicateName {
        /// Where in the config file.
        place: Place,
    },
    /// No `[[connection]]` entry.
    #[error("config has no [[connection]] entry")]
    NoConnections,
}

/// Where in the config file a problem is: top level, `[tun]` or one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The top-level table.
    Top,
    /// The `[tun]` table.
    Tun,
    /// The `[bgp]` table.
    Bgp,
    /// The `[vnet_router]` table.
    VnetRouter,
    /// The n-th `[[connection]]` (0-based) and its name if known.
    Connection {
        /// Its position (0-based).
        index: usize,
        /// The name concerned.
        name: Option<String>,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Top => write!(f, "config"),
            Place::Tun => write!(f, "config [tun]"),
            Place::Bgp => write!(f, "config [bgp]"),
            Place::VnetRouter => write!(f, "config [vnet_router]"),
            Place::Connection {
                index,
                name: Some(n),
            } => write!(f, "connection {n:?} ([[connection]] #{})", index + 1),
            Place::Connection { index, name: None } => write!(f, "[[connection]] #{}", index + 1),
        }
    }
}

/// The TUN device settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Explicit MTU; `None` = computed from the path MTU and the worst-case ESP overhead.
    pub mtu: Option<u16>,
}

/// A pre-shared key held in zeroizing memory; its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }
    /// The raw bytes, for handing to the IKE layer (never for printing).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// One `[[connection]]`: a site-to-site tunnel to one peer.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// Unique name, shown in status and logs.
    pub name: String,
    /// Peer address; `None` for `%any` (responder only).
    pub remote_address: Option<IpAddr>,
    /// Our IKE identity (default: the local address).
    pub local_id: Identity,
    /// The identity the peer must prove; `None` accepts any that authenticates with the PSK.
    pub remote_id: Option<Identity>,
    /// The pre-shared key.
    pub psk: SecretBytes,
    /// Prefixes behind us (our traffic selectors).
    pub local_prefixes: Vec<IpNet>,
    /// Prefixes behind the peer (routed into the TUN device).
    pub remote_prefixes: Vec<IpNet>,
    /// IKE proposals in preference order (strongSwan syntax); one copy per distinct list
    /// (see [`ProposalLists`]).
    pub ike_proposals: Arc<[Proposal]>,
    /// ESP proposals in preference order (strongSwan syntax; a DH group means PFS).
    pub esp_proposals: Arc<[Proposal]>,
    /// IKE SA lifetime.
    pub ike_lifetime: Duration,
    /// Child SA lifetime.
    pub child_lifetime: Duration,
    /// Child SA byte lifetime (inner bytes both ways); `None` = time only.
    pub child_lifetime_bytes: Option<u64>,
    /// Dead-peer-detection timeout.
    pub dpd_timeout: Duration,
    /// Whether we start the IKE SA (otherwise we only respond).
    pub initiate: bool,
    /// How an initiating connection comes back after going down (`close_action`,
    /// `dpd_action`, `keyingtries`, `retry_max`).
    pub recovery: Recovery,
    /// `selector_pairs`: one Child SA per (local prefix, remote prefix) pair instead of one
    /// for all prefixes, for peers with policy-based devices (Azure's
    /// `usePolicyBasedTrafficSelectors`); see [`ConnectionConfig::selector_pairs`].
    pub selector_pairs: bool,
    /// The BGP peer behind this tunnel (`bgp_peer_address`, `bgp_peer_asn`): the
    /// connection then negotiates any-to-any selectors, as Azure's route-based gateways do,
    /// and its routes (what enters it) are `remote_prefixes`, the peer's /32 and what the
    /// peer announces.
    pub bgp_peer: Option<BgpPeer>,
}

/// A connection's BGP neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgpPeer {
    /// Its BGP address, reached through the tunnel.
    pub address: std::net::Ipv4Addr,
    /// The AS it must announce.
    pub asn: u32,
}

/// `[bgp]`: the gateway's own BGP speaker, serving every connection with a `bgp_peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// Our AS (Azure's default is 65515).
    pub asn: u32,
    /// Our BGP address and identifier: the TCP sessions are bound to it (an address of the
    /// GatewaySubnet side; a custom 169.254.21.x/169.254.22.x one is added to the loopback).
    pub address: std::net::Ipv4Addr,
    /// Prefixes announced as ours (the VNet's address space); learned routes inside them are
    /// never installed.
    pub originate: Vec<ipnet::Ipv4Net>,
    /// Hold time proposed, in seconds (0, or 3 and more).
    pub hold_time: u16,
}

/// `[vnet_router]`: the router of the gateway's VNet, which the gateway tells what to send it:
/// the prefixes it learned over BGP, and with `static_routes` the static prefixes of every
/// connection whose tunnel is up (an active-active instance: the router then prefers the
/// instance whose tunnels are up, by `metric`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetRouter {
    /// Its network namespace (by name, as `ip netns` knows it).
    pub netns: String,
    /// The next hop it uses for them: our address on the GatewaySubnet.
    pub next_hop: std::net::Ipv4Addr,
    /// Route metric (lower wins; the lab's own static routes have 0).
    pub metric: u32,
    /// Also the static prefixes of the connections that are up.
    pub static_routes: bool,
}

/// Metric of the routes a gateway installs in its VNet router unless told otherwise.
pub const DEFAULT_VNET_ROUTE_METRIC: u32 = 20;

/// Hold time of Azure VPN gateways' BGP sessions (keepalives every 60 s).
pub const DEFAULT_BGP_HOLD_TIME: u16 = 180;

/// The whole gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The address the UDP 500/4500 sockets bind to (our public IP).
    pub local_address: IpAddr,
    /// Explicit status socket path (overrides the derived default).
    pub control_socket: Option<PathBuf>,
    /// A group whose members may use the control socket (besides root and the gateway's
    /// user); the socket is 0660 and owned by it. `None`: 0600.
    pub control_group: Option<String>,
    /// Path MTU toward peers; `None` = the MTU of the interface holding `local_address`.
    pub path_mtu: Option<u16>,
    /// TUN settings.
    pub tun: TunConfig,
    /// Threads of the data path: 1 runs both directions in the main loop; 2 moves the
    /// receive direction (UDP → decrypt → TUN) to its own thread. `None` = 2 on hosts with
    /// 4 or more cores, else 1.
    pub datapath_threads: Option<u8>,
    /// How long a data-path thread keeps polling without sleeping after it handled something
    /// (see `wait.rs`); zero (the default) turns busy polling off.
    pub busy_poll: Duration,
    /// Whether quiet data-path threads are kept on one CPU (see `placement.rs`).
    pub cpu_placement: CpuPlacement,
    /// The BGP speaker, when any connection has a BGP peer.
    pub bgp: Option<BgpConfig>,
    /// The VNet's router, to be told the gateway's routes.
    pub vnet_router: Option<VnetRouter>,
    /// The connections, in file order.
    pub connections: Vec<ConnectionSpec>,
    /// Things that work but an operator should fix (a key file others can read), for the
    /// log at start and `gateway check`.
    pub warnings: Vec<String>,
}

impl GatewayConfig {
    /// How the data-path threads wait (spin, CPU placement).
    pub fn wait_policy(&self) -> crate::wait::WaitPolicy {
        crate::wait::WaitPolicy {
            busy_poll: self.busy_poll,
            placement: self.cpu_placement,
        }
    }

    /// Reads and validates a config file; relative `psk_file` paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // the text may hold pre-shared keys: wiped when dropped
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
                    path: path.to_path_buf(),
                    cause,
                })?,
            );
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // The TOML tree is ~8 KB per connection, ten times the config it yields, and the
        // config's small allocations land between its nodes: freed, the tree leaves the
        // config pinning most of its pages (10,000 connections: ~50 MB of RSS for ~9 MB of
        // config). Parsed on a scratch thread (its own malloc arena) and copied here, the
        // config lies packed and the tree's arena empties as a whole.
        let parsed = std::thread::scope(|s| {
            s.spawn(|| Self::parse(&text, &base))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        Ok(parsed.clone())
    }

    /// Parses config text; `base_dir` resolves relative `psk_file` paths.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        let mut top = Fields::new(Place::Top, table);
        let local_address = top.ip("local_address")?.ok_or(ConfigError::Missing {
            place: Place::Top,
            key: "local_address",
        })?;
        let control_socket = top.string("control_socket")?.map(PathBuf::from);
        let control_group = top.string("control_group")?;
        let path_mtu = top.mtu("path_mtu")?;
        let datapath_threads = top.threads("datapath_threads")?;
        let busy_poll = top.busy_poll("busy_poll_us")?.unwrap_or(DEFAULT_BUSY_POLL);
        let cpu_placement = top.cpu_placement("cpu_placement")?.unwrap_or_default();
        let tun = match top.take("tun") {
            None => TunConfig {
                name: DEFAULT_TUN_NAME.into(),
                mtu: None,
            },
            Some(toml::Value::Table(t)) => {
                let mut f = Fields::new(Place::Tun, t);
                let name = f.string("name")?.unwrap_or_else(|| DEFAULT_TUN_NAME.into());
                if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
                    return Err(f.invalid(
                        "name",
                        &name,
                        "an interface name of 1 to 15 characters without '/' or spaces",
                    ));
                }
                let mtu = f.mtu("mtu")?;
                f.finish()?;
                TunConfig { name, mtu }
            }
            Some(_) => {
                return Err(ConfigError::WrongType {
                    place: Place::Top,
                    key: "tun".into(),
                    expected: "a table",
                })
            }
        };
        let bgp = match top.take("bgp") {
            None => None,
            Some(toml::Value::Table(t)) => Some(parse_bgp(t)?),
            Some(_) => {
                return Err(ConfigError::WrongType {
                    place: Place::Top,
                    key: "bgp".into(),
                    expected: "a table",
                })
            }
        };
        let vnet_router = match top.take("vnet_router") {
            None => None,
            Some(toml::Value::Table(t)) => Some(parse_vnet_router(t)?),
            Some(_) => {
                return Err(ConfigError::WrongType {
                    place: Place::Top,
                    key: "vnet_router".into(),
                    expected: "a table",
                })
            }
        };
        let raw_conns = match top.take("connection") {
            None => return Err(ConfigError::NoConnections),
            Some(toml::Value::Array(a)) => a,
            Some(_) => {
                return Err(ConfigError::WrongType {
                    place: Place::Top,
                    key: "connection".into(),
                    expected: "an array of tables ([[connection]])",
                })
            }
        };
        top.finish()?;
        if raw_conns.is_empty() {
            return Err(ConfigError::NoConnections);
        }
        let mut connections: Vec<ConnectionSpec> = Vec::with_capacity(raw_conns.len());
        let mut names = HashSet::with_capacity(raw_conns.len());
        let mut lists = ProposalLists::default();
        let mut warnings = Vec::new();
        for (index, v) in raw_conns.into_iter().enumerate() {
            let toml::Value::Table(t) = v else {
                return Err(ConfigError::WrongType {
                    place: Place::Connection { index, name: None },
                    key: "connection".into(),
                    expected: "a table",
                });
            };
            let c = parse_connection(
                index,
                t,
                local_address,
                base_dir,
                bgp.is_some(),
                &mut lists,
                &mut warnings,
            )?;
            if !names.insert(c.name.clone()) {
                return Err(ConfigError::DuplicateName {
                    place: Place::Connection {
                        index,
                        name: Some(c.name),
                    },
                });
            }
            connections.push(c);
        }
        Ok(GatewayConfig {
            local_address,
            control_socket,
            control_group,
            path_mtu,
            tun,
            datapath_threads,
            busy_poll,
            cpu_placement,
            bgp,
            vnet_router,
            connections,
            warnings,
        })
    }
}

/// The `[bgp]` table.
fn parse_bgp(t: toml::Table) -> Result<BgpConfig, ConfigError> {
    let mut f = Fields::new(Place::Bgp, t);
    let asn = f.count("asn")?.ok_or(ConfigError::Missing {
        place: Place::Bgp,
        key: "asn",
    })?;
    if asn == 0 {
        return Err(f.invalid("asn", "0", "AS 0 is reserved (RFC 7607)"));
    }
    let address = match f.ip("address")? {
        Some(IpAddr::V4(a)) => a,
        Some(IpAddr::V6(a)) => {
            return Err(f.invalid("address", &a.to_string(), "BGP runs over IPv4 here"))
        }
        None => {
            return Err(ConfigError::Missing {
                place: Place::Bgp,
                key: "address",
            })
        }
    };
    let originate = f
        .prefixes_or_none("originate")?
        .unwrap_or_default()
        .into_iter()
        .map(|p| match p {
            IpNet::V4(v) => Ok(v),
            IpNet::V6(v) => Err(f.invalid("originate", &v.to_string(), "IPv4 prefixes only")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hold_time = match f.count("hold_time")? {
        None => DEFAULT_BGP_HOLD_TIME,
        Some(h) if h == 0 || (3..=u32::from(u16::MAX)).contains(&h) => h as u16,
        Some(h) => {
            return Err(f.invalid(
                "hold_time",
                &h.to_string(),
                "0 (no keepalives) or 3 to 65535 seconds (RFC 4271 §4.2)",
            ))
        }
    };
    f.finish()?;
    Ok(BgpConfig {
        asn,
        address,
        originate,
        hold_time,
    })
}

/// The `[vnet_router]` table.
fn parse_vnet_router(t: toml::Table) -> Result<VnetRouter, ConfigError> {
    let mut r = Fields::new(Place::VnetRouter, t);
    let netns = r.string("netns")?.ok_or(ConfigError::Missing {
        place: Place::VnetRouter,
        key: "netns",
    })?;
    let next_hop = match r.ip("next_hop")? {
        Some(IpAddr::V4(a)) => a,
        Some(IpAddr::V6(a)) => {
            return Err(r.invalid("next_hop", &a.to_string(), "an IPv4 address"))
        }
        None => {
            return Err(ConfigError::Missing {
                place: Place::VnetRouter,
                key: "next_hop",
            })
        }
    };
    let metric = r.count("metric")?.unwrap_or(DEFAULT_VNET_ROUTE_METRIC);
    let static_routes = r.boolean("static_routes")?.unwrap_or(false);
    r.finish()?;
    Ok(VnetRouter {
        netns,
        next_hop,
        metric,
        static_routes,
    })
}

/// The distinct proposal lists of one config, each kept once and shared by every
/// connection that names it (and by the IKE layer's copy of the connection): 10,000
/// connections with one policy would otherwise hold 20,000 copies of ~0.3 KB.
#[derive(Default)]
struct ProposalLists(HashSet<Arc<[Proposal]>>);

impl ProposalLists {
    fn intern(&mut self, list: Vec<Proposal>) -> Arc<[Proposal]> {
        if let Some(known) = self.0.get(list.as_slice()) {
            return known.clone();
        }
        let list: Arc<[Proposal]> = list.into();
        self.0.insert(list.clone());
        list
    }
}

fn parse_connection(
    index: usize,
    t: toml::Table,
    local_address: IpAddr,
    base_dir: &Path,
    bgp: bool,
    lists: &mut ProposalLists,
    warnings: &mut Vec<String>,
) -> Result<ConnectionSpec, ConfigError> {
    let mut f = Fields::new(Place::Connection { index, name: None }, t);
    let name = f.string("name")?.ok_or(ConfigError::Missing {
        place: f.place.clone(),
        key: "name",
    })?;
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(f.invalid("name", &name, "must be non-empty printable text"));
    }
    f.place = Place::Connection {
        index,
        name: Some(name.clone()),
    };
    let remote_raw = f.string("remote_address")?.ok_or(ConfigError::Missing {
        place: f.place.clone(),
        key: "remote_address",
    })?;
    let remote_address = if remote_raw == "%any" {
        None
    } else {
        let a: IpAddr = remote_raw.parse().map_err(|_| {
            f.invalid(
                "remote_address",
                &remote_raw,
                "expected an IP address or \"%any\"",
            )
        })?;
        if a.is_ipv4() != local_address.is_ipv4() {
            return Err(f.invalid(
                "remote_address",
                &remote_raw,
                "address family differs from local_address",
            ));
        }
        Some(a)
    };
    let local_id = match f.string("local_id")? {
        Some(s) => parse_identity(&s).map_err(|r| f.invalid("local_id", &s, r))?,
        None => ip_identity(local_address),
    };
    let remote_id = match f.string("remote_id")? {
        Some(s) if s == "%any" => None,
        Some(s) => Some(parse_identity(&s).map_err(|r| f.invalid("remote_id", &s, r))?),
        None => remote_address.map(ip_identity),
    };
    let psk = match (f.string("psk")?.map(Zeroizing::new), f.string("psk_file")?) {
        (Some(p), None) => decode_psk(p.as_bytes()).map_err(|r| ConfigError::Invalid {
            place: f.place.clone(),
            key: "psk".into(),
            value: "<redacted>".into(),
            reason: r.into(),
        })?,
        (None, Some(file)) => {
            let path = base_dir.join(&file);
            if let Some(w) = key_file_exposed(&path) {
                warnings.push(format!("{}: key `psk_file`: {w}", f.place));
            }
            let bytes =
                Zeroizing::new(std::fs::read(&path).map_err(|cause| ConfigError::PskFile {
                    place: f.place.clone(),
                    path: path.clone(),
                    cause,
                })?);
            let mut end = bytes.len();
            while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            decode_psk(&bytes[..end]).map_err(|r| ConfigError::Invalid {
                place: f.place.clone(),
                key: "psk_file".into(),
                value: path.display().to_string(),
                reason: r.into(),
            })?
        }
        _ => {
            return Err(ConfigError::PskChoice {
                place: f.place.clone(),
            })
        }
    };
    let bgp_peer = match (f.ip("bgp_peer_address")?, f.count("bgp_peer_asn")?) {
        (None, None) => None,
        (Some(IpAddr::V4(address)), Some(asn)) if asn != 0 => {
            if !bgp {
                return Err(f.invalid(
                    "bgp_peer_address",
                    &address.to_string(),
                    "a BGP peer needs the gateway's [bgp] table (asn, address)",
                ));
            }
            Some(BgpPeer { address, asn })
        }
        (Some(IpAddr::V4(_)), Some(_)) => {
            return Err(f.invalid("bgp_peer_asn", "0", "AS 0 is reserved (RFC 7607)"))
        }
        (Some(IpAddr::V6(a)), _) => {
            return Err(f.invalid(
                "bgp_peer_address",
                &a.to_string(),
                "BGP runs over IPv4 here",
            ))
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                place: f.place.clone(),
                key: "bgp_peer_asn",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                place: f.place.clone(),
                key: "bgp_peer_address",
            })
        }
    };
    let local_prefixes = f.prefixes("local_prefixes")?;
    // with BGP the peer's prefixes may all come from the peer
    let remote_prefixes = if bgp_peer.is_some() {
        f.prefixes_or_none("remote_prefixes")?.unwrap_or_default()
    } else {
        f.prefixes("remote_prefixes")?
    };
    let ike_proposals = lists.intern(f.proposals("ike_proposals", DEFAULT_IKE_PROPOSALS, false)?);
    let esp_proposals = lists.intern(f.proposals("esp_proposals", DEFAULT_ESP_PROPOSALS, true)?);
    let ike_lifetime = f.duration("ike_lifetime")?.unwrap_or(DEFAULT_IKE_LIFETIME);
    let child_lifetime = f
        .duration("child_lifetime")?
        .unwrap_or(DEFAULT_CHILD_LIFETIME);
    let child_lifetime_bytes = f.byte_count("child_lifetime_bytes")?;
    let dpd_timeout = f.duration("dpd_timeout")?.unwrap_or(DEFAULT_DPD_TIMEOUT);
    let initiate = f.boolean("initiate")?.unwrap_or(remote_address.is_some());
    if initiate && remote_address.is_none() {
        return Err(f.invalid(
            "initiate",
            "true",
            "a connection with remote_address = \"%any\" can only respond",
        ));
    }
    let selector_pairs = f.boolean("selector_pairs")?.unwrap_or(false);
    let pairs = local_prefixes.len().saturating_mul(remote_prefixes.len());
    if selector_pairs && pairs > MAX_SELECTOR_PAIRS {
        return Err(f.invalid(
            "selector_pairs",
            "true",
            format!(
                "{pairs} prefix pairs ({} local x {} remote), each a Child SA of its own; at most {MAX_SELECTOR_PAIRS}",
                local_prefixes.len(),
                remote_prefixes.len()
            ),
        ));
    }
    let defaults = Recovery::default();
    let recovery = Recovery {
        close_action: f.action("close_action")?.unwrap_or(defaults.close_action),
        dpd_action: f.action("dpd_action")?.unwrap_or(defaults.dpd_action),
        keyingtries: f.count("keyingtries")?.unwrap_or(defaults.keyingtries),
        retry_max: f.duration("retry_max")?.unwrap_or(defaults.retry_max),
    };
    f.finish()?;
    Ok(ConnectionSpec {
        name,
        remote_address,
        local_id,
        remote_id,
        psk,
        local_prefixes,
        remote_prefixes,
        ike_proposals,
        esp_proposals,
        ike_lifetime,
        child_lifetime,
        child_lifetime_bytes,
        dpd_timeout,
        initiate,
        recovery,
        selector_pairs,
        bgp_peer,
    })
}

/// Why a key file is too open (readable or writable by group or others), as ssh says of
/// private keys; `None` when only its owner can read it.
fn key_file_exposed(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(path).ok()?.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is accessible by others (mode {mode:04o}); the pre-shared key should be readable by its owner only (chmod 600)",
            path.display()
        )
    })
}

impl ConnectionSpec {
    /// The IKE layer's view of this connection.
    pub fn to_ike(&self, local_address: IpAddr) -> ConnectionConfig {
        let unspecified = match local_address {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        ConnectionConfig {
            name: self.name.clone(),
            local_addr: local_address,
            remote_addr: self.remote_address.unwrap_or(unspecified),
            local_id: self.local_id.clone(),
            remote_id: self.remote_id.clone(),
            psk: Psk::new(self.psk.expose().to_vec()),
            local_ts: self.selectors(&self.local_prefixes, unspecified),
            remote_ts: self.selectors(&self.remote_prefixes, unspecified),
            ike_proposals: self.ike_proposals.clone(),
            esp_proposals: self.esp_proposals.clone(),
            ike_lifetime: self.ike_lifetime,
            child_lifetime: self.child_lifetime,
            dpd_timeout: self.dpd_timeout,
            initiate: self.initiate,
            recovery: self.recovery,
            selector_pairs: self.selector_pairs,
        }
    }
}

impl ConnectionSpec {
    /// Traffic selectors for `prefixes`: any-to-any on a BGP connection (what is routed into
    /// it decides), else the prefixes themselves.
    fn selectors(&self, prefixes: &[IpNet], unspecified: IpAddr) -> Vec<TrafficSelector> {
        if self.bgp_peer.is_some() {
            return vec![TrafficSelector::from_prefix(unspecified, 0)];
        }
        prefixes
            .iter()
            .map(|n| TrafficSelector::from_prefix(n.network(), n.prefix_len()))
            .collect()
    }
}

fn ip_identity(a: IpAddr) -> Identity {
    match a {
        IpAddr::V4(v) => Identity::Ipv4(v),
        IpAddr::V6(v) => Identity::Ipv6(v),
    }
}

/// An IKE identity: an IP address literal, otherwise an FQDN.
pub fn parse_identity(s: &str) -> Result<Identity, &'static str> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(ip_identity(a));
    }
    let fqdn = s.strip_prefix('@').unwrap_or(s);
    if fqdn.is_empty() || fqdn.len() > 253 {
        return Err("expected an IP address or an FQDN of 1 to 253 characters");
    }
    if !fqdn
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("an FQDN may only contain letters, digits, '.', '-' and '_'");
    }
    Ok(Identity::Fqdn(fqdn.to_string()))
}

/// PSK text as strongSwan reads it: `0x…` is hex, anything else is used byte for byte.
fn decode_psk(raw: &[u8]) -> Result<SecretBytes, &'static str> {
    if raw.is_empty() {
        return Err("the pre-shared key is empty");
    }
    if let Some(hex) = raw.strip_prefix(b"0x") {
        if hex.is_empty() || hex.len() % 2 != 0 {
            return Err("a 0x-prefixed key needs an even, non-zero number of hex digits");
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks(2) {
            let d = |c: u8| (c as char).to_digit(16);
            match (d(pair[0]), d(pair[1])) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err("a 0x-prefixed key must be hex digits only"),
            }
        }
        return Ok(SecretBytes::new(out));
    }
    Ok(SecretBytes::new(raw.to_vec()))
}

/// Parses a duration: plain seconds ("27000", as strongSwan and Azure write lifetimes) or
/// humantime's syntax ("45s", "8h", "1h 30m", "2days"); zero is refused (a lifetime or
/// timeout of nothing would spin).
pub fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str =
        "expected seconds or a duration with units (e.g. \"45s\", \"8h\", \"1h 30m\")";
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse().map_err(|_| EXPECTED)?)
    } else {
        humantime::parse_duration(s).map_err(|_| EXPECTED)?
    };
    if d.is_zero() {
        return Err("must be greater than zero");
    }
    Ok(d)
}

/// A table being consumed key by key, so leftovers can be reported as unknown keys.
struct Fields {
    place: Place,
    table: toml::Table,
}

impl Fields {
    fn new(place: Place, table: toml::Table) -> Self {
        Fields { place, table }
    }
    fn take(&mut self, key: &str) -> Option<toml::Value> {
        self.table.remove(key)
    }
    fn invalid(&self, key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            place: self.place.clone(),
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
    fn wrong(&self, key: &str, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            place: self.place.clone(),
            key: key.into(),
            expected,
        }
    }
    fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }
    fn boolean(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }
    fn ip(&mut self, key: &str) -> Result<Option<IpAddr>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, &s, "expected an IPv4 or IPv6 address")),
        }
    }
    fn mtu(&mut self, key: &str) -> Result<Option<u16>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (576..=65_535).contains(&n) => Ok(Some(n as u16)),
            Some(toml::Value::Integer(n)) => {
                Err(self.invalid(key, &n.to_string(), "an MTU must be between 576 and 65535"))
            }
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }
    fn busy_poll(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (0..=10_000).contains(&n) => {
                Ok(Some(Duration::from_micros(n as u64)))
            }
            Some(toml::Value::Integer(n)) => {
                Err(self.invalid(key, &n.to_string(), "microseconds from 0 (off) to 10000"))
            }
            Some(_) => Err(self.wrong(key, "an integer (microseconds)")),
        }
    }
    fn cpu_placement(&mut self, key: &str) -> Result<Option<CpuPlacement>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => match s.as_str() {
                "adaptive" => Ok(Some(CpuPlacement::Adaptive)),
                "kernel" => Ok(Some(CpuPlacement::Kernel)),
                _ => Err(self.invalid(
                    key,
                    &s,
                    "\"adaptive\" (one CPU while quiet, all while busy) or \"kernel\" (the scheduler alone)",
                )),
            },
        }
    }
    fn threads(&mut self, key: &str) -> Result<Option<u8>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (1..=2).contains(&n) => Ok(Some(n as u8)),
            Some(toml::Value::Integer(n)) => Err(self.invalid(
                key,
                &n.to_string(),
                "1 (one loop for both directions) or 2 (a receive thread besides it)",
            )),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }
    fn action(&mut self, key: &str) -> Result<Option<DownAction>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => match s.as_str() {
                "restart" | "start" => Ok(Some(DownAction::Restart)),
                "clear" | "none" => Ok(Some(DownAction::Clear)),
                _ => Err(self.invalid(
                    key,
                    &s,
                    "\"restart\" (negotiate again, with back-off) or \"clear\" (stay down)",
                )),
            },
        }
    }
    fn count(&mut self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (0..=i64::from(u32::MAX)).contains(&n) => {
                Ok(Some(n as u32))
            }
            Some(toml::Value::Integer(n)) => {
                Err(self.invalid(key, &n.to_string(), "0 (forever) or a positive count"))
            }
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }
    fn byte_count(&mut self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if n >= 1024 => Ok(Some(n as u64)),
            Some(toml::Value::Integer(n)) => {
                Err(self.invalid(key, &n.to_string(), "at least 1024 bytes"))
            }
            Some(_) => Err(self.wrong(key, "a number of bytes (integer)")),
        }
    }
    fn duration(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if n > 0 => Ok(Some(Duration::from_secs(n as u64))),
            Some(toml::Value::Integer(n)) => {
                Err(self.invalid(key, &n.to_string(), "must be greater than zero"))
            }
            Some(toml::Value::String(s)) => parse_duration(&s)
                .map(Some)
                .map_err(|r| self.invalid(key, &s, r)),
            Some(_) => Err(self.wrong(key, "seconds (integer) or a string like \"45s\"")),
        }
    }
    fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            // strongSwan writes lists as one comma-separated string; accept that too
            Some(toml::Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(toml::Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.trim().to_string()),
                    _ => Err(self.wrong(key, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong(key, "an array of strings")),
        }
    }
    fn prefixes(&mut self, key: &'static str) -> Result<Vec<IpNet>, ConfigError> {
        let list = self.prefixes_or_none(key)?.ok_or(ConfigError::Missing {
            place: self.place.clone(),
            key,
        })?;
        if list.is_empty() {
            return Err(self.invalid(key, "[]", "at least one prefix is required"));
        }
        Ok(list)
    }
    fn prefixes_or_none(&mut self, key: &'static str) -> Result<Option<Vec<IpNet>>, ConfigError> {
        let Some(list) = self.string_list(key)? else {
            return Ok(None);
        };
        list.iter()
            .map(|s| {
                let net: IpNet = s
                    .parse()
                    .map_err(|_| self.invalid(key, s, "expected a prefix like 10.1.0.0/16"))?;
                if net.network() != net.addr() {
                    return Err(self.invalid(
                        key,
                        s,
                        format!("host bits are set; did you mean {}?", net.trunc()),
                    ));
                }
                Ok(net)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|mut v| {
                v.shrink_to_fit();
                Some(v)
            })
    }
    fn proposals(
        &mut self,
        key: &str,
        default: &[&str],
        esp: bool,
    ) -> Result<Vec<Proposal>, ConfigError> {
        let list = match self.string_list(key)? {
            Some(l) => l,
            None => default.iter().map(|s| s.to_string()).collect(),
        };
        if list.is_empty() {
            return Err(self.invalid(key, "[]", "at least one proposal is required"));
        }
        list.iter()
            .map(|s| {
                let p: Proposal = s
                    .parse()
                    .map_err(|e| self.invalid(key, s, format!("{e}")))?;
                let complete = if esp {
                    p.validate_esp()
                } else {
                    p.validate_ike()
                };
                complete.map_err(|e| self.invalid(key, s, e.to_string()))?;
                Ok(p)
            })
            .collect()
    }
    fn finish(self) -> Result<(), ConfigError> {
        match self.table.keys().next() {
            Some(k) => Err(ConfigError::UnknownKey {
                place: self.place,
                key: k.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Worst-case ESP-in-UDP overhead (bytes added to an inner packet) for one ESP proposal,
/// excluding the outer IP header: UDP 8 + SPI/seq 8 + IV + max padding + 2 + ICV.
pub fn esp_overhead(p: &Proposal) -> (usize, usize) {
    let mut worst = (0usize, 4usize);
    for e in &p.encryption {
        // ESP aligns the encrypted part to 4 bytes at least (RFC 4303 §2.4)
        let (iv, block) = (e.iv_len(), e.block_len().max(4));
        let icvs: Vec<usize> = if e.is_aead() {
            vec![16]
        } else {
            p.integrity.iter().map(|i| i.icv_len()).collect()
        };
        for icv in icvs {
            let fixed = 8 + 8 + iv + 2 + icv;
            if fixed > worst.0 || (fixed == worst.0 && block > worst.1) {
                worst = (fixed, worst.1.max(block));
            }
            worst.1 = worst.1.max(block);
        }
    }
    worst
}

/// The largest inner packet that fits `path_mtu` after ESP-in-UDP encapsulation with every
/// one of `proposals`: path MTU − outer IP − fixed overhead, rounded down so that inner + 2
/// (pad length, next header) is a multiple of the cipher's block size.
pub fn tunnel_mtu(path_mtu: u16, outer_ipv6: bool, proposals: &[&Proposal]) -> u16 {
    let outer_ip = if outer_ipv6 { 40 } else { 20 };
    let mut best = u16::MAX as usize;
    for p in proposals {
        let (fixed, block) = esp_overhead(p);
        let room = (path_mtu as usize).saturating_sub(outer_ip + fixed - 2);
        let inner = (room / block) * block;
        best = best.min(inner.saturating_sub(2));
    }
    if best == u16::MAX as usize {
        best = (path_mtu as usize).saturating_sub(outer_ip + 8 + 8 + 16 + 2 + 24 + 15);
    }
    best.max(576) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
local_address = "198.51.100.1"
[tun]
name = "hn-test0"
[[connection]]
name = "to-b"
remote_address = "198.51.100.2"
local_id = "gw-a.example"
remote_id = "gw-b.example"
psk = "s3cret-psk-value"
local_prefixes = ["10.1.0.0/16"]
remote_prefixes = "10.2.0.0/16, 10.3.0.0/24"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16-ecp384"]
ike_lifetime = "8h"
child_lifetime = 3600
dpd_timeout = "45s"
initiate = true
[[connection]]
name = "any"
remote_address = "%any"
psk = "0x00ff10"
local_prefixes = ["10.1.0.0/16"]
remote_prefixes = ["10.9.0.0/16"]
"#;

    #[test]
    fn parses_full_example() {
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        assert_eq!(c.tun.name, "hn-test0");
        assert_eq!(c.connections.len(), 2);
        let a = &c.connections[0];
        assert_eq!(a.remote_prefixes.len(), 2);
        assert_eq!(a.ike_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(a.child_lifetime, Duration::from_secs(3600));
        assert!(matches!(a.remote_id, Some(Identity::Fqdn(ref s)) if s == "gw-b.example"));
        let b = &c.connections[1];
        assert!(b.remote_address.is_none() && b.remote_id.is_none() && !b.initiate);
        assert_eq!(b.psk.expose(), &[0x00, 0xff, 0x10]);
        assert_eq!(b.esp_proposals.len(), DEFAULT_ESP_PROPOSALS.len());
    }

    #[test]
    fn debug_never_shows_psk() {
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    fn err(text: &str) -> String {
        GatewayConfig::parse(text, Path::new("/"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_key_and_connection() {
        let e = err(&GOOD.replace("initiate = true", "initiat = true"));
        assert!(e.contains("\"to-b\"") && e.contains("`initiat`"), "{e}");
        let e = err(&GOOD.replace("\"10.2.0.0/16, 10.3.0.0/24\"", "\"10.2.0.1/16\""));
        assert!(
            e.contains("remote_prefixes") && e.contains("10.2.0.0/16") && e.contains("to-b"),
            "{e}"
        );
        let e = err(&GOOD.replace("aes256gcm16-prfsha384-ecp384", "aes999-foo"));
        assert!(
            e.contains("ike_proposals") && e.contains("aes999-foo"),
            "{e}"
        );
        let e = err(&GOOD.replace("dpd_timeout = \"45s\"", "dpd_timeout = \"45 parsecs\""));
        assert!(e.contains("dpd_timeout"), "{e}");
        let e = err(&GOOD.replace("psk = \"s3cret-psk-value\"", ""));
        assert!(e.contains("psk") && e.contains("to-b"), "{e}");
        let e = err(&GOOD.replace("name = \"any\"", "name = \"to-b\""));
        assert!(e.contains("duplicate"), "{e}");
        let e = err(&GOOD.replace("local_address = \"198.51.100.1\"", ""));
        assert!(e.contains("local_address"), "{e}");
        let e = err(&GOOD.replace(
            "remote_address = \"%any\"",
            "remote_address = \"%any\"\ninitiate = true",
        ));
        assert!(e.contains("initiate") && e.contains("\"any\""), "{e}");
        let e = err(&GOOD.replace("psk = \"0x00ff10\"", "psk = \"0xzz\""));
        assert!(e.contains("psk") && !e.contains("0xzz"), "{e}");
        let e = err(&GOOD.replace("name = \"hn-test0\"", "name = \"a-name-that-is-too-long\""));
        assert!(e.contains("[tun]") && e.contains("name"), "{e}");
    }

    #[test]
    fn psk_file_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("hn-gw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("psk"), "from-file\n").unwrap();
        let text = GOOD.replace("psk = \"s3cret-psk-value\"", "psk_file = \"psk\"");
        let c = GatewayConfig::parse(&text, &dir).unwrap();
        assert_eq!(c.connections[0].psk.expose(), b"from-file");
        let e = GatewayConfig::parse(&text.replace("\"psk\"", "\"missing\""), &dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("psk_file") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A key file others can read works but is warned about (as ssh does for keys); the
    /// warning names the file and never the key.
    #[test]
    fn a_psk_file_others_can_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hn-gw-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("psk");
        std::fs::write(&key, "the-secret-key\n").unwrap();
        let text = GOOD.replace("psk = \"s3cret-psk-value\"", "psk_file = \"psk\"");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = GatewayConfig::parse(&text, &dir).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.contains("psk_file") && w.contains("0644") && w.contains("chmod 600"),
            "{w}"
        );
        assert!(!w.contains("the-secret-key"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(GatewayConfig::parse(&text, &dir)
            .unwrap()
            .warnings
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_keys() {
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        assert_eq!(c.connections[0].recovery, Recovery::default());
        let extra = "close_action = \"clear\"\ndpd_action = \"none\"\nkeyingtries = 3\nretry_max = \"5s\"\n";
        let text = GOOD.replacen("[[connection]]", &format!("[[connection]]\n{extra}"), 1);
        let r = GatewayConfig::parse(&text, Path::new("/"))
            .unwrap()
            .connections[0]
            .recovery;
        assert_eq!(r.close_action, DownAction::Clear);
        assert_eq!(r.dpd_action, DownAction::Clear);
        assert_eq!((r.keyingtries, r.retry_max), (3, Duration::from_secs(5)));
        let e = err(&GOOD.replacen(
            "[[connection]]",
            "[[connection]]\nclose_action = \"sometimes\"",
            1,
        ));
        assert!(e.contains("close_action") && e.contains("restart"), "{e}");
        let e = err(&GOOD.replacen("[[connection]]", "[[connection]]\nkeyingtries = -1", 1));
        assert!(e.contains("keyingtries"), "{e}");
    }

    /// `selector_pairs` (Azure's usePolicyBasedTrafficSelectors) reaches the IKE layer; off
    /// by default; a value that is not a boolean, or more pairs than allowed, is refused.
    #[test]
    fn selector_pairs_key() {
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        assert!(!c.connections[0].selector_pairs);
        assert!(!c.connections[0].to_ike(c.local_address).selector_pairs);
        let text = GOOD.replacen("[[connection]]", "[[connection]]\nselector_pairs = true", 1);
        let c = GatewayConfig::parse(&text, Path::new("/")).unwrap();
        assert!(c.connections[0].selector_pairs && !c.connections[1].selector_pairs);
        let ike = c.connections[0].to_ike(c.local_address);
        assert!(ike.selector_pairs);
        assert_eq!(
            ike.ts_pairs().len(),
            2,
            "10.1.0.0/16 x (10.2.0.0/16, 10.3.0.0/24)"
        );
        let e = err(&GOOD.replacen(
            "[[connection]]",
            "[[connection]]\nselector_pairs = \"yes\"",
            1,
        ));
        assert!(
            e.contains("`selector_pairs`") && e.contains("true or false") && e.contains("to-b"),
            "{e}"
        );
        let many: Vec<String> = (0..17).map(|k| format!("\"10.{k}.0.0/16\"")).collect();
        let wide = GOOD.replace(
            "local_prefixes = [\"10.1.0.0/16\"]\nremote_prefixes = \"10.2.0.0/16, 10.3.0.0/24\"",
            &format!(
                "local_prefixes = [{0}]\nremote_prefixes = [{0}]\nselector_pairs = true",
                many.join(", ")
            ),
        );
        assert_ne!(wide, GOOD);
        let e = err(&wide);
        assert!(
            e.contains("`selector_pairs`")
                && e.contains("289 prefix pairs")
                && e.contains("at most 256"),
            "{e}"
        );
    }

    #[test]
    fn data_path_threads_and_busy_poll() {
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        assert_eq!((c.datapath_threads, c.busy_poll), (None, DEFAULT_BUSY_POLL));
        let top = |extra: &str| GOOD.replacen("[tun]", &format!("{extra}\n[tun]"), 1);
        let c = GatewayConfig::parse(
            &top("datapath_threads = 2\nbusy_poll_us = 0"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!((c.datapath_threads, c.busy_poll), (Some(2), Duration::ZERO));
        let e = err(&top("datapath_threads = 3"));
        assert!(
            e.contains("`datapath_threads`") && e.contains("1 (one loop"),
            "{e}"
        );
        let e = err(&top("busy_poll_us = 20000"));
        assert!(e.contains("`busy_poll_us`") && e.contains("10000"), "{e}");
        let e = err(&top("busy_poll_us = \"fast\""));
        assert!(
            e.contains("`busy_poll_us`") && e.contains("microseconds"),
            "{e}"
        );
    }

    #[test]
    fn cpu_placement_is_adaptive_unless_left_to_the_kernel() {
        let top = |extra: &str| GOOD.replacen("[tun]", &format!("{extra}\n[tun]"), 1);
        let c = GatewayConfig::parse(GOOD, Path::new("/")).unwrap();
        assert_eq!(c.cpu_placement, CpuPlacement::Adaptive);
        for (v, want) in [
            ("adaptive", CpuPlacement::Adaptive),
            ("kernel", CpuPlacement::Kernel),
        ] {
            let c = GatewayConfig::parse(&top(&format!("cpu_placement = \"{v}\"")), Path::new("/"))
                .unwrap();
            assert_eq!(c.cpu_placement, want);
        }
        let e = err(&top("cpu_placement = \"pinned\""));
        assert!(
            e.contains("`cpu_placement`") && e.contains("\"kernel\""),
            "{e}"
        );
        let e = err(&top("cpu_placement = 1"));
        assert!(e.contains("`cpu_placement`"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn mtu_per_cipher() {
        let gcm: Proposal = "aes256gcm16".parse().unwrap();
        let cbc1: Proposal = "aes128-sha1".parse().unwrap();
        let cbc384: Proposal = "aes256-sha384".parse().unwrap();
        // 1500 - 20 IP - 8 UDP - 8 ESP hdr - 8 IV - 16 ICV = 1440 bytes for inner + 2 trailer
        assert_eq!(tunnel_mtu(1500, false, &[&gcm]), 1438);
        // 1500 - 20 - 8 - 8 - 16 IV - 12 ICV = 1436 → 1424 (multiple of 16) - 2
        assert_eq!(tunnel_mtu(1500, false, &[&cbc1]), 1422);
        // 1500 - 20 - 8 - 8 - 16 - 24 = 1424 → 1424 - 2
        assert_eq!(tunnel_mtu(1500, false, &[&cbc384]), 1422);
        assert_eq!(tunnel_mtu(1500, false, &[&gcm, &cbc1]), 1422);
        assert_eq!(tunnel_mtu(1500, true, &[&gcm]), 1418);
    }
}
