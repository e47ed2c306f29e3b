//! Renderers against real site stores: the fixture template deployed to an `azure` and an
//! `azure-stack-hub` site, with the kind's default policy and with custom `ipsecPolicies`.

use devconfig::{vendor, vendors, DevConfigError, PeerDevice};
use serde_json::{json, Map, Value};
use site::{Resource, Site};

const TEMPLATE: &str = include_str!("fixtures/s2s.json");
const KEY: &str = "Azure-Stack \"key\" #1";

struct Fixture {
    _dir: tempfile::TempDir,
    site: Site,
}

fn deploy(kind: &str, extra: Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut site =
        Site::create(dir.path(), "cloud", kind, "203.0.113.0/24".parse().unwrap()).unwrap();
    let mut params: Map<String, Value> = json!({
        "deviceIpAddress": "198.51.100.7",
        "devicePrefixes": ["10.2.0.0/16", "192.168.10.0/24"],
        "sharedKey": KEY,
    })
    .as_object()
    .unwrap()
    .clone();
    for (k, v) in extra.as_object().unwrap() {
        params.insert(k.clone(), v.clone());
    }
    let plan = site.plan(TEMPLATE, params, "s2s").unwrap();
    site.apply(plan).unwrap();
    Fixture { _dir: dir, site }
}

fn gateway_ip(site: &Site) -> String {
    site.resources()
        .unwrap()
        .iter()
        .find_map(|r| match r {
            Resource::PublicIpAddress(p) => Some(p.ip_address.to_string()),
            _ => None,
        })
        .unwrap()
}

