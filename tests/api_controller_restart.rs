//! The lab controller is supervised: killed, it comes back on the same ports within seconds,
//! and a client logged in before keeps working; `lab down` ends the supervisor and the
//! serving process.

use std::time::{Duration, Instant};

use testkit::az::Api;
use testkit::lab::Lab;

#[test]
fn a_killed_controller_comes_back_on_the_same_ports() {
    let lab = Lab::up("examples/empty-sites");
    let api = Api::of(&lab);
    let endpoint = api.endpoint("azure");
    let az = api.login("azure");
    let api = api.doc;
    az.ok(&[
        "group",
        "create",
        "-n",
        "before",
        "-l",
        endpoint["location"].as_str().unwrap(),
    ]);

    let (pid, supervisor) = (
        api["pid"].as_i64().unwrap() as i32,
        api["supervisorPid"].as_i64().expect("supervised") as i32,
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let now = loop {
        let api = lab.status()["api"].clone();
        if api["pid"].as_i64().is_some_and(|p| p as i32 != pid) {
            break api;
        }
        assert!(
            Instant::now() < deadline,
            "no new controller after the kill: {api:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        now["endpoints"], api["endpoints"],
        "same endpoints, same ports"
    );
    assert_eq!(now["supervisorPid"].as_i64(), Some(supervisor as i64));
    let groups = az.ok(&["group", "list"]);
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "before"),
        "{groups:#}"
    );

    let new_pid = now["pid"].as_i64().unwrap() as i32;
    let out = lab.down();
    assert!(out.status.success(), "{}", testkit::lab::show(&out));
    for p in [new_pid, supervisor] {
        assert!(
            !fabric::daemon::is_live(p),
            "controller process {p} still runs"
        );
    }
}
