//! One gateway process per side holding 100 site-to-site connections to the same peer
//! address (distinct identities, PSKs and prefixes): all come up quickly, status lists every
//! one with its Child SA, and a sample of them carries traffic between addresses behind them.
use hybridnet_tests::gw::GatewayProc;
use std::time::{Duration, Instant};
use testkit::netns::{unique_id, veth, Netns};
use testkit::process::{wait_for, Scratch};

const N: usize = 100;

fn config(side_a: bool) -> String {
    let (local, remote) = if side_a {
        ("198.51.100.1", "198.51.100.2")
    } else {
        ("198.51.100.2", "198.51.100.1")
    };
    let mut s = format!("local_address = \"{local}\"\n");
    for i in 1..=N {
        let (l, r, lid, rid) = if side_a {
            (
                format!("10.1.{i}.0/24"),
                format!("10.2.{i}.0/24"),
                format!("a{i}.example"),
                format!("b{i}.example"),
            )
        } else {
            (
                format!("10.2.{i}.0/24"),
                format!("10.1.{i}.0/24"),
                format!("b{i}.example"),
                format!("a{i}.example"),
            )
        };
        s += &format!(
            "[[connection]]\nname = \"c{i}\"\nremote_address = \"{remote}\"\nlocal_id = \"{lid}\"\nremote_id = \"{rid}\"\npsk = \"scale-secret-{i}-{}\"\nlocal_prefixes = [\"{l}\"]\nremote_prefixes = [\"{r}\"]\nike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\nesp_proposals = [\"aes256gcm16\"]\ninitiate = {side_a}\n\n",
            i * 7919
        );
    }
    s
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn hundred_connections_in_one_process() {
    let id = unique_id();
    let gw_a = Netns::new(&format!("hn{id}-gwa")).unwrap();
    let gw_b = Netns::new(&format!("hn{id}-gwb")).unwrap();
    veth(&gw_a, "wan0", &gw_b, "wan0").unwrap();
    gw_a.addr("wan0", "198.51.100.1/24").unwrap();
    gw_b.addr("wan0", "198.51.100.2/24").unwrap();
    let scratch = Scratch::new("scale", &id).unwrap();
    let b = GatewayProc::start(&gw_b, &scratch.path, "gw-b", &config(false)).unwrap();
    let t0 = Instant::now();
    let a = GatewayProc::start(&gw_a, &scratch.path, "gw-a", &config(true)).unwrap();
    let up = wait_for(
        Duration::from_secs(30),
        "all connections established",
        || {
            let st = a.status().ok()?;
            let n = st
                .connections
                .iter()
                .filter(|c| c.state == "established" && c.child_sas.iter().any(|s| s.active))
                .count();
            (n == N).then_some(st)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
    let setup = t0.elapsed();
    assert_eq!(up.connections.len(), N);
    let sb = b.status().unwrap();
    assert_eq!(
        sb.connections
            .iter()
            .filter(|c| c.state == "established")
            .count(),
        N
    );
    // every connection's SPIs mirror the peer's
    for (ca, cb) in up.connections.iter().zip(sb.connections.iter()) {
        assert_eq!(ca.name, cb.name);
        let (x, y) = (&ca.child_sas[0], &cb.child_sas[0]);
        assert_eq!(
            (&x.spi_in, &x.spi_out),
            (&y.spi_out, &y.spi_in),
            "{}",
            ca.name
        );
    }
    // traffic over a sample of connections: addresses inside each side's prefixes
    for i in [1usize, 37, 100] {
        gw_a.exec(
            "ip",
            &["addr", "add", &format!("10.1.{i}.1/32"), "dev", "lo"],
        )
        .unwrap();
        gw_b.exec(
            "ip",
            &["addr", "add", &format!("10.2.{i}.1/32"), "dev", "lo"],
        )
        .unwrap();
        let out = gw_a
            .exec_unchecked(
                "ping",
                &[
                    "-c",
                    "2",
                    "-i",
                    "0.2",
                    "-W",
                    "2",
                    "-I",
                    &format!("10.1.{i}.1"),
                    &format!("10.2.{i}.1"),
                ],
            )
            .unwrap();
        assert!(
            out.status.success(),
            "ping over c{i}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = a.connection(&format!("c{i}")).unwrap();
        assert!(
            c.inbound.packets >= 2 && c.outbound.packets >= 2,
            "c{i}: {:?} {:?}",
            c.inbound,
            c.outbound
        );
    }
    let idle = a.connection("c2").unwrap();
    assert_eq!(
        idle.outbound.packets, 0,
        "traffic went over the wrong connection"
    );
    eprintln!(
        "{N} connections up in {setup:?} ({:.0} tunnels/s, including process start); RSS gw-a {} KiB, gw-b {} KiB",
        N as f64 / setup.as_secs_f64(),
        rss_kb(a.pid()),
        rss_kb(b.pid())
    );
    assert!(setup < Duration::from_secs(20), "setup took {setup:?}");
}
