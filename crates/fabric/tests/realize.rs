//! The realization layer against real namespaces: connectivity, isolation, idempotency,
//! convergence and teardown. Needs root (CI runs as root); fails loudly otherwise.

use fabric::{
    reconcile, teardown, GatewayNet, LabId, NicNet, SiteNet, SubnetNet, Topology, VmNet, VnetNet,
};
use std::process::Command;

/// Tears the lab down even if the test panics.
struct Guard(LabId);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = teardown(&self.0.netns_prefix());
    }
}

fn nic(name: &str, vnet: &str, subnet: &str, ip: &str) -> NicNet {
    NicNet {
        name: name.into(),
        vnet: vnet.into(),
        subnet: subnet.into(),
        address: ip.parse().unwrap(),
        public_address: None,
        security: Vec::new(),
    }
}

fn site(name: &str, octet: u8, public: &str, vms: Vec<VmNet>) -> SiteNet {
    SiteNet {
        name: name.into(),
        public_prefix: public.parse().unwrap(),
        vnets: vec![VnetNet {
            name: "vnet1".into(),
            subnets: vec![
                SubnetNet {
                    name: "default".into(),
                    prefix: format!("10.{octet}.1.0/24").parse().unwrap(),
                },
                SubnetNet {
                    name: "app".into(),
                    prefix: format!("10.{octet}.2.0/24").parse().unwrap(),
                },
                SubnetNet {
                    name: "GatewaySubnet".into(),
                    prefix: format!("10.{octet}.255.0/27").parse().unwrap(),
                },
            ],
        }],
        vms,
        nat: false,
        gateways: vec![],
    }
}

fn ping(ns: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W1", "-q", to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn realize_converge_and_tear_down() {
    let id = LabId::random();
    let _guard = Guard(id.clone());
    let mut topo = Topology {
        lab_id: id.clone(),
        sites: vec![
            site(
                "azure",
                1,
                "203.0.113.0/24",
                vec![
                    VmNet {
                        name: "vm1".into(),
                        nics: vec![nic("vm1-nic", "vnet1", "default", "10.1.1.4")],
                    },
                    VmNet {
                        name: "vm2".into(),
                        nics: vec![nic("vm2-nic", "vnet1", "app", "10.1.2.4")],
                    },
                ],
            ),
            site(
                "stackhub",
                2,
                "198.51.100.0/24",
                vec![VmNet {
                    name: "vm1".into(),
                    nics: vec![nic("vm1-nic", "vnet1", "default", "10.2.1.4")],
                }],
            ),
        ],
    };
    let desired = topo.desired_state().unwrap();
    let first = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).expect("namespaces need root");
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(!first.changes.is_empty());
    let vm1 = id.vm_netns("azure", "vm1");
    assert!(ping(&vm1, "10.1.1.1"), "router answers .1");
    assert!(ping(&vm1, "10.1.2.4"), "across subnets in one VNet");
    assert!(!ping(&vm1, "10.2.1.4"), "other site unreachable");

    let again = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert!(
        again.changes.is_empty(),
        "second apply changed: {:?}",
        again.changes
    );

    // Converge: vm2 moves to another address and subnet, vm3 appears, stackhub's vm1 goes.
    topo.sites[0].vms[1].nics[0] = nic("vm2-nic", "vnet1", "default", "10.1.1.5");
    topo.sites[0].vms.push(VmNet {
        name: "vm3".into(),
        nics: vec![nic("vm3-nic", "vnet1", "app", "10.1.2.4")],
    });
    topo.sites[1].vms.clear();
    let desired = topo.desired_state().unwrap();
    let third = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert!(!third.changes.is_empty());
    assert!(ping(&vm1, "10.1.1.5"));
    assert!(ping(&id.vm_netns("azure", "vm3"), "10.1.1.5"));
    assert!(!fabric::netns::netns_exists(
        &id.vm_netns("stackhub", "vm1")
    ));
    let fourth = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert!(fourth.changes.is_empty(), "{:?}", fourth.changes);

    let removed = teardown(&id.netns_prefix()).unwrap();
    assert_eq!(removed.len(), 6, "{removed:?}");
    assert!(fabric::netns::list_netns(&id.netns_prefix()).is_empty());
}

fn gateway(octet: u8, public: &str, remote: &str) -> GatewayNet {
    GatewayNet {
        name: "gw".into(),
        vnet: "vnet1".into(),
        private_address: format!("10.{octet}.255.4").parse().unwrap(),
        public_address: public.parse().unwrap(),
        remote_prefixes: vec![remote.parse().unwrap()],
        instance: 0,
        instances: 1,
    }
}

