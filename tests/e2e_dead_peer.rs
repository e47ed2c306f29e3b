//! Broken on purpose: the Azure Stack Hub gateway is killed — its supervisor with SIGKILL,
//! which takes the gateway process with it (SIGKILL too: no DELETE, no restart).
//! With `dpdTimeoutSeconds` 9 on both connections, Azure's connection reports NotConnected
//! ("stopped answering") within the DPD timeout; `lab up` again restarts the dead gateway
//! and both connections are Connected again, with traffic.

use hybridnet_tests::e2e;
use hybridnet_tests::e2e::{redeploy_connection, wait_both_connected, wait_conn};
use std::time::{Duration, Instant};
use testkit::lab::{show, Lab};

const DPD: u64 = 9;

#[test]
fn a_killed_peer_gateway_is_noticed_within_the_dpd_timeout_and_recovers() {
    let lab = Lab::up_copy("examples/hybrid-connection");
    let dpd = format!("dpdTimeoutSeconds={DPD}");
    redeploy_connection(&lab, "azure", &[&dpd]);
    redeploy_connection(&lab, "stackhub", &[&dpd]);
    wait_both_connected(&lab, Duration::from_secs(15));
    let shown = e2e::conn(&lab.status(), "azure", "azure-to-stackhub");
    assert_eq!(
        shown["resource"]["properties"]["dpdTimeoutSeconds"], DPD,
        "{shown:#}"
    );
    assert!(lab.ping("azure/vm1", "10.2.1.4"));

    let record = lab
        .state
        .join("labs")
        .join(&lab.id)
        .join("gateways/stackhub--stackhub-gw.json");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let pid = rec["pid"].as_i64().unwrap() as i32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(&lab.id),
        "pid {pid} is this lab's gateway"
    );
    // SAFETY: kill(2) on the gateway supervisor this test's lab started (checked above).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let killed = Instant::now();

    let (c, _) = wait_conn(
        &lab,
        "azure",
        "azure-to-stackhub",
        Duration::from_secs(DPD + 6),
        "NotConnected",
        |c| c["connectionStatus"] == "NotConnected",
    );
    let noticed = killed.elapsed();
    eprintln!(
        "azure noticed the dead peer after {noticed:?}: {}",
        c["reason"]
    );
    assert!(
        noticed <= Duration::from_secs(DPD + 1),
        "NotConnected only after {noticed:?} (DPD timeout {DPD} s)"
    );
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.contains("198.51.100.1")
            && (reason.contains("stopped answering") || reason.contains("unreachable")),
        "{reason}"
    );
    let st = e2e::conn(&lab.status(), "stackhub", "stackhub-to-azure");
    assert_eq!(
        st["connectionStatus"], "Unknown",
        "no process, no status: {st:#}"
    );
    assert!(
        st["reason"].as_str().unwrap().contains("not running"),
        "{st:#}"
    );

    let again = lab.up_again();
    assert!(
        again.status.success(),
        "lab up after the crash:\n{}",
        show(&again)
    );
    let back = Instant::now();
    wait_both_connected(&lab, Duration::from_secs(15));
    eprintln!("Connected again {:?} after lab up returned", back.elapsed());
    assert!(lab.ping("azure/vm1", "10.2.1.4"));
    assert!(lab.ping("stackhub/vm1", "10.1.1.4"));
}
