//! Issue 10, item 10: with two labs up and a shell in neither lab's directory, every command
//! that names no lab (`lab status`, `lab status --json`, `lab exec`, `lab down`, `deploy`,
//! `vpn-connection list|show|device-config`) refuses with an error that lists both labs (id
//! and directory) and says how to choose, and changes nothing. Naming the lab (`--id`, the
//! directory, or a shell inside the lab's directory) works.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::lab::{
    copy_tree, hybridnet, hybridnet_cmd, netns_with_prefix, repo_root, scratch_dir, show,
};

/// Takes down every lab registered under the state root, even when the test panics.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids: Vec<String> = std::fs::read_dir(self.0.join("labs"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let _ = hybridnet(&self.0, &["lab", "down", "--id", &id]);
            for ns in netns_with_prefix(&format!("hn-{id}-")) {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `hybridnet ARGS…` run from `cwd`.
fn run_in(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    hybridnet_cmd(state, args)
        .current_dir(cwd)
        .output()
        .expect("run hybridnet")
}

/// `lab up --no-gateways DIR`; returns the id it printed.
fn up(state: &Path, dir: &Path) -> String {
    let out = hybridnet(
        state,
        &["lab", "up", "--no-gateways", dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("lab ") && l.contains(" is up"))
        .unwrap_or_else(|| panic!("no 'lab ID is up' line:\n{}", show(&out)));
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn commands_that_name_no_lab_refuse_when_several_labs_run() {
    let state = scratch_dir("several");
    let _guard = Cleanup(state.clone());
    let (dir_a, dir_b, elsewhere) = (state.join("a"), state.join("b"), state.join("elsewhere"));
    copy_tree(&repo_root().join("examples/two-sites"), &dir_a);
    copy_tree(&repo_root().join("examples/two-sites"), &dir_b);
    std::fs::create_dir_all(&elsewhere).unwrap();
    let a = up(&state, &dir_a);
    let b = up(&state, &dir_b);
    assert_ne!(a, b);
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    let (canon_a, canon_b) = (canon(&dir_a), canon(&dir_b));
    let template = dir_a.join("templates/azure-vms.json");
    let template = template.to_str().unwrap();

    let unnamed: Vec<Vec<&str>> = vec![
        vec!["lab", "status"],
        vec!["lab", "status", "--json"],
        vec!["lab", "exec", "azure/vm1", "--", "true"],
        vec!["lab", "down"],
        vec![
            "deploy",
            "--site",
            "azure",
            template,
            "--set",
            "vnetName=azure-vnet",
        ],
        vec!["vpn-connection", "list", "--site", "azure"],
        vec![
            "vpn-connection",
            "show",
            "--site",
            "azure",
            "--name",
            "azure-to-stackhub",
        ],
        vec![
            "vpn-connection",
            "device-config",
            "--site",
            "azure",
            "--name",
            "azure-to-stackhub",
            "--vendor",
            "strongswan",
        ],
    ];
    for args in &unnamed {
        let out = run_in(&state, &elsewhere, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "`{}` must refuse:\n{}",
            args.join(" "),
            show(&out)
        );
        for want in [
            a.as_str(),
            b.as_str(),
            canon_a.as_str(),
            canon_b.as_str(),
            "--id",
        ] {
            assert!(
                err.contains(want),
                "`{}`: the error lacks {want:?}:\n{}",
                args.join(" "),
                show(&out)
            );
        }
        assert!(
            out.stdout.is_empty(),
            "`{}` printed a lab anyway:\n{}",
            args.join(" "),
            show(&out)
        );
    }
    // Nothing changed: both labs are whole, no deployment was added.
    for id in [&a, &b] {
        assert_eq!(netns_with_prefix(&format!("hn-{id}-")).len(), 9, "lab {id}");
    }
    let status = |args: &[&str], cwd: &Path| {
        let out = run_in(&state, cwd, args);
        assert!(out.status.success(), "{}", show(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let st = status(&["lab", "status", "--json", "--id", &a], &elsewhere);
    assert_eq!(st["id"], a.as_str());
    let deployments = st["sites"][0]["deployments"].as_array().unwrap().len();
    assert_eq!(deployments, 2, "no deployment was made: {st:#}");

    // Naming the lab works: by id, by directory, or from inside the lab's directory.
    let st = status(
        &["lab", "status", "--json", dir_b.to_str().unwrap()],
        &elsewhere,
    );
    assert_eq!(st["id"], b.as_str());
    let st = status(&["lab", "status", "--json"], &dir_a);
    assert_eq!(st["id"], a.as_str());
    let out = run_in(
        &state,
        &elsewhere,
        &[
            "lab",
            "exec",
            "--lab",
            dir_b.to_str().unwrap(),
            "azure/vm1",
            "--",
            "ping",
            "-c1",
            "-W2",
            "-q",
            "10.1.2.4",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = run_in(&state, &elsewhere, &["lab", "down", "--id", &b]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(netns_with_prefix(&format!("hn-{b}-")).is_empty());
    assert_eq!(netns_with_prefix(&format!("hn-{a}-")).len(), 9);

    // With one lab left, naming none means that one.
    let st = status(&["lab", "status", "--json"], &elsewhere);
    assert_eq!(st["id"], a.as_str());
}
