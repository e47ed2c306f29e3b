//! Packet capture through the site's Resource Manager endpoint with the real az:
//! `az network vnet-gateway packet-capture start --filter <Azure's filterData>` on the seed's
//! Azure gateway, a ping across, `stop --sas-url file:///…` writes the pcapng where asked, and
//! tshark finds the filtered echoes in it; the same on one connection
//! (`az network vpn-connection packet-capture`). A SAS URL the lab cannot write to is refused
//! with the reason, and the capture keeps running until stopped properly.

use testkit::az::Api;
use testkit::lab::{scratch_dir, Lab};

fn echoes(file: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-Y",
            "icmp && frame.interface_id == 0",
            "-T",
            "fields",
            "-e",
            "icmp.type",
        ])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn az_starts_and_stops_captures_on_the_gateway_and_a_connection() {
    let lab = Lab::up("examples/hybrid-connection");
    let az = Api::of(&lab).login("azure");
    let group = az.ok(&["group", "list"])[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = scratch_dir("az-capture");
    let filter = "{'TracingFlags': 8, 'MaxPacketBufferSize': 1500, 'MaxFileSize': 10, 'Filters': [{'SourceSubnets': ['10.1.1.4/32'], 'DestinationSubnets': ['10.2.1.4/32'], 'Protocol': [1], 'TcpFlags': -1, 'CaptureSingleDirectionTrafficOnly': false}]}";
    az.ok(&[
        "network",
        "vnet-gateway",
        "packet-capture",
        "start",
        "-g",
        &group,
        "-n",
        "azure-gw",
        "--filter",
        filter,
    ]);
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    let file = dir.join("gw.pcapng");
    let url = format!("file://{}", file.display());
    let refused = az.fails(&[
        "network",
        "vnet-gateway",
        "packet-capture",
        "stop",
        "-g",
        &group,
        "-n",
        "azure-gw",
        "--sas-url",
        "https://example.blob.core.windows.net/c?sig=x",
    ]);
    assert!(refused.contains("no storage account"), "{refused}");
    az.ok(&[
        "network",
        "vnet-gateway",
        "packet-capture",
        "stop",
        "-g",
        &group,
        "-n",
        "azure-gw",
        "--sas-url",
        &url,
    ]);
    let e = echoes(&file);
    assert_eq!(e, ["8", "0"], "one echo each way, inner: {e:?}");

    az.ok(&[
        "network",
        "vpn-connection",
        "packet-capture",
        "start",
        "-g",
        &group,
        "-n",
        "azure-to-stackhub",
    ]);
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    let file = dir.join("conn.pcapng");
    let url = format!("file://{}", file.display());
    az.ok(&[
        "network",
        "vpn-connection",
        "packet-capture",
        "stop",
        "-g",
        &group,
        "-n",
        "azure-to-stackhub",
        "--sas-url",
        &url,
    ]);
    let e = echoes(&file);
    assert!(
        e.contains(&"8".to_string()) && e.contains(&"0".to_string()),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