#[test]
fn gateways_are_wired_between_gateway_subnet_and_internet() {
    let id = LabId::random();
    let _guard = Guard(id.clone());
    let vm = |ip: &str| {
        vec![VmNet {
            name: "vm1".into(),
            nics: vec![nic("vm1-nic", "vnet1", "default", ip)],
        }]
    };
    let mut a = site("azure", 1, "203.0.113.0/24", vm("10.1.1.4"));
    a.gateways.push(gateway(1, "203.0.113.1", "10.2.0.0/16"));
    let mut b = site("stackhub", 2, "198.51.100.0/24", vm("10.2.1.4"));
    b.gateways.push(gateway(2, "198.51.100.1", "10.1.0.0/16"));
    let topo = Topology {
        lab_id: id.clone(),
        sites: vec![a, b],
    };
    let desired = topo.desired_state().unwrap();
    reconcile(&id.netns_prefix(), &desired, &mut |_| {}).expect("namespaces need root");
    let gw_a = id.gateway_netns("azure", "gw");
    // Public IPs reach each other across the internet namespace.
    assert!(ping(&gw_a, "198.51.100.1"));
    assert!(ping(&gw_a, "198.51.100.254"));
    // The gateway reaches its VNet's VMs through the router, and VMs reach the gateway.
    assert!(ping(&gw_a, "10.1.1.4"));
    assert!(ping(&id.vm_netns("azure", "vm1"), "10.1.255.4"));
    // The VNet router sends the remote prefix to the gateway, but without a tunnel nothing
    // gets through: private addresses are not routed on the internet.
    let route = Command::new("ip")
        .args([
            "-n",
            &id.router_netns("azure", "vnet1"),
            "route",
            "show",
            "10.2.0.0/16",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&route.stdout).contains("via 10.1.255.4"));
    assert!(!ping(&id.vm_netns("azure", "vm1"), "10.2.1.4"));
    let again = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[test]
fn a_site_behind_nat_shows_its_public_ip_and_translates() {
    let id = LabId::random();
    let _guard = Guard(id.clone());
    let vm = |ip: &str| {
        vec![VmNet {
            name: "vm1".into(),
            nics: vec![nic("vm1-nic", "vnet1", "default", ip)],
        }]
    };
    let mut a = site("azure", 1, "203.0.113.0/24", vm("10.1.1.4"));
    a.gateways.push(gateway(1, "203.0.113.1", "10.2.0.0/16"));
    let mut b = site("onprem", 2, "198.51.100.0/24", vm("10.2.1.4"));
    b.nat = true;
    b.gateways.push(gateway(2, "198.51.100.1", "10.1.0.0/16"));
    let topo = Topology {
        lab_id: id.clone(),
        sites: vec![a, b],
    };
    let desired = topo.desired_state().unwrap();
    reconcile(&id.netns_prefix(), &desired, &mut |_| {}).expect("namespaces need root");
    let gw_b = id.gateway_netns("onprem", "gw");
    // The NATed gateway has a private address and still reaches the other side's public IP.
    let addr = Command::new("ip")
        .args(["-n", &gw_b, "-4", "-o", "addr", "show", "dev", "wan"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addr.stdout).contains("100.64.0.2/24"));
    assert!(ping(&gw_b, "203.0.113.1"));
    // Inbound UDP to the public IP on port 4500 reaches the gateway behind the NAT, and its
    // reply leaves as the public IP.
    let gw_a = id.gateway_netns("azure", "gw");
    let gw_b2 = gw_b.clone();
    let receiver = std::thread::spawn(move || {
        fabric::netns::in_netns(&gw_b2, || {
            let sock = std::net::UdpSocket::bind("100.64.0.2:4500")?;
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf)?;
            sock.send_to(b"pong", from)?;
            Ok((buf[..n].to_vec(), from))
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let reply = fabric::netns::in_netns(&gw_a, || {
        let sock = std::net::UdpSocket::bind("203.0.113.1:4500")?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        sock.send_to(b"ping", "198.51.100.1:4500")?;
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf)?;
        Ok((buf[..n].to_vec(), from))
    })
    .expect("reply through the NAT");
    let (got, from) = receiver
        .join()
        .unwrap()
        .expect("datagram reached the gateway behind NAT");
    assert_eq!(got, b"ping");
    assert_eq!(from.to_string(), "203.0.113.1:4500");
    assert_eq!(reply.0, b"pong");
    assert_eq!(
        reply.1.ip().to_string(),
        "198.51.100.1",
        "reply translated to the public IP"
    );
    let again = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[test]
fn a_failing_namespace_does_not_stop_the_others() {
    let id = LabId::random();
    let _guard = Guard(id.clone());
    let vm = |ip: &str| {
        vec![VmNet {
            name: "vm1".into(),
            nics: vec![nic("vm1-nic", "vnet1", "default", ip)],
        }]
    };
    let topo = Topology {
        lab_id: id.clone(),
        sites: vec![
            site("azure", 1, "203.0.113.0/24", vm("10.1.1.4")),
            site("stackhub", 2, "198.51.100.0/24", vm("10.2.1.4")),
        ],
    };
    let mut desired = topo.desired_state().unwrap();
    let broken = id.vm_netns("azure", "vm1");
    // A next hop that is not on any link: the kernel refuses the route.
    let spec = desired.netns.iter_mut().find(|n| n.name == broken).unwrap();
    spec.routes.push(fabric::RouteSpec {
        dst: "10.99.0.0/16".parse().unwrap(),
        via: Some("192.0.2.1".parse().unwrap()),
        dev: "eth0".into(),
    });
    let report =
        reconcile(&id.netns_prefix(), &desired, &mut |_| {}).expect("namespaces need root");
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].netns, broken);
    assert!(
        report.failed[0].to_string().contains("10.99.0.0/16"),
        "{}",
        report.failed[0]
    );
    // Everything else converged.
    assert!(ping(&id.vm_netns("stackhub", "vm1"), "10.2.1.1"));
    let again = reconcile(&id.netns_prefix(), &desired, &mut |_| {}).unwrap();
    assert_eq!(again.failed.len(), 1, "still failing, still isolated");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}
