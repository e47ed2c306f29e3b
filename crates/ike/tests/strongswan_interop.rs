//! The endpoint against a real strongSwan (charon with kernel-libipsec) in network namespaces
//! created here: both roles, several algorithm families, wrong PSK, proposal mismatch, and
//! strongSwan-driven rekeys. Our side runs on a thread moved into its own namespace with
//! setns(2). Every namespace and the charon process are removed by a Drop guard.

use std::fs;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use ike::{ChildSaKeys, ConnectionConfig, DownReason, Endpoint, Event, Identity};
use testkit::netns::{unique_id, veth, Netns};
use testkit::process::Scratch;
use testkit::swan::{Charon, ChildSa, IkeSa, SwanConn, SwanTimers, CHARON};

mod common;
use common::{capture, Conn};

const OURS: &str = "192.0.2.1";
const THEIRS: &str = "192.0.2.2";

/// Two namespaces joined by a veth, charon running in the second (with a LAN inside its
/// local_ts, where it installs its route). Everything is removed on drop: charon first, then
/// the namespaces, then the scratch directory (kept when the test failed).
struct Lab {
    charon: Charon,
    conn: SwanConn,
    ns_a: Netns,
    ns_b: Netns,
    scratch: Scratch,
}

struct Swan<'a> {
    ike: &'a str,
    esp: &'a str,
    psk: &'a str,
    initiate: bool,
    rekey_ike: &'a str,
    rekey_child: &'a str,
}

impl Swan<'_> {
    /// strongSwan's side: gw-b.lab.example with 10.2.0.0/16 behind it; fixed hard lifetimes
    /// (60 s past a rekey), no random jitter, no DPD of its own.
    fn conn(&self) -> SwanConn {
        SwanConn {
            local_addr: THEIRS.into(),
            remote_addr: OURS.into(),
            local_id: "gw-b.lab.example".into(),
            remote_id: "gw-a.lab.example".into(),
            local_ts: "10.2.0.0/16".into(),
            remote_ts: "10.1.0.0/16".into(),
            ike_proposals: self.ike.into(),
            esp_proposals: self.esp.into(),
            psk: self.psk.into(),
            start_action: if self.initiate { "start" } else { "none" }.into(),
            timers: SwanTimers {
                ike_rekey: Some(self.rekey_ike.into()),
                ike_over: Some("60s".into()),
                child_rekey: Some(self.rekey_child.into()),
                child_life: Some("60s".into()),
                dpd_delay: Some("0s".into()),
                close_action: None,
            },
            more_children: vec![],
        }
    }
}

impl Lab {
    fn new(sw: &Swan) -> Lab {
        let id = unique_id();
        let ns_a = Netns::new(&format!("ikt{id}a")).expect("namespace");
        let ns_b = Netns::new(&format!("ikt{id}b")).expect("namespace");
        veth(&ns_a, "wan0", &ns_b, "wan0").expect("veth");
        ns_a.addr("wan0", &format!("{OURS}/24")).unwrap();
        ns_b.addr("wan0", &format!("{THEIRS}/24")).unwrap();
        // charon installs its route via an address inside its local_ts.
        ns_b.exec(
            "ip",
            &["link", "add", "in0", "type", "veth", "peer", "name", "in1"],
        )
        .unwrap();
        ns_b.addr("in0", "10.2.1.1/24").unwrap();
        ns_b.exec("ip", &["link", "set", "in1", "up"]).unwrap();
        let scratch = Scratch::new("ike-interop", &id).expect("scratch dir");
        let charon = Charon::start(&ns_b, &scratch.join("swan")).expect("charon");
        Lab {
            charon,
            conn: sw.conn(),
            ns_a,
            ns_b,
            scratch,
        }
    }

    /// Loads strongSwan's connection (with `start_action = start` it initiates at once).
    fn load(&self) {
        self.charon.load(&self.conn).expect("swanctl --load-all");
    }

    /// Kills charon without a word (SIGKILL) and starts a fresh one (nothing loaded).
    fn restart_charon(&mut self) {
        self.charon.stop(libc::SIGKILL);
        self.charon = Charon::start(&self.ns_b, &self.scratch.join("swan")).expect("charon");
    }

    /// The namespace our endpoint runs in, by name (for a thread to enter).
    fn ours(&self) -> String {
        self.ns_a.name().to_string()
    }
}

