//! Issue 4/5, per-connection reload: one gateway pair with two connections; changing one
//! connection (its PSK) and reloading replaces only that tunnel, removing it tears down only
//! it, SIGHUP brings it back — while the other connection keeps its IKE and Child SA SPIs and a
//! TCP stream through it runs on with every byte verified. A broken config is refused whole.
use gateway::status::ConnectionReport;
use hybridnet_tests::gw::{hybridnet, GatewayProc};
use hybridnet_tests::lifecycle::Stream;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::{wait_for, Scratch};

fn second(
    name_local: &str,
    name_remote: &str,
    remote: &str,
    psk: &str,
    local: &str,
    remote_net: &str,
    initiate: bool,
) -> String {
    format!(
        r#"
[[connection]]
name = "lab2"
remote_address = "{remote}"
local_id = "{name_local}"
remote_id = "{name_remote}"
psk = "{psk}"
local_prefixes = ["{local}"]
remote_prefixes = ["{remote_net}"]
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes128gcm16"]
initiate = {initiate}
"#
    )
}

/// (IKE SPIs, active Child SA SPIs) of a connection.
fn spis(c: &ConnectionReport) -> (String, String, String, String) {
    let ch = c.child_sas.iter().find(|s| s.active).expect("active child");
    (
        c.ike_spi_i.clone(),
        c.ike_spi_r.clone(),
        ch.spi_in.clone(),
        ch.spi_out.clone(),
    )
}

fn reload(g: &GatewayProc) -> (bool, String) {
    hybridnet(&[
        "gateway",
        "reload",
        "--control",
        &g.control.display().to_string(),
    ])
    .unwrap()
}

#[test]
fn reload_replaces_and_removes_only_the_changed_connection() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("reload", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let a1 = hybridnet_a(&psk, true, &ike, &esp).to_toml();
    let b1 = hybridnet_b(&psk, false, &ike, &esp).to_toml();
    let a2 = |psk2: &str| {
        second(
            "gw-a2.lab.example",
            "gw-b2.lab.example",
            addrs::GW_B_WAN,
            psk2,
            "10.11.0.0/16",
            "10.12.0.0/16",
            true,
        )
    };
    let b2 = |psk2: &str| {
        second(
            "gw-b2.lab.example",
            "gw-a2.lab.example",
            addrs::GW_A_WAN,
            psk2,
            "10.12.0.0/16",
            "10.11.0.0/16",
            false,
        )
    };
    let (p2, p2new) = (random_psk(), random_psk());
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b", &(b1.clone() + &b2(&p2)))
        .expect("gw-b");
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &(a1.clone() + &a2(&p2)))
        .expect("gw-a");
    let ca = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    let cb = b
        .wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    let l2a = a.wait_established("lab2", Duration::from_secs(20)).unwrap();
    b.wait_established("lab2", Duration::from_secs(10)).unwrap();
    let (keep_a, keep_b, old_lab2) = (spis(&ca), spis(&cb), spis(&l2a));
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5301, &net.vm_a, 2 << 20).expect("stream");

    // change lab2's PSK on both sides and reload: only lab2 is replaced
    std::fs::write(&b.config, b1.clone() + &b2(&p2new)).unwrap();
    std::fs::write(&a.config, a1.clone() + &a2(&p2new)).unwrap();
    let (ok, out) = reload(&b);
    assert!(
        ok && out.contains("replaced: lab2") && out.contains("unchanged: site-a"),
        "{out}"
    );
    let (ok, out) = reload(&a);
    assert!(
        ok && out.contains("replaced: lab2") && out.contains("unchanged: site-b"),
        "{out}"
    );
    let l2a = wait_for(
        Duration::from_secs(20),
        "lab2 re-established with new SAs",
        || {
            a.connection("lab2").ok().filter(|c| {
                c.state == "established"
                    && c.child_sas.iter().any(|s| s.active)
                    && spis(c) != old_lab2
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.status_text(), b.status_text()));
    b.wait_established("lab2", Duration::from_secs(10)).unwrap();
    assert_ne!(spis(&l2a).0, old_lab2.0, "lab2 has a new IKE SA");
    assert_eq!(
        spis(&a.connection("site-b").unwrap()),
        keep_a,
        "site-b's SAs untouched on gw-a"
    );
    assert_eq!(
        spis(&b.connection("site-a").unwrap()),
        keep_b,
        "site-a's SAs untouched on gw-b"
    );
    assert_eq!(a.status().unwrap().reloads, 1);

    // a config that does not parse changes nothing
    std::fs::write(
        &a.config,
        a1.clone() + "[[connection]]\nname = \"broken\"\n",
    )
    .unwrap();
    let (ok, out) = reload(&a);
    assert!(!ok && out.contains("did not reload"), "{out}");
    assert_eq!(a.status().unwrap().connections.len(), 2);

    // remove lab2 on gw-a: its tunnel is deleted (gw-b sees the DELETE), site-b stays
    std::fs::write(&a.config, a1.clone()).unwrap();
    let (ok, out) = reload(&a);
    assert!(
        ok && out.contains("removed: lab2") && out.contains("unchanged: site-b"),
        "{out}"
    );
    let st = a.status().unwrap();
    assert_eq!(
        st.connections
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["site-b"]
    );
    wait_for(Duration::from_secs(5), "gw-b to drop lab2", || {
        b.connection("lab2").ok().filter(|c| c.child_sas.is_empty())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.status_text()));
    assert_eq!(spis(&a.connection("site-b").unwrap()), keep_a);

    // back with SIGHUP
    std::fs::write(&a.config, a1.clone() + &a2(&p2new)).unwrap();
    // SAFETY: signalling our own child process by its pid.
    assert_eq!(unsafe { libc::kill(a.pid() as i32, libc::SIGHUP) }, 0);
    a.wait_established("lab2", Duration::from_secs(20)).unwrap();
    assert_eq!(
        spis(&a.connection("site-b").unwrap()),
        keep_a,
        "site-b's SAs untouched after SIGHUP"
    );
    assert_eq!(spis(&b.connection("site-a").unwrap()), keep_b);

    std::thread::sleep(Duration::from_secs(2));
    let (sent, got) = stream
        .finish()
        .expect("the stream through site-b ran on, every byte verified");
    assert!(got >= 3 << 20, "stream carried only {got} of {sent} bytes");
    let ca = a.connection("site-b").unwrap();
    assert_eq!(ca.drops.total(), 0, "{:?}", ca.drops);
    assert!(
        a.status_text().contains("config reloaded 3 time(s)"),
        "{}",
        a.status_text()
    );
}