/// Every value of `key = value` lines (trimmed), in order.
fn values(conf: &str, key: &str) -> Vec<String> {
    conf.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

fn one(conf: &str, key: &str) -> String {
    let v = values(conf, key);
    assert_eq!(v.len(), 1, "{key}: {v:?}\n{conf}");
    v[0].clone()
}

fn render(f: &Fixture) -> String {
    let peer = PeerDevice::from_site(&f.site, "to-onprem").unwrap();
    vendor("strongswan").unwrap().render(&peer).unwrap()
}

fn ash_policy() -> Value {
    json!([{ "saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256",
             "ikeEncryption": "AES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384" }])
}

#[test]
fn azure_default_policy() {
    let f = deploy("azure", json!({}));
    let c = render(&f);
    let gw = gateway_ip(&f.site);
    assert_eq!(one(&c, "version"), "2");
    assert_eq!(one(&c, "local_addrs"), "198.51.100.7");
    assert_eq!(one(&c, "remote_addrs"), gw);
    assert_eq!(
        values(&c, "id"),
        vec!["198.51.100.7".to_string(), gw.clone()]
    );
    assert_eq!(
        one(&c, "proposals"),
        "aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,aes128-sha256-modp1024"
    );
    assert_eq!(
        one(&c, "esp_proposals"),
        "aes256gcm16,aes256-sha1,aes256-sha256,aes128-sha1"
    );
    assert_eq!(one(&c, "local_ts"), "10.2.0.0/16,192.168.10.0/24");
    assert_eq!(one(&c, "remote_ts"), "10.1.0.0/16");
    assert_eq!(values(&c, "rekey_time"), vec!["25920s", "24300s"]);
    assert_eq!(one(&c, "over_time"), "2880s");
    assert_eq!(one(&c, "life_time"), "27000s");
    assert_eq!(one(&c, "life_bytes"), "104857600000");
    assert_eq!(one(&c, "rekey_bytes"), "94371840000");
    assert_eq!(one(&c, "dpd_delay"), "11s");
    assert!(
        values(&c, "dpd_timeout").is_empty(),
        "dpd_timeout is IKEv1-only"
    );
    assert_eq!(one(&c, "start_action"), "start");
    assert_eq!(one(&c, "dpd_action"), "restart");
    assert_eq!(one(&c, "mode"), "tunnel");
    assert_eq!(values(&c, "auth"), vec!["psk", "psk"]);
    assert_eq!(one(&c, "id-local"), "198.51.100.7");
    assert_eq!(one(&c, "id-remote"), gw);
    let hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(one(&c, "secret"), format!("0x{hex}"));
    assert!(
        !c.contains(KEY),
        "the key only appears hex-encoded, on the secret line"
    );
    assert!(c.contains("#       load = random nonce openssl pem pkcs1 sha1 sha2 hmac kdf gcm aes curve25519 kernel-libipsec kernel-netlink socket-default vici"), "{c}");
    assert!(c.contains("#       retransmit_timeout = 1.9"), "{c}");
}

#[test]
fn azure_custom_policy_for_azure_stack_hub() {
    let f = deploy(
        "azure",
        json!({ "ipsecPolicies": ash_policy(), "dpdTimeoutSeconds": 30 }),
    );
    let c = render(&f);
    assert_eq!(one(&c, "proposals"), "aes256-sha384-ecp384");
    assert_eq!(one(&c, "esp_proposals"), "aes256gcm16-ecp384");
    // IKE lifetime stays the kind's 28800 s; the Child SA's comes from the policy.
    assert_eq!(values(&c, "rekey_time"), vec!["25920s", "24300s"]);
    assert_eq!(one(&c, "life_time"), "27000s");
    assert_eq!(one(&c, "life_bytes"), "104857600000");
    assert_eq!(one(&c, "dpd_delay"), "7s");
    assert!(c.contains("custom ipsecPolicies"), "{c}");
}

#[test]
fn azure_custom_gcm_ike_policy() {
    let p = json!([{ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 1024, "ipsecEncryption": "AES128", "ipsecIntegrity": "SHA256",
                     "ikeEncryption": "GCMAES256", "ikeIntegrity": "GCMAES256", "dhGroup": "DHGroup24", "pfsGroup": "PFSMM" }]);
    let f = deploy("azure", json!({ "ipsecPolicies": p }));
    let c = render(&f);
    assert_eq!(one(&c, "proposals"), "aes256gcm16-prfsha256-modp2048s256");
    assert_eq!(one(&c, "esp_proposals"), "aes128-sha256-modp2048s256");
    assert_eq!(values(&c, "rekey_time"), vec!["25920s", "3240s"]);
    assert_eq!(one(&c, "life_time"), "3600s");
    assert_eq!(one(&c, "life_bytes"), "1048576");
    assert_eq!(one(&c, "rekey_bytes"), "943718");
}

#[test]
fn weak_legacy_policy_is_exported_with_a_warning() {
    let p = json!([{ "saLifeTimeSeconds": 3600, "saDataSizeKilobytes": 102400, "ipsecEncryption": "DES3", "ipsecIntegrity": "MD5",
                     "ikeEncryption": "DES", "ikeIntegrity": "SHA1", "dhGroup": "DHGroup1", "pfsGroup": "None" }]);
    let f = deploy("azure", json!({ "ipsecPolicies": p }));
    let c = render(&f);
    assert_eq!(one(&c, "proposals"), "des-sha1-modp768");
    assert_eq!(one(&c, "esp_proposals"), "3des-md5");
    assert!(
        c.contains("# WARNING: this policy uses weak algorithms: DES (56-bit key, broken), DH group 1 (768-bit MODP, broken), 3DES (64-bit blocks, weak), HMAC-MD5."),
        "{c}"
    );
    // a sound policy carries no warning
    let sound = render(&deploy("azure", json!({})));
    assert!(!sound.contains("WARNING"), "{sound}");
}

#[test]
fn azure_stack_hub_default_policy() {
    let f = deploy("azure-stack-hub", json!({}));
    let c = render(&f);
    assert_eq!(one(&c, "version"), "2");
    assert_eq!(one(&c, "proposals"), "aes256-sha384-ecp384");
    assert_eq!(one(&c, "esp_proposals"), "aes256gcm16-ecp384");
    assert_eq!(values(&c, "rekey_time"), vec!["25920s", "24300s"]);
    assert_eq!(one(&c, "life_bytes"), "34358689792");
    assert_eq!(one(&c, "rekey_bytes"), "30922820812");
    assert!(c.contains("the site kind's default policy"), "{c}");
}

#[test]
fn azure_stack_hub_custom_policy() {
    let p = json!([{ "saLifeTimeSeconds": 14400, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "AES256", "ipsecIntegrity": "SHA256",
                     "ikeEncryption": "AES256", "ikeIntegrity": "SHA256", "dhGroup": "DHGroup14", "pfsGroup": "PFS2048" }]);
    let f = deploy("azure-stack-hub", json!({ "ipsecPolicies": p }));
    let c = render(&f);
    assert_eq!(one(&c, "proposals"), "aes256-sha256-modp2048");
    assert_eq!(one(&c, "esp_proposals"), "aes256-sha256-modp2048");
    assert_eq!(values(&c, "rekey_time"), vec!["25920s", "12960s"]);
    assert_eq!(one(&c, "life_time"), "14400s");
}

#[test]
fn policy_based_traffic_selectors_make_one_child_per_prefix_pair() {
    // Azure asks for a custom policy with policy-based traffic selectors
    let p = json!([{ "saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "AES256", "ipsecIntegrity": "SHA256",
                     "ikeEncryption": "AES256", "ikeIntegrity": "SHA256", "dhGroup": "DHGroup14", "pfsGroup": "None" }]);
    let f = deploy(
        "azure",
        json!({ "usePolicyBasedTrafficSelectors": true, "ipsecPolicies": p }),
    );
    let c = render(&f);
    assert_eq!(
        values(&c, "local_ts"),
        vec!["10.2.0.0/16", "192.168.10.0/24"]
    );
    assert_eq!(values(&c, "remote_ts"), vec!["10.1.0.0/16", "10.1.0.0/16"]);
    assert!(
        c.contains("to-onprem-1 {") && c.contains("to-onprem-2 {"),
        "{c}"
    );
}

#[test]
fn device_behind_nat_keeps_its_public_identity() {
    let f = deploy("azure", json!({}));
    let peer = PeerDevice::from_site(&f.site, "TO-ONPREM")
        .unwrap()
        .with_local_address("100.64.0.2".parse().unwrap());
    let c = vendor("strongswan").unwrap().render(&peer).unwrap();
    assert_eq!(one(&c, "local_addrs"), "100.64.0.2");
    assert_eq!(values(&c, "id")[0], "198.51.100.7");
}

#[test]
fn generic_summary_and_vendor_list() {
    let f = deploy("azure-stack-hub", json!({}));
    let peer = PeerDevice::from_site(&f.site, "to-onprem").unwrap();
    let g = vendor("GENERIC").unwrap().render(&peer).unwrap();
    assert!(
        g.contains("IKE proposals:               aes256-sha384-ecp384"),
        "{g}"
    );
    assert!(
        g.contains(&format!("Pre-shared key:              {KEY}")),
        "{g}"
    );
    let names: Vec<&str> = vendors().iter().map(|v| v.name()).collect();
    assert_eq!(names, vec!["strongswan", "bird", "frr", "generic"]);
    let e = vendor("cisco-asa").unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown vendor \"cisco-asa\" (vendors: strongswan, bird, frr, generic)"
    );
}

