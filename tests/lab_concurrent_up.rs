//! Issue 10, item 9: two `lab up` of one directory at the same moment build one lab. Both
//! processes are held before they start and released together (SIGSTOP before exec, then
//! SIGCONT to both), six times; each time both succeed, the registry holds exactly one
//! lab for the directory with a consistent lab.json and no temporary files, and one
//! `lab down` removes every namespace and the state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use testkit::lab;
use testkit::lab::{hybridnet, netns_with_prefix, repo_root, scratch_dir, show};

/// Removes every lab registered under the state root (and its namespaces), even on panic.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in registry_entries(&self.0) {
            let _ = hybridnet(&self.0, &["lab", "down", "--id", &id]);
            for ns in netns_with_prefix(&format!("hn-{id}-")) {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every name in the registry directory except its lock file.
fn registry_entries(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state.join("labs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `lab up --no-gateways DIR`, stopped before it starts: a shell stops itself (SIGSTOP) and,
/// continued, executes `hybridnet` in its place (same PID).
fn spawn_stopped(state: &Path, dir: &Path) -> Child {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -STOP $$ && exec \"$@\"", "sh"])
        .arg(lab::hybridnet_bin())
        .args(["lab", "up", "--no-gateways", dir.to_str().unwrap()])
        .env("HYBRIDNET_STATE_DIR", state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: waitpid(2) with WUNTRACED on our own child: reports the stop, reaps nothing.
    let r = unsafe { libc::waitpid(child.id() as i32, &mut status, libc::WUNTRACED) };
    assert!(
        r == child.id() as i32 && libc::WIFSTOPPED(status),
        "the child stopped"
    );
    child
}

#[test]
fn two_lab_up_of_one_directory_at_once_build_one_lab() {
    let state = scratch_dir("concurrent");
    let _guard = Cleanup(state.clone());
    let dir = repo_root().join("examples/two-sites");
    let canon = std::fs::canonicalize(&dir).unwrap();
    for round in 0..6 {
        let a = spawn_stopped(&state, &dir);
        let b = spawn_stopped(&state, &dir);
        for c in [&a, &b] {
            // SAFETY: kill(2) on our own stopped children, by PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success(), "round {round}, first:\n{}", show(&a));
        assert!(b.status.success(), "round {round}, second:\n{}", show(&b));

        let entries = registry_entries(&state);
        assert_eq!(
            entries.len(),
            1,
            "round {round}: one lab and nothing else in the registry: {entries:?}\n{}\n{}",
            show(&a),
            show(&b)
        );
        let id = entries[0].clone();
        let lab_dir = state.join("labs").join(&id);
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(lab_dir.join("lab.json")).unwrap())
                .expect("lab.json is whole JSON");
        assert_eq!(rec["id"], id.as_str());
        assert_eq!(rec["sourceDir"], canon.to_str().unwrap());
        assert_eq!(rec["sites"].as_array().unwrap().len(), 2, "{rec:#}");
        let stray: Vec<String> = std::fs::read_dir(&lab_dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(
            stray.is_empty(),
            "round {round}: temp files left: {stray:?}"
        );
        for o in [&a, &b] {
            assert!(
                String::from_utf8_lossy(&o.stdout).contains(&format!("lab {id} is up")),
                "round {round}: both report the one lab:\n{}",
                show(o)
            );
        }
        // internet + 2 VNet routers + 6 VMs, working.
        assert_eq!(netns_with_prefix(&format!("hn-{id}-")).len(), 9);
        let ping = hybridnet(
            &state,
            &[
                "lab",
                "exec",
                "--id",
                &id,
                "azure/vm1",
                "--",
                "ping",
                "-c1",
                "-W2",
                "-q",
                "10.1.2.4",
            ],
        );
        assert!(ping.status.success(), "{}", show(&ping));

        let down = hybridnet(&state, &["lab", "down", dir.to_str().unwrap()]);
        assert!(down.status.success(), "{}", show(&down));
        assert!(netns_with_prefix(&format!("hn-{id}-")).is_empty());
        let left = registry_entries(&state);
        assert!(
            left.is_empty(),
            "round {round}: one down removed it all: {left:?}"
        );
    }
}
