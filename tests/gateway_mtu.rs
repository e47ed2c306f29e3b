//! MTU handled like a product, between two hybridnet gateways: the TUN MTU is the path MTU
//! minus the ESP-in-UDP overhead (1438 for AES-GCM over a 1500-byte path), a DF packet too
//! big for the tunnel gets ICMP "fragmentation needed" with that MTU back, the largest DF
//! packet that fits goes through, and the MSS of TCP SYNs is clamped in both directions.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk, traffic};
use std::time::Duration;
use testkit::process::Scratch;

#[test]
fn tunnel_mtu_icmp_too_big_and_mss_clamping() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("mtu", &net.id).unwrap();
    let psk = random_psk();
    let (ike, esp) = (["aes256gcm16-prfsha384-ecp384"], ["aes256gcm16"]);
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &hybridnet_b(&psk, false, &ike, &esp).to_toml(),
    )
    .unwrap();
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &hybridnet_a(&psk, true, &ike, &esp).to_toml(),
    )
    .unwrap();
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    let st = a.status().unwrap();
    assert_eq!(
        st.tun_mtu, 1438,
        "1500 - 20 IP - 8 UDP - 8 ESP - 8 IV - 16 ICV, minus trailer alignment"
    );
    let mtu_now = net
        .gw_a
        .exec("cat", &[&format!("/sys/class/net/{}/mtu", st.tun)])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&mtu_now.stdout).trim(), "1438");
    traffic::ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10)).unwrap();

    // too big with DF: the gateway's kernel answers with fragmentation needed, mtu 1438
    let out = net
        .vm_a
        .exec_unchecked(
            "ping",
            &["-c", "2", "-W", "2", "-M", "do", "-s", "1472", addrs::VM_B],
        )
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a 1500-byte DF packet must not fit: {text}"
    );
    assert!(
        text.contains("mtu = 1438") || text.contains("mtu=1438"),
        "expected frag-needed with mtu 1438: {text}"
    );
    // the largest DF packet that fits goes through: 1438 - 20 IP - 8 ICMP
    let out = net
        .vm_a
        .exec_unchecked(
            "ping",
            &["-c", "2", "-W", "2", "-M", "do", "-s", "1410", addrs::VM_B],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "1438-byte DF ping failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // SYNs from either side arrive with the MSS clamped to 1438 - 40
    let mss_ab = traffic::tcp_server_mss(&net.vm_b, addrs::VM_B, 5011, &net.vm_a).unwrap();
    let mss_ba = traffic::tcp_server_mss(&net.vm_a, addrs::VM_A, 5012, &net.vm_b).unwrap();
    assert!(
        (1300..=1398).contains(&mss_ab),
        "server in vm-b sees MSS {mss_ab}"
    );
    assert!(
        (1300..=1398).contains(&mss_ba),
        "server in vm-a sees MSS {mss_ba}"
    );
    // and bulk TCP still works with the clamped MSS
    traffic::tcp_transfer(&net.vm_b, addrs::VM_B, 5013, &net.vm_a, 1024 * 1024).unwrap();
}
