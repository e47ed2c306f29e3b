//! Issue 17, CPU placement of the data path: a quiet gateway's data-path thread is kept on one
//! CPU (the lowest the process may use, the same for both gateways of the lab, so their
//! wake-ups queue behind each other instead of interrupting another CPU), a busy one gets every
//! CPU back at once and is pinned again once traffic stops; with `cpu_placement = "kernel"`
//! it is never pinned. Read from the kernel's side (`Cpus_allowed_list` of the gateway's main
//! thread, which runs the data-path loop), while pings and an iperf3 TCP run cross the tunnel.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::{ping, ping_until_reply};
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::{Duration, Instant};
use testkit::process::{Daemon, Scratch};

/// The CPUs the kernel lets task `pid` (its main thread) run on.
fn main_thread_cpus(pid: u32) -> Vec<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim();
    list.split(',')
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

/// Waits until `pid`'s main thread may run on exactly `want`; fails with what it saw.
fn wait_cpus(pid: u32, want: &[usize], timeout: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let now = main_thread_cpus(pid);
        if now == want {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: CPUs {now:?} after {:?}, want {want:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_quiet_data_path_stays_on_one_cpu_and_a_busy_one_gets_them_all() {
    let all = main_thread_cpus(std::process::id());
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("cpuplace", &net.id).unwrap();
    let psk = random_psk();
    let (ike, esp) = (["aes256gcm16-prfsha384-ecp384"], ["aes256gcm16"]);
    let toml_b = hybridnet_b(&psk, false, &ike, &esp).to_toml();
    let toml_a = hybridnet_a(&psk, true, &ike, &esp).to_toml();
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b", &toml_b).unwrap();
    let mut a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &toml_a).unwrap();
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10)).unwrap();
    assert_eq!(a.status().unwrap().cpu_placement, "adaptive");
    if all.len() < 2 {
        // one CPU: nothing to choose, the thread keeps it
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(main_thread_cpus(a.pid()), all);
        return;
    }
    let quiet = [all[0]];

    // quiet: both gateways on the lowest CPU, and pings still cross
    for (g, name) in [(&a, "gw-a"), (&b, "gw-b")] {
        wait_cpus(g.pid(), &quiet, Duration::from_secs(5), name);
    }
    ping(&net.vm_a, addrs::VM_B, 3).unwrap();

    // busy: TCP as fast as the gateways go (iperf3, 6 s) spreads them at once
    let mut server_cmd = net.vm_b.command("iperf3");
    server_cmd.args(["-s", "-1", "-p", "5471"]);
    let mut server = Daemon::spawn(
        "iperf3 server",
        server_cmd,
        &scratch.join("iperf3-server.log"),
    )
    .unwrap();
    ping(&net.vm_a, addrs::VM_B, 1).unwrap();
    let vm_a = net.vm_a.name().to_string();
    let client = std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &vm_a,
                "iperf3",
                "-c",
                addrs::VM_B,
                "-p",
                "5471",
            ])
            .args(["-t", "6", "--connect-timeout", "3000"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    });
    wait_cpus(a.pid(), &all, Duration::from_secs(5), "gw-a under TCP");
    wait_cpus(b.pid(), &all, Duration::from_secs(5), "gw-b under TCP");
    let report = client.join().unwrap();
    server.stop(Duration::from_secs(2));
    assert!(
        report.contains("receiver") && !report.contains("error"),
        "iperf3 did not run through the tunnel:\n{report}"
    );
    // and once it stops, pinned again
    wait_cpus(a.pid(), &quiet, Duration::from_secs(5), "gw-a after TCP");

    // cpu_placement = "kernel": the scheduler alone, never pinned (gw-a again, which initiates
    // at start; gw-b answers and stays adaptive)
    a.stop();
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a-kernel",
        &format!("cpu_placement = \"kernel\"\n{toml_a}"),
    )
    .unwrap();
    a.wait_established("site-b", Duration::from_secs(30))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10)).unwrap();
    assert_eq!(a.status().unwrap().cpu_placement, "kernel");
    std::thread::sleep(Duration::from_secs(3));
    ping(&net.vm_a, addrs::VM_B, 3).unwrap();
    assert_eq!(
        main_thread_cpus(a.pid()),
        all,
        "gw-a with cpu_placement = \"kernel\""
    );
    wait_cpus(
        b.pid(),
        &quiet,
        Duration::from_secs(5),
        "gw-b, adaptive, quiet again",
    );
}
