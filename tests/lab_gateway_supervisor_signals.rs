//! Issue 10, item 5: signals to a lab gateway's supervisor. On the seed: SIGHUP to the Azure
//! Stack Hub side's supervisor reaches its gateway process, which re-reads its configuration
//! (same process, tunnel untouched); SIGTERM to the Azure side's supervisor reaches its
//! gateway, which sends DELETE (the peer reports the tunnel closed by its peer), and both end
//! without a restart; SIGKILL to the other supervisor takes its gateway process with it (no
//! orphan holding the ports).

use hybridnet_tests::e2e::{conn, wait_conn};
use serde_json::Value;
use std::time::Duration;
use testkit::lab::Lab;
use testkit::process::{wait_for, wait_for_every};

/// The `gatewayProcess` of gateway `name` in site `site`, from `lab status --json`.
fn process(lab: &Lab, site: &str, name: &str) -> Value {
    let status = lab.status();
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == site)
        .and_then(|s| {
            s["otherResources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
        })
        .map(|g| g["gatewayProcess"].clone())
        .unwrap_or_else(|| panic!("no {site}/{name} in {status:#}"))
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits up to `timeout` for `pid` to be gone.
fn gone_within(pid: i64, timeout: Duration) -> bool {
    wait_for_every(
        Duration::from_millis(20),
        timeout,
        "the process to end",
        || (!running(pid)).then_some(()),
    )
    .is_ok()
}

/// Sends `sig` to a supervisor of this test's lab (its pid comes from `lab status`).
fn signal(pid: i64, sig: libc::c_int) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("gateway\0supervise\0"),
        "pid {pid} is a supervisor"
    );
    // SAFETY: kill(2) on a gateway supervisor of this test's own lab (checked above).
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn hup_reloads_term_stops_with_delete_kill_leaves_no_orphan() {
    let lab = Lab::up("examples/hybrid-connection");
    let az = process(&lab, "azure", "azure-gw");
    let sh = process(&lab, "stackhub", "stackhub-gw");
    let (az_sup, az_child) = (
        az["supervisorPid"].as_i64().unwrap(),
        az["pid"].as_i64().unwrap(),
    );
    let (sh_sup, sh_child) = (
        sh["supervisorPid"].as_i64().unwrap(),
        sh["pid"].as_i64().unwrap(),
    );
    let log = std::path::PathBuf::from(sh["log"].as_str().unwrap());
    let reloads = |text: &str| text.matches("config reloaded").count();
    let before = reloads(&std::fs::read_to_string(&log).unwrap());

    // SIGHUP: forwarded; the same gateway process re-reads its configuration.
    signal(sh_sup, libc::SIGHUP);
    wait_for(
        Duration::from_secs(5),
        "a reload logged after SIGHUP",
        || (reloads(&std::fs::read_to_string(&log).unwrap()) != before).then_some(()),
    )
    .unwrap();
    let sh = process(&lab, "stackhub", "stackhub-gw");
    assert_eq!(sh["pid"].as_i64(), Some(sh_child), "{sh:#}");
    assert_eq!(sh["restarts"], 0, "{sh:#}");
    let c = conn(&lab.status(), "stackhub", "stackhub-to-azure");
    assert_eq!(c["connectionStatus"], "Connected", "{c:#}");

    // SIGTERM: forwarded; the gateway sends DELETE and exits, and so does its supervisor.
    signal(az_sup, libc::SIGTERM);
    let (c, took) = wait_conn(
        &lab,
        "stackhub",
        "stackhub-to-azure",
        Duration::from_secs(5),
        "closed by its peer",
        |c| {
            c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("IKE SA deleted by peer"))
        },
    );
    eprintln!("the peer saw the DELETE after {took:?}: {}", c["reason"]);
    assert!(
        gone_within(az_child, Duration::from_secs(3)),
        "azure's gateway stopped"
    );
    assert!(
        gone_within(az_sup, Duration::from_secs(3)),
        "azure's supervisor stopped"
    );
    let az = process(&lab, "azure", "azure-gw");
    assert_eq!(az["running"], false, "{az:#}");
    assert_eq!(az["restarts"], 0, "a requested stop is no restart: {az:#}");

    // SIGKILL: the supervisor cannot forward anything, and its child dies with it.
    signal(sh_sup, libc::SIGKILL);
    assert!(gone_within(sh_sup, Duration::from_secs(2)));
    assert!(
        gone_within(sh_child, Duration::from_secs(2)),
        "the gateway process outlived its supervisor"
    );
    let c = conn(&lab.status(), "stackhub", "stackhub-to-azure");
    assert!(
        c["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not running")),
        "{c:#}"
    );
}