/// Our side: gw-a.lab.example at OURS with 10.1.0.0/16 behind it, expecting gw-b.lab.example.
fn cfg(initiate: bool, ike: &str, esp: &str, psk: &str) -> ConnectionConfig {
    Conn::new(OURS.parse().unwrap(), THEIRS.parse().unwrap())
        .name("interop")
        .local_id("gw-a.lab.example".parse().unwrap())
        .remote_id(Identity::Fqdn("gw-b.lab.example".into()))
        .psk(psk)
        .ike(ike)
        .esp(esp)
        .dpd(Duration::from_secs(30))
        .initiate(initiate)
        .build()
}

struct Outcome {
    events: Vec<Event>,
    dropped: u64,
    status: ike::ConnectionStatus,
}

/// Runs our endpoint inside `ns` for `secs` (or until `done` says so).
fn run_ours(ns: &str, cfg: ConnectionConfig, secs: u64, done: fn(&[Event]) -> bool) -> Outcome {
    run_ours_with(ns, cfg, secs, done, None).0
}

/// [`run_ours`] with randomness from `seed` (when given), recording every datagram our
/// endpoint received or sent.
fn run_ours_with(
    ns: &str,
    cfg: ConnectionConfig,
    secs: u64,
    done: fn(&[Event]) -> bool,
    seed: Option<&'static [u8]>,
) -> (Outcome, Vec<capture::Record>) {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        testkit::netns::enter(&ns).expect("setns");
        let local: IpAddr = OURS.parse().unwrap();
        let s500 = UdpSocket::bind(SocketAddr::new(local, 500)).unwrap();
        let s4500 = UdpSocket::bind(SocketAddr::new(local, 4500)).unwrap();
        s500.set_nonblocking(true).unwrap();
        s4500.set_nonblocking(true).unwrap();
        let mut ep = match seed {
            Some(seed) => Endpoint::with_random(Box::new(ike::rng::SeededRandom::new(seed))),
            None => Endpoint::new(),
        };
        let start = Instant::now();
        let ms = |t: Instant| t.saturating_duration_since(start).as_millis() as u64;
        let mut records = vec![];
        ep.add_connection(cfg, start);
        let mut events = vec![];
        let mut buf = vec![0u8; 65536];
        let mut now = start;
        loop {
            while let Some(t) = ep.poll_transmit() {
                let s = if t.local_port == 500 { &s500 } else { &s4500 };
                s.send_to(&t.payload, t.remote).unwrap();
                records.push(capture::Record {
                    out: true,
                    at_ms: ms(now),
                    local_port: t.local_port,
                    peer: t.remote,
                    bytes: t.payload,
                });
            }
            events.extend(std::iter::from_fn(|| ep.poll_event()));
            if start.elapsed() >= Duration::from_secs(secs) || done(&events) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            now = Instant::now();
            for (s, port) in [(&s500, 500u16), (&s4500, 4500u16)] {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    if port == 4500 && buf[..4] != [0, 0, 0, 0] {
                        continue; // ESP: not ours
                    }
                    records.push(capture::Record {
                        out: false,
                        at_ms: ms(now),
                        local_port: port,
                        peer: from,
                        bytes: buf[..n].to_vec(),
                    });
                    let _ = ep.handle_datagram(now, SocketAddr::new(local, port), from, &buf[..n]);
                }
            }
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        (
            Outcome {
                events,
                dropped: ep.dropped(),
                status: ep.status().remove(0),
            },
            records,
        )
    })
    .join()
    .expect("our endpoint thread")
}

