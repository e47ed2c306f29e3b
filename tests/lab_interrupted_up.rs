//! Issue 10, item 6: every step of `lab up` is safe to interrupt and re-run. `lab up` of the
//! seed is killed (SIGKILL, by PID) at random moments, twice in a row, then run to the end:
//! it converges and works (both connections Connected, ping and verified TCP across the
//! tunnel), with one lab, its 7 namespaces, no placeholder in /run/netns and exactly one
//! supervisor and one gateway process per VNet gateway; `lab down` then leaves nothing. Four
//! rounds, each from scratch; the kill moments are printed so that a failure can be replayed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::lab::{
    hybridnet, hybridnet_cmd, netns_with_prefix, registered_id, repo_root, scratch_dir, show,
};

/// Removes whatever a round left (by the lab id), also when the test panics.
struct Cleanup {
    state: PathBuf,
    ids: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut ids = self.ids.clone();
        ids.extend(registered(&self.state));
        for id in &ids {
            let _ = hybridnet(&self.state, &["lab", "down", "--id", id]);
            for ns in netns_with_prefix(&format!("hn-{id}-")) {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
                let _ = std::fs::remove_file(Path::new("/run/netns").join(&ns));
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// xorshift64*: random enough for kill moments, seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Starts `lab up DIR` and kills it (SIGKILL, by PID) after `after`; true if it was killed,
/// false if it had already finished.
fn kill_up_after(state: &Path, dir: &Path, after: Duration) -> bool {
    let mut child = hybridnet_cmd(state, &["lab", "up", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

/// Starts `lab up DIR` and kills it (SIGKILL, by PID) the moment the first file of its
/// namespaces appears in /run/netns: `ip netns add` is then creating namespaces, most of
/// which time is spent between creating a name's file and mounting the namespace on it.
/// True if it was killed.
fn kill_up_in_netns_add(state: &Path, dir: &Path) -> bool {
    let mut child = hybridnet_cmd(state, &["lab", "up", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Some(id) = registered_id(state) {
            if !netns_with_prefix(&format!("hn-{id}-")).is_empty() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lab up never created a namespace"
        );
        std::thread::yield_now();
    }
    let _ = child.kill();
    child.wait().unwrap();
    true
}

/// Command lines (NUL-separated) of the processes living in namespace `ns`.
fn cmdlines_in(ns: &str) -> Vec<Vec<u8>> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .filter(|c| !c.is_empty())
        .collect()
}

fn count(cmdlines: &[Vec<u8>], needle: &[u8]) -> usize {
    cmdlines
        .iter()
        .filter(|c| c.windows(needle.len()).any(|w| w == needle))
        .count()
}

/// Entries of the registry that are labs (not the registry's own lock file).
fn registered(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state.join("labs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn lab_up_killed_at_random_moments_converges_and_works() {
    let state = scratch_dir("interrupted");
    let mut guard = Cleanup {
        state: state.clone(),
        ids: Vec::new(),
    };
    let dir = repo_root().join("examples/hybrid-connection");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    for round in 0..4u64 {
        // The first kill falls in `ip netns add` (round 0), else anywhere in the building of a
        // fresh lab (deployments, namespaces, gateway processes: about 1.5 s here), spread over
        // the rounds; the second interrupts the run that picks up what the first left.
        let first = Duration::from_millis(round * 375 + rng.below(375));
        let second = Duration::from_millis(rng.below(1000));
        let k1 = if round == 0 {
            kill_up_in_netns_add(&state, &dir)
        } else {
            kill_up_after(&state, &dir, first)
        };
        let left = registered_id(&state)
            .map(|id| netns_with_prefix(&format!("hn-{id}-")))
            .unwrap_or_default();
        let placeholders: Vec<&String> = left
            .iter()
            .filter(|n| {
                !Command::new("ip")
                    .args(["-n", n, "link", "show", "lo"])
                    .output()
                    .unwrap()
                    .status
                    .success()
            })
            .collect();
        eprintln!("round {round}: after the first kill, placeholders {placeholders:?}");
        if let Some(id) = registered_id(&state) {
            if !guard.ids.contains(&id) {
                guard.ids.push(id);
            }
        }
        let k2 = kill_up_after(&state, &dir, second);
        eprintln!(
            "round {round}: killed {} ({}), then after {second:?} ({})",
            if round == 0 {
                "in ip netns add".to_string()
            } else {
                format!("after {first:?}")
            },
            if k1 { "killed" } else { "had finished" },
            if k2 { "killed" } else { "had finished" }
        );

        let t = Instant::now();
        let out = hybridnet(&state, &["lab", "up", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "round {round}: lab up after the kills:\n{}",
            show(&out)
        );
        eprintln!("round {round}: converged in {:?}", t.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("Connected, stackhub/stackhub-to-azure Connected")
                && stdout.contains("TCP azure/vm1 -> stackhub/vm1"),
            "round {round}: verified end to end:\n{}",
            show(&out)
        );
        let labs = registered(&state);
        assert_eq!(labs.len(), 1, "round {round}: one lab only: {labs:?}");
        let id = labs[0].clone();
        if !guard.ids.contains(&id) {
            guard.ids.push(id.clone());
        }
        let entries = netns_with_prefix(&format!("hn-{id}-"));
        assert_eq!(entries.len(), 7, "round {round}: {entries:?}");
        for ns in &entries {
            let ok = Command::new("ip")
                .args(["-n", ns, "link", "show", "lo"])
                .output()
                .unwrap();
            assert!(ok.status.success(), "round {round}: {ns} is a namespace");
        }
        for gw in ["azure-gw-azure-gw", "stackhub-gw-stackhub-gw"] {
            let ns = format!("hn-{id}-{gw}");
            let procs = cmdlines_in(&ns);
            assert_eq!(
                count(&procs, b"gateway\0run\0"),
                1,
                "round {round}: one gateway process in {ns}"
            );
            assert_eq!(
                count(&procs, b"gateway\0supervise\0"),
                1,
                "round {round}: one supervisor in {ns}"
            );
        }
        for (from, to) in [("azure/vm1", "10.2.1.4"), ("stackhub/vm1", "10.1.1.4")] {
            let out = hybridnet(
                &state,
                &[
                    "lab", "exec", "--id", &id, from, "--", "ping", "-c1", "-W2", "-q", to,
                ],
            );
            assert!(out.status.success(), "round {round}: ping {from} -> {to}");
        }

        let down = hybridnet(&state, &["lab", "down", "--id", &id]);
        assert!(down.status.success(), "round {round}: {}", show(&down));
        let left = netns_with_prefix(&format!("hn-{id}-"));
        assert!(left.is_empty(), "round {round}: left {left:?}");
        assert!(
            registered(&state).is_empty(),
            "round {round}: state removed"
        );
        guard.ids.clear();
    }
}