#[test]
fn debug_and_errors_never_show_the_key() {
    let f = deploy("azure", json!({}));
    let peer = PeerDevice::from_site(&f.site, "to-onprem").unwrap();
    assert!(
        !format!("{peer:?}").contains("Azure-Stack"),
        "Debug shows the key"
    );
    let e = PeerDevice::from_site(&f.site, "nope").unwrap_err();
    assert!(matches!(e, DevConfigError::NoSuchConnection { .. }));
    assert_eq!(
        e.to_string(),
        "site cloud has no connection \"nope\" (connections: to-onprem)"
    );
}

#[test]
fn strongswan_conf_matches_the_commented_block() {
    let f = deploy("azure", json!({ "dpdTimeoutSeconds": 9 }));
    let peer = PeerDevice::from_site(&f.site, "to-onprem").unwrap();
    let swanctl = vendor("strongswan").unwrap().render(&peer).unwrap();
    let conf = devconfig::StrongSwan::strongswan_conf(
        &peer,
        &devconfig::CharonRuntime {
            vici_socket: "/run/hn-dev/charon.vici".into(),
            log_file: Some("/var/log/hn-dev/charon.log".into()),
        },
    );
    let commented: Vec<&str> = swanctl
        .lines()
        .filter_map(|l| l.strip_prefix("#       "))
        .collect();
    assert_eq!(commented.len(), 5, "{swanctl}");
    assert!(
        swanctl.contains("\n#   charon {\n#       load = ") && swanctl.contains("\n#   }\n"),
        "{swanctl}"
    );
    for line in commented {
        assert!(
            conf.contains(&format!("\n    {line}\n")),
            "{line:?} missing:\n{conf}"
        );
    }
    assert!(conf.contains("retransmit_timeout = 0.4\n"), "{conf}");
    assert!(
        conf.contains("socket = unix:///run/hn-dev/charon.vici\n"),
        "{conf}"
    );
    assert!(
        conf.contains("path = /var/log/hn-dev/charon.log\n"),
        "{conf}"
    );
    assert!(!conf.contains("Azure-Stack"), "no key in strongswan.conf");
    let kl = conf.find("kernel-libipsec").unwrap();
    assert!(
        kl < conf.find("kernel-netlink").unwrap(),
        "kernel-libipsec must precede kernel-netlink"
    );
}

