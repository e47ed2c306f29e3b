//! Issue 10, item 5: the lab supervises its gateway processes. On the seed, the Azure Stack
//! Hub side's gateway process (the supervisor's child) is killed with SIGKILL; within seconds
//! its supervisor starts a new one (new pid, same supervisor), `lab status --json` reports one
//! restart with the reason, both connections are Connected again and VM-to-VM ping across the
//! tunnel works, without anyone running `lab up`. A `lab up` afterwards leaves the healthy
//! gateway alone, and `lab down` leaves no supervisor and no gateway process.

use hybridnet_tests::e2e::wait_both_connected;
use serde_json::Value;
use std::time::{Duration, Instant};
use testkit::lab::{show, Lab};
use testkit::process::{wait_for, wait_for_every};

/// The gateway `stackhub-gw`'s entry in `lab status --json`.
fn gateway_status(lab: &Lab) -> Value {
    let status = lab.status();
    status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stackhub")
        .and_then(|s| {
            s["otherResources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "stackhub-gw")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no stackhub-gw in {status:#}"))
}

/// The command line of `pid` with NULs as spaces ("" when it is gone).
fn cmdline(pid: i64) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// Parent pid of `pid`, from /proc.
fn ppid(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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

/// Pids of every process whose command line mentions this lab's state (its supervisors and
/// gateway processes name their configuration files there).
fn lab_processes(lab: &Lab) -> Vec<i64> {
    let marker = lab.state.join("labs").join(&lab.id).display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|p| running(*p) && cmdline(*p).contains(&marker))
        .collect()
}

#[test]
fn a_killed_gateway_process_is_restarted_by_its_supervisor() {
    let lab = Lab::up("examples/hybrid-connection");
    let before = gateway_status(&lab);
    let process = &before["gatewayProcess"];
    let supervisor = process["supervisorPid"].as_i64().expect("supervised");
    let child = process["pid"].as_i64().expect("the gateway process runs");
    assert_eq!(process["running"], true, "{before:#}");
    assert_eq!(process["restarts"], 0, "{before:#}");
    assert!(
        cmdline(supervisor).contains("gateway supervise"),
        "{}",
        cmdline(supervisor)
    );
    assert!(cmdline(child).contains("gateway run"), "{}", cmdline(child));
    assert_eq!(
        ppid(child),
        Some(supervisor),
        "the gateway is the supervisor's child"
    );

    // SAFETY: kill(2) on this test's lab's gateway process (checked above by its command line
    // and parent).
    assert_eq!(unsafe { libc::kill(child as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();

    let mut last = Value::Null;
    let restarted = wait_for(Duration::from_secs(5), "a new gateway process", || {
        last = gateway_status(&lab);
        let p = &last["gatewayProcess"];
        (p["running"] == true && p["pid"].as_i64().is_some_and(|n| n != child))
            .then(|| last.clone())
    })
    .unwrap_or_else(|_| panic!("no new gateway process 5 s after the kill:\n{last:#}"));
    eprintln!("restarted after {:?}", killed.elapsed());
    let p = &restarted["gatewayProcess"];
    let new_child = p["pid"].as_i64().unwrap();
    assert_eq!(
        p["supervisorPid"].as_i64(),
        Some(supervisor),
        "{restarted:#}"
    );
    assert_eq!(p["restarts"], 1, "{restarted:#}");
    assert_eq!(p["lastExit"]["pid"].as_i64(), Some(child), "{restarted:#}");
    assert_eq!(p["lastExit"]["signal"], libc::SIGKILL, "{restarted:#}");
    let reason = p["lastExit"]["reason"].as_str().unwrap();
    assert!(reason.contains("SIGKILL"), "{reason}");
    assert!(cmdline(new_child).contains("gateway run"));
    assert_eq!(ppid(new_child), Some(supervisor));
    assert!(!running(child), "the killed process is gone (reaped)");

    wait_both_connected(&lab, Duration::from_secs(20));
    eprintln!("Connected again {:?} after the kill", killed.elapsed());
    // no pause between tries: each ping waits up to a second for its reply
    wait_for_every(
        Duration::ZERO,
        Duration::from_secs(10),
        "a ping across the tunnel after the restart",
        || {
            (lab.ping("azure/vm1", "10.2.1.4") && lab.ping("stackhub/vm1", "10.1.1.4"))
                .then_some(())
        },
    )
    .unwrap();
    let text = lab.run(&["lab", "status", "--id", &lab.id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("process {new_child} (supervisor {supervisor}), 1 restart, last: killed by signal 9 (SIGKILL)")),
        "{text}"
    );

    // `lab up` leaves a healthy supervised gateway alone.
    let again = lab.up_again();
    assert!(again.status.success(), "{}", show(&again));
    let p = gateway_status(&lab)["gatewayProcess"].clone();
    assert_eq!(p["pid"].as_i64(), Some(new_child), "{p:#}");
    assert_eq!(p["restarts"], 1, "{p:#}");

    let procs = lab_processes(&lab);
    assert_eq!(
        procs.len(),
        4,
        "two supervisors and two gateways: {procs:?}"
    );
    let down = lab.down();
    assert!(down.status.success(), "{}", show(&down));
    let left = lab_processes(&lab);
    assert!(left.is_empty(), "left running after lab down: {left:?}");
    assert!(!running(supervisor) && !running(new_child));
}
