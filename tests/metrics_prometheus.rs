//! Issue 16, item 2: a real Prometheus scrapes a lab. `lab up --metrics` of the seed starts
//! Debian's prometheus as the lab's process (loopback port, config and data in the lab's
//! state); its query API returns the tunnel byte counters of both connections, and under an
//! iperf3 run from azure/vm1 to stackhub/vm1 they grow by what iperf3 reports it sent:
//!
//! - the counters (exported as TunnelEgressBytes/TunnelIngressBytes) are the gateway's
//!   *inner* bytes, the plaintext IP packets that enter and leave the tunnel, so the outer
//!   ESP header, IV, padding, ICV and the UDP/IP encapsulation (~60 bytes per packet) are
//!   not in them;
//! - what is in them beyond iperf3's payload: each segment's IPv4 + TCP headers (20 + 32
//!   bytes with timestamps, per segment of at most the clamped MSS ≈ 1.3–1.4 kB: under 4 %),
//!   the TCP handshakes and iperf3's control connection (a few kB of JSON); and iperf3's two
//!   numbers differ by what was in flight when the test ended (its sender counts what it
//!   wrote, its receiver what it read; `-w 128K` keeps that under 1 MiB): the test allows
//!   received ≤ growth ≤ sent × 1.06 + 64 KiB;
//! - the other direction carries only ACKs (well under 10 % of the payload), and each byte
//!   azure sends is a byte stackhub receives (exactly equal growth).
//!
//! `lab down` ends Prometheus.

use hybridnet_tests::http::{encode, get_json};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use testkit::lab::{hybridnet_bin, show, Lab};
use testkit::process::{wait_for, Daemon};

/// The value of `metric{site=…,connection=…}` as Prometheus has it now.
fn query(prom: &str, metric: &str, site: &str, conn: &str) -> Option<u64> {
    let q = format!("{metric}{{site=\"{site}\",connection=\"{conn}\"}}");
    let v = get_json(&format!("{prom}api/v1/query?query={}", encode(&q))).ok()?;
    let r = v["data"]["result"].as_array()?;
    if r.len() != 1 {
        return None;
    }
    r[0]["value"][1].as_str()?.parse().ok()
}

