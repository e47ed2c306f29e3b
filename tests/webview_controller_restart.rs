//! The web view survives its controller: with the seed's overview open in headless Chromium,
//! the process serving the lab controller is killed (SIGKILL); its supervisor starts a new
//! one, which takes the same web view port again, and the open page — no reload — reconnects
//! by itself and goes on receiving live updates (newer snapshots, the tunnel still Connected).

use hybridnet_tests::browser::Chromium;
use std::time::{Duration, Instant};
use testkit::lab::Lab;
use testkit::process::wait_for;

/// The command line of `pid` with NULs as spaces ("" when it is gone).
fn cmdline(pid: i64) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn an_open_page_follows_the_lab_across_a_controller_restart() {
    let lab = Lab::up("examples/hybrid-connection");
    let api = lab.status()["api"].clone();
    let url = api["viewUrl"].as_str().expect("viewUrl").to_string();
    let serving = api["pid"].as_i64().expect("controller pid");
    assert!(
        cmdline(serving).contains(&format!("lab controller --lab {} --serve", lab.id)),
        "pid {serving} serves this lab's controller: {}",
        cmdline(serving)
    );

    let browser = Chromium::launch(1280, 900).expect("headless chromium");
    let mut page = browser.page().expect("a page");
    page.goto(&url).expect("load the overview");
    let live_at = |page: &mut hybridnet_tests::browser::Page| -> Option<u64> {
        page.eval("Number(document.body.dataset.liveAt || 0)")
            .ok()?
            .as_u64()
            .filter(|t| *t > 0)
    };
    wait_for(Duration::from_secs(10), "the first live update", || {
        live_at(&mut page)
    })
    .unwrap();
    page.eval("window.hnNoReload = 7").unwrap();

    // SAFETY: kill(2) on this test's lab's controller process, checked above by its command
    // line; its supervisor restarts it.
    assert_eq!(unsafe { libc::kill(serving as i32, libc::SIGKILL) }, 0);
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let killed = Instant::now();

    let restarted = wait_for(Duration::from_secs(15), "a new controller", || {
        let api = lab.status()["api"].clone();
        api["pid"]
            .as_i64()
            .is_some_and(|p| p != serving)
            .then_some(api)
    })
    .unwrap();
    assert_eq!(
        restarted["viewUrl"].as_str(),
        Some(url.as_str()),
        "the web view keeps its port"
    );

    // EventSource reconnects by itself (the server asks for a retry after 500 ms): snapshots
    // newer than the kill.
    let resumed = wait_for(
        Duration::from_secs(15),
        "live updates after the restart",
        || live_at(&mut page).filter(|t| *t > killed_ms + 100),
    )
    .unwrap();
    let back = killed.elapsed();
    eprintln!(
        "live again {back:?} after the kill (snapshot of {} ms after it)",
        resumed - killed_ms
    );
    assert!(back < Duration::from_secs(5), "took {back:?}");
    assert_eq!(page.eval("window.hnNoReload").unwrap(), 7, "no reload");
    assert_eq!(
        page.eval("document.querySelector('[data-live=\"meta:connection\"]').textContent")
            .unwrap(),
        "live"
    );
    assert_eq!(
        page.eval("Array.from(document.querySelectorAll('svg.topology [data-tunnel]')).map(t => t.dataset.state)")
            .unwrap(),
        serde_json::json!(["connected"])
    );
}