#[test]
fn ikev1_connection_reauthenticates_and_sets_dpd_timeout() {
    let f = deploy("azure", json!({ "connectionProtocol": "IKEv1" }));
    let c = render(&f);
    assert_eq!(one(&c, "version"), "1");
    assert_eq!(one(&c, "reauth_time"), "25920s");
    assert_eq!(
        values(&c, "rekey_time"),
        vec!["24300s"],
        "only the Child SA rekeys"
    );
    assert_eq!(one(&c, "dpd_timeout"), "45s");
    assert!(values(&c, "mobike").is_empty(), "MOBIKE is IKEv2-only");
}

#[test]
fn active_active_gateway_gets_one_connection_per_instance() {
    let f = deploy("azure", json!({}));
    let mut peer = PeerDevice::from_site(&f.site, "to-onprem").unwrap();
    peer.tunnels.push(devconfig::PeerTunnel {
        remote_address: "203.0.113.99".parse().unwrap(),
        public_ip_name: "gw1-pip2".into(),
    });
    let c = vendor("strongswan").unwrap().render(&peer).unwrap();
    let first = peer.tunnels[0].remote_address.to_string();
    assert_eq!(
        values(&c, "remote_addrs"),
        vec![first.clone(), "203.0.113.99".into()]
    );
    assert!(
        c.contains("    to-onprem-tunnel1 {") && c.contains("    to-onprem-tunnel2 {"),
        "{c}"
    );
    assert!(
        c.contains("ike-to-onprem-tunnel1 {") && c.contains("ike-to-onprem-tunnel2 {"),
        "{c}"
    );
    assert_eq!(values(&c, "id-remote"), vec![first, "203.0.113.99".into()]);
}

#[test]
fn connections_without_an_on_premises_device_are_refused() {
    let f = deploy("azure", json!({}));
    let kind = f.site.kind();
    let mut rs = f.site.resources().unwrap();
    for r in &mut rs {
        if let Resource::Connection(c) = r {
            c.connection_type = site::ConnectionType::Vnet2Vnet;
        }
    }
    let e = PeerDevice::from_resources("cloud", kind, &rs, "to-onprem")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "connection \"to-onprem\" is of type Vnet2Vnet: only IPsec (site-to-site) connections have an on-premises VPN device to configure");

    let mut rs = f.site.resources().unwrap();
    for r in &mut rs {
        if let Resource::LocalNetworkGateway(l) = r {
            l.gateway_ip_address = None;
            l.fqdn = Some("vpn.example.net".into());
        }
    }
    let e = PeerDevice::from_resources("cloud", kind, &rs, "to-onprem")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no gatewayIpAddress") && e.contains("vpn.example.net"),
        "{e}"
    );

    let rs: Vec<Resource> = f
        .site
        .resources()
        .unwrap()
        .into_iter()
        .filter(|r| !matches!(r, Resource::PublicIpAddress(_)))
        .collect();
    let e = PeerDevice::from_resources("cloud", kind, &rs, "to-onprem")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("connection \"to-onprem\": public IP address /subscriptions/")
            && e.ends_with("does not exist in site cloud"),
        "{e}"
    );
}

