//! Issue 10 (4): the control socket was served on the data-path loop with a 200 ms read
//! timeout, so 25 idle local clients pushed tunnel RTT to 1–5 s. Now clients are served off
//! the data path: with 25 idle clients (re)connecting all the time, ping across the tunnel
//! stays fast and `lab status` still answers; the socket is 0600.

use hybridnet_tests::hostile::lab_gateway;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::lab::{show, Lab};

/// The largest round-trip time of `count` pings, in ms.
fn max_rtt(lab: &Lab, count: &str) -> f64 {
    let out = lab.exec(
        "azure/vm1",
        &["ping", "-c", count, "-i", "0.05", "-q", "10.2.1.4"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // rtt min/avg/max/mdev = 0.101/0.170/0.254/0.046 ms
    text.lines()
        .find_map(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split('/').nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in {text}"))
}

#[test]
fn idle_control_clients_do_not_slow_the_tunnel() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let azure = lab_gateway(&lab.state, &lab.id, "azure").unwrap();
    let mode = std::fs::metadata(&azure.record.control)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");
    let quiet = max_rtt(&lab, "10");
    let stop = Arc::new(AtomicBool::new(false));
    let (path, st) = (azure.record.control.clone(), stop.clone());
    // 25 clients that connect and never say anything, reconnecting when dropped
    let idlers = std::thread::spawn(move || {
        let mut held: Vec<(Instant, UnixStream)> = Vec::new();
        let mut opened = 0;
        while !st.load(Ordering::Relaxed) {
            held.retain(|(t, _)| t.elapsed() < Duration::from_secs(3));
            while held.len() < 25 {
                if let Ok(s) = UnixStream::connect(&path) {
                    held.push((Instant::now(), s));
                    opened += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        opened
    });
    std::thread::sleep(Duration::from_millis(300));
    let busy = max_rtt(&lab, "40");
    let t0 = Instant::now();
    let status = lab.status();
    let status_took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let opened = idlers.join().unwrap();
    eprintln!("max RTT {quiet} ms quiet, {busy} ms with {opened} idle control clients; lab status in {status_took:?}");
    assert!(
        busy < 100.0,
        "max RTT {busy} ms with idle control clients (quiet: {quiet} ms)"
    );
    assert!(status_took < Duration::from_secs(3), "{status_took:?}");
    for s in status["sites"].as_array().unwrap() {
        for c in s["connections"].as_array().unwrap() {
            assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
        }
    }
}
