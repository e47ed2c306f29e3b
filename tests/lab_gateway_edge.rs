//! The lab's public edge for gateways, from ARM templates: each virtualNetworkGateway gets a
//! namespace between its GatewaySubnet and the internet holding its public IP; a site with
//! `nat: true` has its gateway's public IP on a NAT device that forwards IKE/NAT-T to the
//! gateway and translates its replies. Without tunnels, VMs still cannot reach the other site.

use serde_json::Value;
use std::net::UdpSocket;
use std::time::Duration;
use testkit::lab;
use testkit::lab::Lab;

fn site<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

fn gateway(site: &Value) -> &Value {
    site["otherResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.Network/virtualNetworkGateways")
        .expect("a gateway")
}

#[test]
fn gateways_hold_public_ips_and_nat_forwards_ike() {
    // No gateway processes: this test probes the wires (its UDP probes use ports 500/4500,
    // which a running gateway would hold) and shows there is no path without tunnels.
    let lab = Lab::up_with("examples/hybrid-connection-nat", &["--no-gateways"]);
    let status = lab.status();
    let azure = site(&status, "azure");
    let stackhub = site(&status, "stackhub");
    assert_eq!(stackhub["natDevice"]["exists"], true, "{stackhub}");
    assert!(azure.get("natDevice").is_none());
    let gw_a = gateway(azure);
    let gw_b = gateway(stackhub);
    assert_eq!(gw_a["netns"]["exists"], true, "{gw_a}");
    assert_eq!(gw_b["netns"]["exists"], true, "{gw_b}");
    let ns_a = gw_a["netns"]["netns"].as_str().unwrap().to_string();
    let ns_b = gw_b["netns"]["netns"].as_str().unwrap().to_string();
    let pip = |s: &Value| {
        s["publicIpAddresses"][0]["ipAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pip_a, pip_b) = (pip(azure), pip(stackhub));

    // `lab exec` enters a gateway's namespace too: its public IP is on `wan`.
    let target = format!("azure/{}", gw_a["name"].as_str().unwrap());
    let out = lab.exec(&target, &["ip", "-4", "-o", "addr", "show", "dev", "wan"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{pip_a}/")),
        "{}",
        lab::show(&out)
    );

    // VMs reach their own gateway on the GatewaySubnet.
    let gw_a_private = gw_a["privateIpAddress"].as_str().unwrap();
    assert!(lab.ping("azure/vm1", gw_a_private));

    // IKE's NAT-T port: azure's gateway sends from its public IP to stackhub's public IP; the
    // NAT device forwards it to the gateway behind it, and the reply comes back translated.
    let b_addr = format!("{pip_a}:4500");
    let receiver = std::thread::spawn(move || {
        fabric::netns::in_netns(&ns_b, || {
            let sock = UdpSocket::bind("0.0.0.0:4500")?;
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf)?;
            sock.send_to(b"pong", from)?;
            Ok((buf[..n].to_vec(), from.to_string()))
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let (reply, reply_from) = fabric::netns::in_netns(&ns_a, || {
        let sock = UdpSocket::bind(format!("{pip_a}:4500"))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.send_to(b"ping", format!("{pip_b}:4500"))?;
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf)?;
        Ok((buf[..n].to_vec(), from.ip().to_string()))
    })
    .expect("reply through the NAT device");
    let (got, from) = receiver
        .join()
        .unwrap()
        .expect("datagram reached the gateway behind NAT");
    assert_eq!(got, b"ping");
    assert_eq!(from, b_addr, "inbound keeps the sender's public address");
    assert_eq!(reply, b"pong");
    assert_eq!(reply_from, pip_b, "outbound is translated to the public IP");

    // The routers send the remote VNet to the gateways, but no gateway process runs a tunnel.
    assert!(!lab.ping("azure/vm1", "10.2.1.4"));
    assert!(!lab.ping("stackhub/vm1", "10.1.1.4"));
}