#[test]
fn devices_are_found_by_their_address() {
    let f = deploy("azure", json!({}));
    let found = PeerDevice::for_device_address(&f.site, "198.51.100.7".parse().unwrap()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].connection_name, "to-onprem");
    assert_eq!(found[0].local_prefixes.len(), 2);
    let none = PeerDevice::for_device_address(&f.site, "198.51.100.8".parse().unwrap()).unwrap();
    assert!(none.is_empty());
}

/// The fixture with BGP: the gateway (AS 65515), the device's bgpSettings, the connection's
/// enableBgp. The strongSwan export goes any-to-any and leaves routing to the router; BIRD
/// and FRR peer from the device's BGP address with the gateway, multihop, announcing the
/// local network gateway's prefixes but the device's own /32 (or what is asked instead); a
/// connection without BGP has no router configuration.
#[test]
fn bgp_connection_exports_strongswan_bird_and_frr() {
    let text = TEMPLATE
        .replace(
            r#""gatewayType": "Vpn", "vpnType": "RouteBased","#,
            r#""gatewayType": "Vpn", "vpnType": "RouteBased", "enableBgp": true,"#,
        )
        .replace(
            r#""gatewayIpAddress": "[parameters('deviceIpAddress')]","#,
            r#""gatewayIpAddress": "[parameters('deviceIpAddress')]", "bgpSettings": { "asn": 65050, "bgpPeeringAddress": "10.2.255.254" },"#,
        )
        .replace(
            r#""connectionType": "IPsec","#,
            r#""connectionType": "IPsec", "enableBgp": true,"#,
        );
    assert_ne!(text, TEMPLATE);
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::create(
        dir.path(),
        "cloud",
        "azure",
        "203.0.113.0/24".parse().unwrap(),
    )
    .unwrap();
    let params: Map<String, Value> = json!({
        "deviceIpAddress": "198.51.100.7",
        "devicePrefixes": ["10.2.255.254/32", "10.3.0.0/16"],
        "sharedKey": KEY,
    })
    .as_object()
    .unwrap()
    .clone();
    let plan = site.plan(&text, params, "s2s").unwrap();
    site.apply(plan).unwrap();
    let peer = PeerDevice::from_site(&site, "to-onprem").unwrap();
    let gw = peer.bgp.as_ref().unwrap().remote_address.to_string();
    assert!(gw.starts_with("10.1.255."), "{gw}");

    let swan = vendor("strongswan").unwrap().render(&peer).unwrap();
    assert_eq!(one(&swan, "local_ts"), "0.0.0.0/0");
    assert_eq!(one(&swan, "remote_ts"), "0.0.0.0/0");
    assert!(swan.contains("install_routes = no"), "{swan}");

    let bird = vendor("bird").unwrap().render(&peer).unwrap();
    for want in [
        "router id 10.2.255.254;".to_string(),
        "local 10.2.255.254 as 65050;".into(),
        format!("neighbor {gw} as 65515;"),
        "multihop;".into(),
        format!("route {gw}/32 via \"ipsec0\";"),
        "route 10.3.0.0/16 unreachable;".into(),
    ] {
        assert!(bird.contains(&want), "{want} in\n{bird}");
    }
    assert!(
        !bird.contains("route 10.2.255.254/32"),
        "the device's own address is not announced:\n{bird}"
    );

    let frr = vendor("frr")
        .unwrap()
        .render(
            &peer
                .clone()
                .with_announce(&["10.9.0.0/16".parse().unwrap()]),
        )
        .unwrap();
    for want in [
        "router bgp 65050".to_string(),
        format!("neighbor {gw} remote-as 65515"),
        format!("neighbor {gw} ebgp-multihop 255"),
        format!("neighbor {gw} update-source 10.2.255.254"),
        format!("ip route {gw}/32 ipsec0"),
        "network 10.9.0.0/16".into(),
    ] {
        assert!(frr.contains(&want), "{want} in\n{frr}");
    }

    let plain = deploy("azure", json!({}));
    let peer = PeerDevice::from_site(&plain.site, "to-onprem").unwrap();
    let e = vendor("bird").unwrap().render(&peer).unwrap_err();
    assert!(
        matches!(e, DevConfigError::NoBgp { .. }) && e.to_string().contains("enableBgp"),
        "{e}"
    );
}
