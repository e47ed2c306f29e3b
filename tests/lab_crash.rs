//! `lab down` cleans up after a `lab up` that was killed (-9) half-way: everything is found by
//! the lab-id prefix and the state directory, and nothing is left behind.

use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::lab::{
    hybridnet, hybridnet_cmd, netns_with_prefix, registered_id, repo_root, scratch_dir, show,
};

struct Cleanup(std::path::PathBuf, Option<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(id) = &self.1 {
            let _ = hybridnet(&self.0, &["lab", "down", "--id", id]);
            for ns in netns_with_prefix(&format!("hn-{id}-")) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &ns])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn down_after_killed_up() {
    let state = scratch_dir("crash");
    let mut guard = Cleanup(state.clone(), None);
    let dir = repo_root().join("examples/two-sites");
    let mut child = hybridnet_cmd(&state, &["lab", "up", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Kill it (SIGKILL, by PID) as soon as it has started creating namespaces.
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(id) = registered_id(&state) {
            guard.1 = Some(id.clone());
            if !netns_with_prefix(&format!("hn-{id}-")).is_empty() {
                break id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lab up never created a namespace"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "lab up finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let left = netns_with_prefix(&format!("hn-{id}-"));
    assert!(!left.is_empty());

    // The CLI state says the lab exists; down (by directory) removes everything.
    let out = hybridnet(&state, &["lab", "down", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(netns_with_prefix(&format!("hn-{id}-")).is_empty());
    assert!(!state.join("labs").join(&id).exists());

    // Even with the state directory gone, `down --id` finds namespaces by prefix.
    let out = hybridnet(&state, &["lab", "up", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let id2 = registered_id(&state).unwrap();
    guard.1 = Some(id2.clone());
    std::fs::remove_dir_all(state.join("labs")).unwrap();
    assert!(!netns_with_prefix(&format!("hn-{id2}-")).is_empty());
    let out = hybridnet(&state, &["lab", "down", "--id", &id2]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(netns_with_prefix(&format!("hn-{id2}-")).is_empty());
}