/// The four counters (azure egress, stackhub ingress, azure ingress, stackhub egress) once
/// Prometheus has the gateways' current values: equal to what `lab status` reports, twice,
/// one scrape interval apart (so the transfer has settled and been scraped).
fn settled(lab: &Lab, prom: &str) -> [u64; 4] {
    let live = |lab: &Lab| -> [u64; 4] {
        let s = lab.status();
        let c = |site: &str, name: &str, field: &str| -> u64 {
            s["sites"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == site)
                .and_then(|x| {
                    x["connections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["name"] == name)
                })
                .and_then(|c| c[field].as_u64())
                .unwrap_or_else(|| panic!("no {field} of {site}/{name}"))
        };
        [
            c("azure", "azure-to-stackhub", "egressBytesTransferred"),
            c("stackhub", "stackhub-to-azure", "ingressBytesTransferred"),
            c("azure", "azure-to-stackhub", "ingressBytesTransferred"),
            c("stackhub", "stackhub-to-azure", "egressBytesTransferred"),
        ]
    };
    let scraped = || -> Option<[u64; 4]> {
        Some([
            query(
                prom,
                "hybridnet_tunnel_egress_bytes_total",
                "azure",
                "azure-to-stackhub",
            )?,
            query(
                prom,
                "hybridnet_tunnel_ingress_bytes_total",
                "stackhub",
                "stackhub-to-azure",
            )?,
            query(
                prom,
                "hybridnet_tunnel_ingress_bytes_total",
                "azure",
                "azure-to-stackhub",
            )?,
            query(
                prom,
                "hybridnet_tunnel_egress_bytes_total",
                "stackhub",
                "stackhub-to-azure",
            )?,
        ])
    };
    let mut last = None;
    wait_for(
        Duration::from_secs(20),
        "Prometheus to scrape the settled counters",
        || {
            let p = scraped()?;
            let same = live(lab) == p && last == Some(p);
            last = Some(p);
            std::thread::sleep(Duration::from_millis(1200));
            same.then_some(p)
        },
    )
    .unwrap_or_else(|_| panic!("Prometheus has {last:?}, the gateways {:?}", live(lab)))
}

#[test]
fn prometheus_scrapes_the_tunnel_counters_and_they_grow_by_what_iperf3_sent() {
    let lab = Lab::up_with("examples/hybrid-connection", &["--metrics"]);
    let status = lab.status();
    let prom = status["prometheus"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no prometheus in lab status: {status:#}"))
        .to_string();
    let prom_pid = status["prometheus"]["pid"].as_i64().unwrap();
    let target = status["api"]["metricsUrl"].as_str().unwrap();
    assert_eq!(status["prometheus"]["target"], target);
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    assert!(
        out.contains(&format!("Prometheus: {prom}")),
        "{}",
        show(&lab.up_output)
    );
    assert!(prom.starts_with("http://127.0.0.1:"), "{prom}");
    let cmd = std::fs::read(format!("/proc/{prom_pid}/cmdline")).unwrap();
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    let state = lab.state.join("labs").join(&lab.id).display().to_string();
    assert!(
        cmd.starts_with("prometheus ") && cmd.contains(&format!("--config.file={state}")),
        "Prometheus runs with the lab's own config: {cmd}"
    );

    // Prometheus sees its target up and the lab's connections up.
    let targets = wait_for(Duration::from_secs(15), "the target to be up", || {
        let t = get_json(&format!("{prom}api/v1/targets")).ok()?;
        (t["data"]["activeTargets"][0]["health"] == "up").then_some(t)
    })
    .unwrap();
    assert_eq!(targets["data"]["activeTargets"][0]["scrapeUrl"], target);
    let up = get_json(&format!(
        "{prom}api/v1/query?query={}",
        encode("hybridnet_connection_up")
    ))
    .unwrap();
    let ups: Vec<&Value> = up["data"]["result"].as_array().unwrap().iter().collect();
    assert_eq!(ups.len(), 2, "{up:#}");
    assert!(ups.iter().all(|r| r["value"][1] == "1"), "{up:#}");

    let before = settled(&lab, &prom);
    eprintln!("before iperf3: {before:?}");

    // iperf3: a one-shot server in stackhub/vm1 (our child, ended by PID), 16 MiB from azure/vm1.
    let log = lab.state.join("iperf3-server.log");
    let mut server_cmd = Command::new(hybridnet_bin());
    server_cmd
        .env("HYBRIDNET_STATE_DIR", &lab.state)
        .args(["lab", "exec", "--id", &lab.id, "stackhub/vm1", "--"])
        .args(["iperf3", "-s", "-1", "-p", "5301"]);
    let mut server = Daemon::spawn("iperf3 server", server_cmd, &log).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the iperf3 server to listen",
        || {
            let ss = lab.exec("stackhub/vm1", &["ss", "-ltn", "sport = :5301"]);
            String::from_utf8_lossy(&ss.stdout)
                .contains("5301")
                .then_some(())
        },
    )
    .unwrap();
    let client = lab.exec(
        "azure/vm1",
        &[
            "iperf3", "-c", "10.2.1.4", "-p", "5301", "-n", "16M", "-w", "128K", "-J",
        ],
    );
    assert!(client.status.success(), "iperf3 client: {}", show(&client));
    let report: Value = serde_json::from_slice(&client.stdout).expect("iperf3 -J");
    let sent = report["end"]["sum_sent"]["bytes"].as_u64().unwrap();
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap();
    eprintln!(
        "iperf3: sent {sent} B, received {received} B, {:.0} Mbit/s",
        report["end"]["sum_sent"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    // iperf3's sender counts what it wrote into its socket, its receiver what it read before
    // the test ended; what was still in the socket buffers then (bounded by -w) is the gap.
    assert!(sent >= 16 << 20);
    assert!(
        received <= sent && sent - received < 1 << 20,
        "sent {sent}, received {received}"
    );
    server.stop(Duration::from_secs(5));

    let after = settled(&lab, &prom);
    eprintln!("after iperf3: {after:?}");
    let grew: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let (az_out, sh_in, az_in, sh_out) = (grew[0], grew[1], grew[2], grew[3]);
    eprintln!(
        "azure egress grew by {az_out} B for {received} B of iperf3 payload received (+{:.2} %), {sent} B sent",
        (az_out as f64 / received as f64 - 1.0) * 100.0
    );
    assert!(
        az_out >= received && az_out <= sent + sent * 6 / 100 + (64 << 10),
        "azure's TunnelEgressBytes grew by {az_out} for {received}..{sent} bytes of payload"
    );
    assert_eq!(sh_in, az_out, "stackhub received what azure sent");
    assert_eq!(az_in, sh_out, "and the ACKs back agree");
    assert!(
        az_in < sent / 10,
        "the return direction carried ACKs only: {az_in}"
    );

    // The packet counters grew too, by at least one packet per full segment.
    let packets = query(
        &prom,
        "hybridnet_tunnel_egress_packets_total",
        "azure",
        "azure-to-stackhub",
    )
    .unwrap();
    assert!(packets > sent / 1500, "{packets} packets");

    let down = lab.down();
    assert!(down.status.success(), "{}", show(&down));
    wait_for(Duration::from_secs(5), "Prometheus to end", || {
        let stat = std::fs::read_to_string(format!("/proc/{prom_pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        matches!(state, None | Some(Some('Z'))).then_some(())
    })
    .unwrap();
}