fn installed(ev: &[Event]) -> Vec<ChildSaKeys> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaInstalled { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

fn downs(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ConnectionDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Negotiations strongSwan started that we refused before anything was authenticated.
fn attempts(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::AttemptFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn have_charon() -> bool {
    // SAFETY: geteuid never fails.
    let ok = std::path::Path::new(CHARON).exists() && unsafe { libc::geteuid() } == 0;
    if !ok {
        eprintln!("strongSwan interop needs root and {CHARON} (scripts/install-deps.sh); not run");
    }
    ok
}

/// charon's IKE SAs over VICI, and the same as `swanctl --list-sas` prints them (for messages).
fn swan_sas(charon: &Charon) -> (Vec<IkeSa>, String) {
    (
        charon.sas().expect("strongSwan's SAs over VICI"),
        charon.sas_text(),
    )
}

/// strongSwan's IKE SA whose initiator SPI is `spi_i`.
fn swan_ike(sas: &[IkeSa], spi_i: u64) -> Option<&IkeSa> {
    let spi_i = format!("{spi_i:016x}");
    sas.iter().find(|s| s.initiator_spi == spi_i)
}

/// strongSwan's Child SA (in any IKE SA) whose inbound SPI is our outbound `spi_out`.
fn swan_child(sas: &[IkeSa], spi_out: u32) -> Option<&ChildSa> {
    let spi = format!("{spi_out:08x}");
    sas.iter()
        .flat_map(|s| &s.children)
        .find(|c| c.spi_in == spi)
}

/// Establishes with strongSwan in the given role and checks charon's SAs (VICI) agree.
fn establish(we_initiate: bool, ike: &str, esp: &str, swan_ike_alg: &str, swan_esp_alg: &str) {
    let sw = Swan {
        ike,
        esp,
        psk: "interop-secret",
        initiate: !we_initiate,
        rekey_ike: "4h",
        rekey_child: "1h",
    };
    let lab = Lab::new(&sw);
    if we_initiate {
        lab.load();
    }
    let ns = lab.ours();
    let handle = {
        let c = cfg(we_initiate, ike, esp, "interop-secret");
        std::thread::spawn(move || run_ours(&ns, c, 4, |_| false))
    };
    if !we_initiate {
        std::thread::sleep(Duration::from_millis(300));
        lab.load();
    }
    std::thread::sleep(Duration::from_secs(3));
    let (sas, text) = swan_sas(&lab.charon);
    let out = handle.join().unwrap();
    let kids = installed(&out.events);
    assert_eq!(kids.len(), 1, "events: {:?}\nswanctl: {text}", out.events);
    assert!(downs(&out.events).is_empty(), "{:?}", out.events);
    assert_eq!(out.dropped, 0);
    let k = &kids[0];
    let ike = swan_ike(&sas, out.status.ike_spi_i)
        .unwrap_or_else(|| panic!("no IKE SA {:016x}_i:\n{text}", out.status.ike_spi_i));
    assert_eq!(
        ike.responder_spi,
        format!("{:016x}", out.status.ike_spi_r),
        "{text}"
    );
    let child = swan_child(&sas, k.spi_out).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(child.spi_out, format!("{:08x}", k.spi_in), "{text}");
    assert_eq!(
        (child.state.as_str(), child.mode_text().as_str()),
        ("INSTALLED", "TUNNEL-in-UDP"),
        "{text}"
    );
    assert_eq!(ike.algorithms(), swan_ike_alg, "{text}");
    assert_eq!(child.algorithms(), swan_esp_alg, "{text}");
    assert_eq!(k.peer, SocketAddr::new(THEIRS.parse().unwrap(), 4500));
}

#[test]
fn azure_stack_hub_policy_both_roles() {
    if !have_charon() {
        return;
    }
    // Azure Stack Hub's fixed policy: IKE AES256/SHA384/ECP384, ESP GCMAES256 with PFS ECP384.
    let ike_alg = "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384";
    establish(
        true,
        "aes256-sha384-ecp384",
        "aes256gcm16-ecp384",
        ike_alg,
        "AES_GCM_16-256",
    );
    establish(
        false,
        "aes256-sha384-ecp384",
        "aes256gcm16-ecp384",
        ike_alg,
        "AES_GCM_16-256",
    );
}

#[test]
fn gcm_ike_ecp384_we_initiate() {
    if !have_charon() {
        return;
    }
    establish(
        true,
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_GCM_16-256",
    );
}

#[test]
fn cbc_modp2048_strongswan_initiates() {
    if !have_charon() {
        return;
    }
    establish(
        false,
        "aes256-sha256-modp2048",
        "aes256-sha256",
        "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "AES_CBC-256/HMAC_SHA2_256_128",
    );
}

#[test]
fn curve25519_and_sha1_modp1024() {
    if !have_charon() {
        return;
    }
    establish(
        true,
        "aes128gcm16-prfsha256-curve25519",
        "aes128gcm16",
        "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
        "AES_GCM_16-128",
    );
    establish(
        false,
        "aes128-sha1-modp1024",
        "aes128-sha1",
        "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_CBC-128/HMAC_SHA1_96",
    );
}

#[test]
fn wrong_psk_is_authentication_failed() {
    if !have_charon() {
        return;
    }
    let sw = Swan {
        ike: "aes256gcm16-prfsha384-ecp384",
        esp: "aes256gcm16",
        psk: "their-secret",
        initiate: false,
        rekey_ike: "4h",
        rekey_child: "1h",
    };
    let lab = Lab::new(&sw);
    lab.load();
    let out = run_ours(
        &lab.ours(),
        cfg(true, sw.ike, sw.esp, "our-secret"),
        5,
        |ev| !downs(ev).is_empty(),
    );
    assert_eq!(
        downs(&out.events),
        vec![DownReason::AuthenticationFailed(
            ike::AuthFailure::RejectedByPeer
        )]
    );
    assert!(out
        .status
        .last_error
        .unwrap()
        .starts_with("AUTHENTICATION_FAILED"));
}

#[test]
fn proposal_mismatch_lists_both_sides_when_we_respond() {
    if !have_charon() {
        return;
    }
    let sw = Swan {
        ike: "aes128-sha1-modp1024",
        esp: "aes128-sha1",
        psk: "s",
        initiate: true,
        rekey_ike: "4h",
        rekey_child: "1h",
    };
    let lab = Lab::new(&sw);
    let ns = lab.ours();
    let h = std::thread::spawn(move || {
        run_ours(
            &ns,
            cfg(false, "aes256gcm16-prfsha384-ecp384", "aes256gcm16", "s"),
            4,
            |ev| !attempts(ev).is_empty(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    lab.load();
    let out = h.join().unwrap();
    // strongSwan's IKE_SA_INIT is unauthenticated: refused and counted, nothing went down
    assert!(downs(&out.events).is_empty(), "{:?}", out.events);
    assert_eq!(out.status.failed_attempts, 1);
    let d = attempts(&out.events);
    assert_eq!(
        d,
        vec![DownReason::NoProposalChosen {
            ours: vec!["IKE:aes256gcm16-prfsha384-ecp384".into()],
            theirs: vec!["IKE:aes128-sha1-modp1024".into()]
        }]
    );
    let text = out.status.last_error.unwrap();
    assert!(
        text.contains("aes256gcm16-prfsha384-ecp384") && text.contains("aes128-sha1-modp1024"),
        "{text}"
    );
}

#[test]
fn strongswan_rekeys_child_with_pfs_and_ike_sa() {
    if !have_charon() {
        return;
    }
    let sw = Swan {
        ike: "aes256gcm16-prfsha384-ecp384",
        esp: "aes256gcm16-ecp384",
        psk: "s",
        initiate: true,
        rekey_ike: "8s",
        rekey_child: "3s",
    };
    let lab = Lab::new(&sw);
    let ns = lab.ours();
    let h = std::thread::spawn(move || {
        run_ours(
            &ns,
            cfg(
                false,
                "aes256gcm16-prfsha384-ecp384",
                "aes256gcm16-ecp384",
                "s",
            ),
            14,
            |_| false,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    lab.load();
    std::thread::sleep(Duration::from_secs(13));
    let (sas, text) = swan_sas(&lab.charon);
    let out = h.join().unwrap();
    let kids = installed(&out.events);
    assert!(
        kids.len() >= 3,
        "{} Child SAs: {:?}",
        kids.len(),
        out.events
    );
    assert!(
        kids[1..]
            .iter()
            .all(|k| k.dh_group == Some(ike::DhGroup::Ecp384)),
        "rekeys use PFS"
    );
    assert!(downs(&out.events).is_empty(), "{:?}", out.events);
    assert_eq!(out.dropped, 0);
    assert!(
        swan_ike(&sas, out.status.ike_spi_i).is_some(),
        "IKE SA rekeyed in step: {text}\nours {:x}",
        out.status.ike_spi_i
    );
    let last = kids.last().unwrap();
    assert!(swan_child(&sas, last.spi_out).is_some(), "{text}");
}

#[test]
fn we_rekey_child_and_ike_sa_with_strongswan() {
    if !have_charon() {
        return;
    }
    let sw = Swan {
        ike: "aes256-sha384-ecp384",
        esp: "aes256-sha384-ecp384",
        psk: "s",
        initiate: false,
        rekey_ike: "4h",
        rekey_child: "1h",
    };
    let lab = Lab::new(&sw);
    lab.load();
    let mut c = cfg(true, sw.ike, sw.esp, "s");
    c.child_lifetime = Duration::from_secs(4);
    c.ike_lifetime = Duration::from_secs(9);
    let ns = lab.ours();
    let h = std::thread::spawn(move || run_ours(&ns, c, 14, |_| false));
    std::thread::sleep(Duration::from_secs(13));
    let (sas, text) = swan_sas(&lab.charon);
    let out = h.join().unwrap();
    let kids = installed(&out.events);
    assert!(
        kids.len() >= 3,
        "{} Child SAs: {:?}",
        kids.len(),
        out.events
    );
    assert!(downs(&out.events).is_empty(), "{:?}", out.events);
    assert_eq!(out.dropped, 0);
    assert!(kids[1..]
        .iter()
        .all(|k| k.dh_group == Some(ike::DhGroup::Ecp384)
            && k.integrity == Some(ike::Integrity::HmacSha384_192)));
    assert!(swan_ike(&sas, out.status.ike_spi_i).is_some(), "{text}");
    assert!(
        sas.iter().filter(|s| s.state == "ESTABLISHED").count() == 1,
        "old IKE SA deleted: {text}"
    );
    let last = kids.last().unwrap();
    assert_eq!(
        swan_child(&sas, last.spi_out)
            .map(|c| c.algorithms())
            .as_deref(),
        Some("AES_CBC-256/HMAC_SHA2_384_192/ECP_384"),
        "{text}"
    );
}

#[test]
fn dead_peer_detected_and_restarted_peer_replaces_stale_sas() {
    if !have_charon() {
        return;
    }
    let sw = Swan {
        ike: "aes128gcm16-prfsha256-curve25519",
        esp: "aes128gcm16",
        psk: "s",
        initiate: true,
        rekey_ike: "4h",
        rekey_child: "1h",
    };
    let mut lab = Lab::new(&sw);
    let ns = lab.ours();
    // We respond; strongSwan initiates, is restarted (INITIAL_CONTACT replaces our stale SAs),
    // and is finally killed without a DELETE (dead-peer detection ends the connection).
    let mut c = cfg(false, sw.ike, sw.esp, "s");
    c.remote_addr = "0.0.0.0".parse().unwrap();
    c.dpd_timeout = Duration::from_secs(6);
    let h = std::thread::spawn(move || run_ours(&ns, c, 20, |ev| !downs(ev).is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    lab.load();
    std::thread::sleep(Duration::from_secs(2));
    lab.restart_charon();
    lab.load();
    std::thread::sleep(Duration::from_secs(2));
    let (sas, text) = swan_sas(&lab.charon);
    lab.charon.stop(libc::SIGKILL);
    let out = h.join().unwrap();
    let kids = installed(&out.events);
    assert_eq!(kids.len(), 2, "{:?}", out.events);
    let deleted: Vec<u32> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted[0], kids[0].spi_in,
        "the stale Child SA goes first, on INITIAL_CONTACT"
    );
    assert!(swan_child(&sas, kids[1].spi_out).is_some(), "{text}");
    assert_eq!(downs(&out.events), vec![DownReason::DpdTimeout]);
    assert!(deleted.contains(&kids[1].spi_in));
}

/// Records the captures `replay_strongswan.rs` replays: our endpoint (randomness from
/// `capture::SEED`) against strongSwan, once in each role, up to the first Child SA. Rerun
/// after a deliberate change of what we send: `cargo test -p ike --test strongswan_interop
/// record_captures_for_replay -- --ignored`.
#[test]
#[ignore = "records tests/captures/*.txt for replay_strongswan.rs (needs root and charon)"]
fn record_captures_for_replay() {
    assert!(have_charon(), "recording needs root and charon");
    for we_initiate in [false, true] {
        let sw = Swan {
            ike: capture::IKE,
            esp: capture::ESP,
            psk: capture::PSK,
            initiate: !we_initiate,
            rekey_ike: "4h",
            rekey_child: "1h",
        };
        let lab = Lab::new(&sw);
        if we_initiate {
            lab.load();
        }
        let ns = lab.ours();
        let h = std::thread::spawn(move || {
            run_ours_with(
                &ns,
                capture::config(we_initiate),
                15,
                |ev| !installed(ev).is_empty(),
                Some(capture::SEED),
            )
        });
        if !we_initiate {
            std::thread::sleep(Duration::from_millis(300));
            lab.load();
        }
        let (out, records) = h.join().unwrap();
        let children: Vec<String> = installed(&out.events)
            .iter()
            .map(capture::child_fingerprint)
            .collect();
        assert_eq!(children.len(), 1, "{:?}", out.events);
        let role = if we_initiate {
            "we-initiate"
        } else {
            "strongswan-initiates"
        };
        let about = format!(
            "strongSwan {} ({}) and hybridnet's IKE endpoint, {role}: IKE {}, ESP {}.\nOur randomness came from capture::SEED; replayed by replay_strongswan.rs.",
            charon_version(),
            CHARON,
            capture::IKE,
            capture::ESP
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/captures/{role}.txt"));
        fs::write(&path, capture::write(&records, &children, &about)).unwrap();
        eprintln!("wrote {} ({} datagrams)", path.display(), records.len());
    }
}

/// The installed strongSwan's version, for the capture header.
fn charon_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "strongswan-charon"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
