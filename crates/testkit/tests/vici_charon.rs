//! The VICI queries against two real charons: one IKE SA with its Child SA between them,
//! checked field by field on both sides (names, states, addresses, SPIs that mirror each other,
//! algorithms, selectors, packet counters after a ping), and the loaded connection as
//! `list-conns` describes it. Needs root (namespaces) and strongSwan's charon.

use std::time::Duration;
use testkit::netns::{unique_id, veth, Netns};
use testkit::process::{wait_for, Scratch};
use testkit::swan::{Charon, SwanChildSa, SwanConn, CHARON};

fn conn(local: &str, remote: &str, lts: &str, rts: &str) -> SwanConn {
    SwanConn {
        local_addr: local.into(),
        remote_addr: remote.into(),
        local_id: local.into(),
        remote_id: remote.into(),
        local_ts: lts.into(),
        remote_ts: rts.into(),
        ike_proposals: "aes256-sha384-ecp384".into(),
        esp_proposals: "aes256gcm16".into(),
        psk: "0x766963692d74657374".into(),
        start_action: "none".into(),
        ..SwanConn::default()
    }
}

#[test]
fn list_sas_and_list_conns_of_two_real_charons() {
    assert!(std::path::Path::new(CHARON).exists(), "{CHARON} missing");
    let id = unique_id();
    let scratch = Scratch::new("vici", &id).unwrap();
    let na = Netns::new(&format!("hn{id}-va")).unwrap();
    let nb = Netns::new(&format!("hn{id}-vb")).unwrap();
    veth(&na, "wan0", &nb, "wan0").unwrap();
    for (ns, wan, lan) in [
        (&na, "192.0.2.1/24", "10.1.0.1/32"),
        (&nb, "192.0.2.2/24", "10.2.0.1/32"),
    ] {
        ns.addr("wan0", wan).unwrap();
        ns.exec("ip", &["link", "set", "wan0", "up"]).unwrap();
        ns.addr("lo", lan).unwrap();
    }
    let a = Charon::start(&na, &scratch.join("a")).unwrap();
    let b = Charon::start(&nb, &scratch.join("b")).unwrap();

    // Loaded, nothing negotiated yet.
    a.load(&conn(
        "192.0.2.1",
        "192.0.2.2",
        "10.1.0.0/16",
        "10.2.0.0/16",
    ))
    .unwrap();
    b.load(&conn(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "10.1.0.0/16",
    ))
    .unwrap();
    assert_eq!(a.sas().unwrap(), vec![]);
    let conns = a.conns().unwrap();
    assert_eq!(conns.len(), 1, "{conns:#?}");
    let c = &conns[0];
    assert_eq!(c.name, "site");
    assert_eq!(c.version, "IKEv2");
    assert_eq!(c.local_addrs, vec!["192.0.2.1"]);
    assert_eq!(c.remote_addrs, vec!["192.0.2.2"]);
    assert_eq!(
        (c.rekey_time, c.reauth_time, c.dpd_delay),
        (14400, 0, Some(30))
    );
    let (la, ra) = (c.local.clone().unwrap(), c.remote.clone().unwrap());
    assert_eq!(
        (la.id.as_deref(), la.class.as_str()),
        (Some("192.0.2.1"), "pre-shared key")
    );
    assert_eq!(ra.id.as_deref(), Some("192.0.2.2"));
    assert_eq!(c.children.len(), 1, "{c:#?}");
    let ch = &c.children[0];
    assert_eq!((ch.name.as_str(), ch.mode.as_str()), ("net", "TUNNEL"));
    // `dpd_action = clear` is charon's "none" (nothing restarted).
    assert_eq!((ch.rekey_time, ch.dpd_action.as_str()), (3600, "none"));
    assert_eq!(ch.local_ts, vec!["10.1.0.0/16"]);
    assert_eq!(ch.remote_ts, vec!["10.2.0.0/16"]);

    // Up, and 3 pings 10.1.0.1 → 10.2.0.1 through it.
    let out = a.initiate(10).unwrap();
    assert!(out.contains("completed successfully"), "{out}");
    let theirs = b.wait_child_installed(Duration::from_secs(5)).unwrap();
    na.exec(
        "ping",
        &[
            "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1",
        ],
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.sas_text()));

    let (sa, sb) = (a.sas().unwrap(), b.sas().unwrap());
    assert_eq!((sa.len(), sb.len()), (1, 1), "{sa:#?}\n{sb:#?}");
    let (ia, ib) = (&sa[0], &sb[0]);
    assert_eq!(
        (ia.name.as_str(), ia.state.as_str(), ia.version),
        ("site", "ESTABLISHED", 2)
    );
    assert_eq!(ib.state, "ESTABLISHED");
    assert!(ia.initiator && !ib.initiator);
    assert_eq!(
        (ia.local_host.as_str(), ia.remote_host.as_str()),
        ("192.0.2.1", "192.0.2.2")
    );
    assert_eq!(
        (ia.local_id.as_str(), ia.remote_id.as_str()),
        ("192.0.2.1", "192.0.2.2")
    );
    // kernel-libipsec forces UDP encapsulation: both float to 4500.
    assert_eq!((ia.local_port, ia.remote_port), (4500, 4500), "{ia:#?}");
    assert_eq!(ia.initiator_spi.len(), 16, "{ia:#?}");
    assert_eq!(
        (&ia.initiator_spi, &ia.responder_spi),
        (&ib.initiator_spi, &ib.responder_spi)
    );
    assert_ne!(ia.responder_spi, "0000000000000000");
    assert_eq!(
        ia.algorithms(),
        "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"
    );
    assert_eq!(ib.algorithms(), ia.algorithms());
    assert!(
        ia.established.is_some() && ia.rekey_time.is_some(),
        "{ia:#?}"
    );

    let (ca, cb) = (
        ia.installed_child("net").expect("a's net"),
        ib.installed_child("net").expect("b's net"),
    );
    assert_eq!(ia.children.len(), 1);
    assert_eq!(
        (ca.mode.as_str(), ca.protocol.as_str(), ca.encap),
        ("TUNNEL", "ESP", true)
    );
    assert_eq!(ca.mode_text(), "TUNNEL-in-UDP");
    assert_eq!(ca.algorithms(), "AES_GCM_16-256");
    assert_eq!(ca.spi_in.len(), 8, "{ca:#?}");
    assert_eq!((&ca.spi_in, &ca.spi_out), (&cb.spi_out, &cb.spi_in));
    assert!(ca.reqid >= 1 && cb.reqid >= 1, "{ca:#?}");
    assert_eq!(ca.local_ts, vec!["10.1.0.0/16"]);
    assert_eq!(ca.remote_ts, vec!["10.2.0.0/16"]);
    assert_eq!(cb.local_ts, vec!["10.2.0.0/16"]);
    // The pings, and only them (84-byte IP packets), on both sides.
    assert_eq!((ca.packets_out, ca.packets_in), (3, 3), "{ca:#?}");
    assert_eq!((cb.packets_in, cb.packets_out), (3, 3), "{cb:#?}");
    assert_eq!((ca.bytes_out, cb.bytes_in), (3 * 84, 3 * 84));
    assert!(ca.use_out.is_some() && ca.install_time.is_some(), "{ca:#?}");

    // testkit's view of b's child: the same SA.
    assert_eq!(
        (theirs.spi_in.as_str(), theirs.spi_out.as_str()),
        (cb.spi_in.as_str(), cb.spi_out.as_str())
    );
    assert_eq!(theirs.esp_algorithms, "AES_GCM_16-256");
    let now = SwanChildSa::find(&sb).unwrap();
    assert_eq!((now.bytes_in, now.bytes_out), (3 * 84, 3 * 84));

    // Terminated: gone from list-sas on both sides, still in list-conns.
    a.swanctl(&["--terminate", "--ike", "site"]).unwrap();
    wait_for(Duration::from_secs(5), "b's IKE SA gone", || {
        b.sas().ok().filter(|s| s.is_empty())
    })
    .unwrap();
    assert_eq!(a.sas().unwrap(), vec![]);
    assert_eq!(a.conns().unwrap().len(), 1);
}

#[test]
fn no_charon_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("hn-vici-none-{}", unique_id()));
    let e = vici::list_sas(&dir.join("charon.vici"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("charon.vici") && e.contains("is charon running?"),
        "{e}"
    );
}
