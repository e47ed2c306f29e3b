//! Packet capture on the seed's Azure gateway, as `hybridnet lab capture` (Azure's
//! packet-capture with its filterData shape): during a ping VM to VM the pcapng holds the
//! inner ICMP echoes (decrypted, TUN side) and the outer ESP-in-UDP packets; the exported
//! esp_sa lets tshark decrypt the outer packets to the same ICMP. The filter keeps out what it
//! does not name (a TCP connection attempt), MaxPacketBufferSize cuts packets, a connection
//! capture sees only its tunnel, a time limit stops the writing, and the keys file is 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use testkit::lab::{scratch_dir, show, Lab};

/// `tshark -r FILE ARGS… -T fields -e FIELD…` lines.
fn tshark(file: &Path, args: &[String], fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(args).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn ok(lab: &Lab, args: &[&str]) -> String {
    let mut full = vec!["lab", "capture"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--id", &lab.id]);
    let out = lab.run(&full);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn capture_inner_and_outer_and_decrypt_the_outer() {
    let lab = Lab::up("examples/hybrid-connection");
    let dir = scratch_dir("capture");
    let file = dir.join("gw.pcapng");
    let filter = r#"{"TracingFlags": 11, "MaxPacketBufferSize": 1500, "MaxFileSize": 10,
        "Filters": [{"SourceSubnets": ["10.1.1.4/32"], "DestinationSubnets": ["10.2.1.4/32"],
                     "Protocol": [1], "TcpFlags": -1, "CaptureSingleDirectionTrafficOnly": false}]}"#;
    ok(
        &lab,
        &[
            "start",
            "--site",
            "azure",
            "--gateway",
            "azure-gw",
            "--filter",
            filter,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    // a TCP attempt the filter does not name (refused by the VM: SYN and RST cross)
    let _ = lab.exec("azure/vm1", &["bash", "-c", "echo > /dev/tcp/10.2.1.4/9"]);
    let stopped = ok(&lab, &["stop", "--site", "azure", "--gateway", "azure-gw"]);
    assert!(stopped.contains("packets"), "{stopped}");

    // inner: the echoes both ways, nothing else
    let inner = tshark(
        &file,
        &["-Y".into(), "frame.interface_id == 0".into()],
        &["ip.src", "ip.dst", "icmp.type"],
    );
    assert_eq!(
        inner
            .iter()
            .filter(|l| l.as_str() == "10.1.1.4\t10.2.1.4\t8")
            .count(),
        2,
        "{inner:?}"
    );
    assert_eq!(
        inner
            .iter()
            .filter(|l| l.as_str() == "10.2.1.4\t10.1.1.4\t0")
            .count(),
        2,
        "{inner:?}"
    );
    assert_eq!(inner.len(), 4, "only the filtered ICMP: {inner:?}");
    // outer: ESP in UDP between the public IPs
    let outer = tshark(
        &file,
        &["-Y".into(), "esp".into()],
        &["ip.src", "ip.dst", "udp.dstport"],
    );
    assert!(outer.len() >= 4, "{outer:?}");
    assert!(outer.iter().all(|l| l.ends_with("\t4500")), "{outer:?}");

    // the esp_sa export decrypts them to the same ICMP
    let keys = dir.join("esp_sa");
    ok(
        &lab,
        &[
            "esp-sa",
            "--site",
            "azure",
            "--gateway",
            "azure-gw",
            "-o",
            keys.to_str().unwrap(),
        ],
    );
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the keys file is private");
    let mut args = vec![
        "-o".to_string(),
        "esp.enable_encryption_decode:TRUE".to_string(),
    ];
    for line in std::fs::read_to_string(&keys).unwrap().lines() {
        args.push("-o".into());
        args.push(format!("uat:esp_sa:{line}"));
    }
    args.push("-Y".into());
    args.push("esp && icmp".into());
    let decrypted = tshark(&file, &args, &["icmp.type"]);
    assert!(
        decrypted.iter().filter(|t| t.as_str() == "8").count() >= 2
            && decrypted.iter().filter(|t| t.as_str() == "0").count() >= 2,
        "tshark decrypts the outer packets to the echoes: {decrypted:?}"
    );

    // limits: a connection's capture, cut at 40 bytes, stopping after 1 s
    let small = dir.join("conn.pcapng");
    ok(
        &lab,
        &[
            "start",
            "--site",
            "azure",
            "--connection",
            "azure-to-stackhub",
            "--filter",
            r#"{"TracingFlags": 8, "MaxPacketBufferSize": 40, "MaxFileSize": 1}"#,
            "--duration",
            "1",
            "-o",
            small.to_str().unwrap(),
        ],
    );
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    let stopped = ok(
        &lab,
        &[
            "stop",
            "--site",
            "azure",
            "--connection",
            "azure-to-stackhub",
        ],
    );
    assert!(stopped.contains("time limit of 1 s"), "{stopped}");
    let lens = tshark(
        &small,
        &[],
        &["frame.cap_len", "frame.len", "frame.interface_id"],
    );
    assert_eq!(
        lens.len(),
        2,
        "one echo each way before the limit: {lens:?}"
    );
    assert!(lens.iter().all(|l| l.starts_with("40\t84\t0")), "{lens:?}");

    // a second capture while one runs is refused, naming the running one
    ok(
        &lab,
        &[
            "start",
            "--site",
            "azure",
            "--gateway",
            "azure-gw",
            "-o",
            dir.join("a").to_str().unwrap(),
        ],
    );
    let mut args = vec![
        "lab",
        "capture",
        "start",
        "--site",
        "azure",
        "--gateway",
        "azure-gw",
        "-o",
    ];
    let b = dir.join("b");
    args.push(b.to_str().unwrap());
    args.extend_from_slice(&["--id", &lab.id]);
    let second = lab.run(&args);
    assert!(!second.status.success());
    assert!(
        show(&second).contains("already running"),
        "{}",
        show(&second)
    );
    ok(&lab, &["stop", "--site", "azure", "--gateway", "azure-gw"]);
    let _ = std::fs::remove_dir_all(&dir);
}
