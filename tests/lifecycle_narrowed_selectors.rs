//! Issue 11 (3): strongSwan has one child per subnet (10.2.1.0/24 and 10.2.9.0/24) while we
//! ask for all of 10.2.0.0/16. It narrows our IKE_AUTH proposal to one subnet; before the fix
//! traffic to the other was routed into the tunnel and silently dropped as `no_child_sa`.
//! Now we ask for another Child SA for what was left out: strongSwan accepts the second subnet
//! and refuses the rest. Traffic to both subnets flows; what no SA covers is not routed into
//! the tunnel (a prohibit route: senders get ICMP at once) and status warns with both
//! selector sets.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::{ping, ping_until_reply};
use hybridnet_tests::{hybridnet_a, random_psk, swan_b};
use std::time::Duration;
use testkit::process::{wait_for, Scratch};
use testkit::swan::Charon;

#[test]
fn narrowed_selectors_get_a_child_sa_each_or_a_warning() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("narrow", &net.id).unwrap();
    let psk = random_psk();
    let (ike, esp) = ("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    // a second subnet behind gw-b
    net.gw_b
        .exec("ip", &["addr", "add", "10.2.9.1/24", "dev", "in0"])
        .unwrap();
    net.vm_b
        .exec("ip", &["addr", "add", "10.2.9.9/24", "dev", "vm0"])
        .unwrap();
    let charon = Charon::start(&net.gw_b, &scratch.join("swan-b")).expect("charon");
    let mut conn = swan_b(&psk, false, ike, esp);
    conn.local_ts = "10.2.1.0/24".into();
    conn.more_children = vec![("net9".into(), "10.2.9.0/24".into())];
    charon.load(&conn).expect("swanctl load");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &hybridnet_a(&psk, true, &[ike], &[esp]).to_toml(),
    )
    .expect("gw-a");
    let c = wait_for(
        Duration::from_secs(20),
        "two Child SAs and a verdict",
        || {
            a.connection("site-b")
                .ok()
                .filter(|c| c.child_sas.len() >= 2 && c.selector_warning.is_some())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.status_text(), charon.sas_text()));
    let mut remote: Vec<String> = c
        .child_sas
        .iter()
        .flat_map(|s| s.remote_ts.clone())
        .collect();
    remote.sort();
    assert_eq!(
        remote,
        vec!["10.2.1.0/24", "10.2.9.0/24"],
        "{}",
        a.status_text()
    );
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    ping(&net.vm_a, "10.2.9.9", 3).unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
    let sas = charon.sas().unwrap();
    for child in ["net", "net9"] {
        assert!(
            sas.iter().any(|s| s.installed_child(child).is_some()),
            "no {child} installed:\n{}",
            charon.sas_text()
        );
    }
    // what nobody covers is not routed into the tunnel: the sender is told at once
    // (ICMP administratively prohibited from the gateway), and status explains why
    let routes = wait_for(Duration::from_secs(5), "a prohibit route", || {
        let o = net.gw_a.exec("ip", &["route"]).ok()?;
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.contains("prohibit 10.2.0.0/16").then_some(t)
    })
    .unwrap();
    // the covered prefixes were routed into the tunnel before the rest was refused
    assert!(
        routes.contains("10.2.1.0/24 dev hn-gw0") && routes.contains("10.2.9.0/24 dev hn-gw0"),
        "{routes}"
    );
    let o = net
        .vm_a
        .exec_unchecked("ping", &["-c", "1", "-W", "2", "10.2.5.5"])
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !o.status.success() && text.contains("Packet filtered"),
        "{text}"
    );
    let c = a.connection("site-b").unwrap();
    assert_eq!(c.drops.no_child_sa, 0, "{:?}", c.drops);
    let w = c.selector_warning.clone().unwrap();
    assert!(
        w.contains("ours local [10.1.0.0/16] remote [10.2.0.0/16]"),
        "{w}"
    );
    assert!(
        w.contains("10.2.1.0/24") && w.contains("10.2.9.0/24"),
        "{w}"
    );
    assert!(w.contains("TS_UNACCEPTABLE"), "{w}");
    let table = a.status_text();
    assert!(table.contains("warning: the peer narrowed"), "{table}");
    assert_eq!(c.state, "established");
    eprintln!("{table}");
}
