//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: a websocket
//! (tungstenite) carrying JSON commands, enough to load a page, evaluate JavaScript in it
//! and take a screenshot. The browser is started with its own profile directory, ended by
//! its PID and the profile removed when the guard drops, also when the test fails.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::lab::scratch_dir;
use testkit::process::Daemon;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A running headless Chromium.
pub struct Chromium {
    // dropped first: the browser is ended before its profile is removed
    daemon: Daemon,
    profile: PathBuf,
    port: u16,
}

impl Chromium {
    /// Starts `chromium --headless` with a fresh profile and a DevTools port of its choosing
    /// (read from the profile's `DevToolsActivePort`), with a `width`×`height` window.
    pub fn launch(width: u32, height: u32) -> Result<Chromium> {
        let profile = scratch_dir("chromium");
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            // root in CI: Chromium's sandbox refuses to run as root
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank");
        let log = profile.with_extension("log");
        let daemon = Daemon::spawn("chromium", cmd, &log)
            .context("start chromium (scripts/install-deps.sh installs it)")?;
        let mut me = Chromium {
            daemon,
            profile,
            port: 0,
        };
        let active = me.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        me.port = loop {
            if let Some(p) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break p;
            }
            if !me.daemon.alive() || Instant::now() > deadline {
                bail!(
                    "chromium gave no DevTools port: {}",
                    testkit::process::tail(&me.daemon.log_text(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(me)
    }

    /// The first page target, connected.
    pub fn page(&self) -> Result<Page> {
        let list = crate::http::get_json(&format!("http://127.0.0.1:{}/json/list", self.port))?;
        let ws = list
            .as_array()
            .and_then(|l| l.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .with_context(|| format!("no page target in {list:#}"))?
            .to_string();
        let (mut socket, _) = tungstenite::connect(&ws).with_context(|| format!("connect {ws}"))?;
        if let MaybeTlsStream::Plain(s) = socket.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
        }
        Ok(Page { socket, next: 0 })
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.daemon.stop(Duration::from_secs(5));
        // Chromium's helper processes may still write a file or two into the profile as the
        // browser ends: remove it until it stays gone (2 s at most).
        for _ in 0..20 {
            let _ = std::fs::remove_dir_all(&self.profile);
            std::thread::sleep(Duration::from_millis(100));
            if !self.profile.exists() {
                break;
            }
        }
        let _ = std::fs::remove_file(self.profile.with_extension("log"));
    }
}

/// One page, over its DevTools websocket.
pub struct Page {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Page {
    /// Sends a DevTools command and returns its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::Text(msg.into()))?;
        loop {
            let m = self
                .socket
                .read()
                .with_context(|| format!("{method}: no answer"))?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(e) = v.get("error") {
                bail!("{method}: {e}");
            }
            return Ok(v["result"].clone());
        }
    }

    /// Loads `url` and waits for its load event.
    pub fn goto(&mut self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r.get("errorText") {
            bail!("navigate {url}: {e}");
        }
        testkit::process::wait_for(Duration::from_secs(20), "the page to load", || {
            (self.eval("document.readyState").ok()? == "complete").then_some(())
        })
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("{expr}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// A PNG of the whole page (beyond the window), written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        let size = self.eval(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
        )?;
        let (w, h) = (
            size[0].as_f64().unwrap_or(1280.0),
            size[1].as_f64().unwrap_or(1000.0),
        );
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        )?;
        let data = r["data"].as_str().context("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }
}

/// Where a test keeps what it leaves for people to look at: `$CARGO_TARGET_DIR` (else the
/// repository's `target/`)`/test-artifacts/<test>`, created.
pub fn artifact_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit::lab::repo_root().join("target"));
    let dir = target.join("test-artifacts").join(test);
    std::fs::create_dir_all(&dir).expect("create the artifact directory");
    dir
}
