//! Labs in one line: `let lab = Lab::up("examples/two-sites");` builds a lab with its own
//! state directory (so runs never collide), and dropping it runs `lab down` (even on panic)
//! and removes whatever is left by the lab-id prefix.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The repository root (for `examples/…`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit lies two levels below the repository root")
        .to_path_buf()
}

/// The `hybridnet` binary: `$HYBRIDNET_BIN`, else `target/<profile>/hybridnet` next to the
/// running test executable (built by `cargo nextest run` / `cargo build -p hybridnet`).
pub fn hybridnet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HYBRIDNET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/test");
    let bin = profile_dir.join("hybridnet");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p hybridnet`)",
        bin.display()
    );
    bin
}

/// A fresh, unique scratch directory (pid + counter + time) under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let p = std::env::temp_dir().join(format!(
        "hn-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).expect("create scratch dir");
    p
}

/// Copies a directory tree (an example lab) so a test can change its templates.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Names of the network namespaces whose name starts with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A running lab owned by one test.
pub struct Lab {
    /// The lab directory (holding lab.yaml).
    pub dir: PathBuf,
    /// This test's state root (`HYBRIDNET_STATE_DIR`).
    pub state: PathBuf,
    /// The lab id.
    pub id: String,
    /// Output of the `lab up` that built it.
    pub up_output: Output,
}

/// Text of an output's stdout and stderr, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `hybridnet ARGS…` with the given state root.
pub fn hybridnet(state: &Path, args: &[&str]) -> Output {
    hybridnet_cmd(state, args).output().expect("run hybridnet")
}

/// The command for `hybridnet ARGS…` with the given state root (to spawn it yourself).
pub fn hybridnet_cmd(state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(hybridnet_bin());
    c.args(args).env("HYBRIDNET_STATE_DIR", state);
    c
}

/// The id of the only lab registered under `state`, once its lab.json exists.
pub fn registered_id(state: &Path) -> Option<String> {
    let rd = std::fs::read_dir(state.join("labs")).ok()?;
    rd.filter_map(|e| e.ok())
        .find(|e| e.path().join("lab.json").exists())
        .and_then(|e| e.file_name().into_string().ok())
}

impl Lab {
    /// `lab up` of a directory (relative to the repo root or absolute); panics with the
    /// command's output if it fails.
    pub fn up(dir: impl AsRef<Path>) -> Lab {
        Lab::up_in(repo_root().join(dir), scratch_dir("state"))
    }

    /// `lab up EXTRA… DIR` (e.g. `--no-gateways`); panics with the output if it fails.
    pub fn up_with(dir: impl AsRef<Path>, extra: &[&str]) -> Lab {
        Lab::up_in_with(repo_root().join(dir), scratch_dir("state"), extra)
    }

    fn up_in(dir: PathBuf, state: PathBuf) -> Lab {
        Lab::up_in_with(dir, state, &[])
    }

    fn up_in_with(dir: PathBuf, state: PathBuf, extra: &[&str]) -> Lab {
        let mut args = vec!["lab", "up"];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        let out = hybridnet(&state, &args);
        let id = registered_id(&state);
        let lab = Lab {
            dir,
            state,
            id: id.clone().unwrap_or_default(),
            up_output: out,
        };
        assert!(
            lab.up_output.status.success() && id.is_some(),
            "lab up failed:\n{}",
            show(&lab.up_output)
        );
        lab
    }

    /// Like [`Lab::up`] on a private copy of the directory (inside the state root, removed with
    /// it), so the test may edit its templates.
    pub fn up_copy(dir: impl AsRef<Path>) -> Lab {
        let state = scratch_dir("state");
        let copy = state.join("src");
        copy_tree(&repo_root().join(dir), &copy);
        Lab::up_in(copy, state)
    }

    /// Like [`Lab::up_copy`], with `file` of the copy changed by `edit` first (a variant of
    /// an example, e.g. another router).
    pub fn up_copy_edited(
        dir: impl AsRef<Path>,
        file: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Lab {
        let state = scratch_dir("state");
        let copy = state.join("src");
        copy_tree(&repo_root().join(dir), &copy);
        let path = copy.join(file);
        let text = std::fs::read_to_string(&path).expect("the file to edit");
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit of {file} changed nothing");
        std::fs::write(&path, edited).unwrap();
        Lab::up_in(copy, state)
    }

    /// `hybridnet ARGS…` against this lab's state root.
    pub fn run(&self, args: &[&str]) -> Output {
        hybridnet(&self.state, args)
    }

    /// `lab up` of the same directory again.
    pub fn up_again(&self) -> Output {
        self.run(&["lab", "up", self.dir.to_str().unwrap()])
    }

    /// `lab exec SITE/VM -- CMD…`
    pub fn exec(&self, target: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["lab", "exec", "--id", &self.id, target, "--"];
        args.extend_from_slice(cmd);
        self.run(&args)
    }

    /// One ping from a VM, true when answered.
    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &["ping", "-c", "1", "-W", "1", "-q", to])
            .status
            .success()
    }

    /// `lab status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.run(&["lab", "status", "--id", &self.id, "--json"]);
        assert!(out.status.success(), "lab status failed:\n{}", show(&out));
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }

    /// One site of `lab status --json`; panics naming the sites there are.
    pub fn site_status(&self, site: &str) -> serde_json::Value {
        let status = self.status();
        status["sites"]
            .as_array()
            .and_then(|sites| sites.iter().find(|s| s["name"] == site))
            .cloned()
            .unwrap_or_else(|| panic!("no site {site} in {:#}", status["sites"]))
    }

    /// `hybridnet deploy --id … --site SITE --name NAME` of `template` (text written to the
    /// lab's scratch directory as NAME.json) with `extra` arguments (e.g. `--set`s); the
    /// output, for the caller to check.
    pub fn deploy_text(&self, site: &str, name: &str, template: &str, extra: &[&str]) -> Output {
        let path = self.state.join(format!("{name}.json"));
        std::fs::write(&path, template).expect("write the template");
        let path = path.to_str().expect("UTF-8 path").to_string();
        let mut args = vec![
            "deploy", "--id", &self.id, "--site", site, "--name", name, &path,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The outputs of deployment `name` on `site`, as `lab status` shows them.
    pub fn outputs(&self, site: &str, name: &str) -> serde_json::Value {
        let s = self.site_status(site);
        s["deployments"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == name))
            .map(|d| d["outputs"].clone())
            .unwrap_or_else(|| panic!("no deployment {name} on {site}: {:#}", s["deployments"]))
    }

    /// The lab's namespaces as the kernel has them.
    pub fn namespaces(&self) -> Vec<String> {
        netns_with_prefix(&format!("hn-{}-", self.id))
    }

    /// `lab down --id ID`.
    pub fn down(&self) -> Output {
        self.run(&["lab", "down", "--id", &self.id])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.id.is_empty() {
            let _ = self.down();
            // Whatever `lab down` could not remove (it failed, or the binary is broken).
            for ns in self.namespaces() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The checks every two-site VPN example shares: `lab up`'s summary shows the connections
/// Connected (`connected` as the summary prints them) and ping and verified TCP both ways
/// between `a` and `b` (`(SITE/VM, address)`); ping works again from a new process; and status
/// reports exactly two connections, Connected, each having counted more than the 4 MiB sent.
pub fn assert_tunnel_example(lab: &Lab, connected: &str, a: (&str, &str), b: (&str, &str)) {
    let out = String::from_utf8_lossy(&lab.up_output.stdout).into_owned();
    for step in [
        connected.to_string(),
        format!("ping {} -> {} ({}): 3/3 replies", a.0, b.0, b.1),
        format!("ping {} -> {} ({}): 3/3 replies", b.0, a.0, a.1),
        format!("TCP {} -> {}", a.0, b.0),
        format!("TCP {} -> {}", b.0, a.0),
    ] {
        assert!(
            out.contains(&step),
            "summary lacks {step:?}:\n{}",
            show(&lab.up_output)
        );
    }
    assert!(lab.ping(a.0, b.1));
    assert!(lab.ping(b.0, a.1));
    let status = lab.status();
    let mut seen = 0;
    for s in status["sites"].as_array().unwrap() {
        for c in s["connections"].as_array().unwrap() {
            assert_eq!(c["connectionStatus"], "Connected", "{c:#}");
            assert_eq!(c["provisioningState"], "Succeeded", "{c:#}");
            assert!(
                c["ingressBytesTransferred"].as_u64().unwrap() > 4 << 20,
                "{c:#}"
            );
            assert!(
                c["egressBytesTransferred"].as_u64().unwrap() > 4 << 20,
                "{c:#}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "{status:#}");
}
