//! Test support of the gateway and lab suites: the hybridnet gateway runner, the two-site
//! topology, traffic checks, hostile peers, lifecycle and restart scenarios, the seed's
//! end-to-end helpers, and the interop scenario the gateway tests share. Namespaces,
//! processes, strongSwan and labs come from the test kit (`testkit`).
//!
//! Everything a test creates (namespaces, processes, scratch files) is owned by a guard that
//! removes it on drop, also when the test panics. These tests need root; they fail (never
//! skip) when a namespace cannot be created.

pub mod browser;
pub mod e2e;
pub mod gw;
pub mod hostile;
pub mod http;
pub mod lifecycle;
pub mod restart;
pub mod sites;
pub mod traffic;

use anyhow::{bail, Context, Result};
use gateway::status::ConnectionReport;
use gw::{GatewayProc, GwConfig};
use sites::{addrs, TwoSites};
use std::time::Duration;
use testkit::netns::unique_id;
use testkit::process::Scratch;
use testkit::swan::{Charon, SwanChildSa, SwanConn};

/// A fresh random PSK in strongSwan's hex syntax.
pub fn random_psk() -> String {
    format!("0x{}{}", unique_id(), unique_id())
}

/// gw-a (hybridnet) config for the two-site topology.
pub fn hybridnet_a(psk: &str, initiate: bool, ike: &[&str], esp: &[&str]) -> GwConfig {
    GwConfig {
        local_address: addrs::GW_A_WAN.into(),
        name: "site-b".into(),
        remote_address: addrs::GW_B_WAN.into(),
        local_id: addrs::ID_A.into(),
        remote_id: addrs::ID_B.into(),
        psk: psk.into(),
        local_prefix: addrs::NET_A.into(),
        remote_prefix: addrs::NET_B.into(),
        ike_proposals: ike.iter().map(|s| s.to_string()).collect(),
        esp_proposals: esp.iter().map(|s| s.to_string()).collect(),
        initiate,
    }
}

/// gw-b (hybridnet) config, the mirror of [`hybridnet_a`].
pub fn hybridnet_b(psk: &str, initiate: bool, ike: &[&str], esp: &[&str]) -> GwConfig {
    GwConfig {
        local_address: addrs::GW_B_WAN.into(),
        name: "site-a".into(),
        remote_address: addrs::GW_A_WAN.into(),
        local_id: addrs::ID_B.into(),
        remote_id: addrs::ID_A.into(),
        psk: psk.into(),
        local_prefix: addrs::NET_B.into(),
        remote_prefix: addrs::NET_A.into(),
        ike_proposals: ike.iter().map(|s| s.to_string()).collect(),
        esp_proposals: esp.iter().map(|s| s.to_string()).collect(),
        initiate,
    }
}

/// Two hybridnet gateways on `net` with one connection between them (gw-a initiates), both
/// established: the pair most data-path tests start from, in one line.
pub fn established_pair(
    net: &TwoSites,
    scratch: &std::path::Path,
    ike: &[&str],
    esp: &[&str],
) -> Result<(GatewayProc, GatewayProc)> {
    let psk = random_psk();
    let b = GatewayProc::start(
        &net.gw_b,
        scratch,
        "gw-b",
        &hybridnet_b(&psk, false, ike, esp).to_toml(),
    )
    .context("gw-b")?;
    let a = GatewayProc::start(
        &net.gw_a,
        scratch,
        "gw-a",
        &hybridnet_a(&psk, true, ike, esp).to_toml(),
    )
    .context("gw-a")?;
    a.wait_established("site-b", Duration::from_secs(20))?;
    b.wait_established("site-a", Duration::from_secs(10))?;
    Ok((a, b))
}

/// gw-b (strongSwan) connection for the two-site topology.
pub fn swan_b(psk: &str, start: bool, ike: &str, esp: &str) -> SwanConn {
    SwanConn {
        local_addr: addrs::GW_B_WAN.into(),
        remote_addr: addrs::GW_A_WAN.into(),
        local_id: addrs::ID_B.into(),
        remote_id: addrs::ID_A.into(),
        local_ts: addrs::NET_B.into(),
        remote_ts: addrs::NET_A.into(),
        ike_proposals: ike.into(),
        esp_proposals: esp.into(),
        psk: psk.into(),
        start_action: if start { "start" } else { "none" }.into(),
        ..SwanConn::default()
    }
}

/// hybridnet on gw-a, strongSwan on gw-b, both started and configured; the tunnel is not
/// yet awaited.
pub struct Interop {
    /// strongSwan on gw-b (dropped first).
    pub charon: Charon,
    /// hybridnet on gw-a.
    pub ours: GatewayProc,
    /// Logs and configs.
    pub scratch: Scratch,
    /// The namespaces (dropped last).
    pub net: TwoSites,
    /// The PSK both use.
    pub psk: String,
}

impl Interop {
    /// Builds the topology and starts both gateways. `ours_initiates` picks the initiator;
    /// strongSwan is told to initiate (`swanctl --initiate`) by the caller when it should.
    pub fn start(
        tag: &str,
        ours_initiates: bool,
        ours: (&[&str], &[&str]),
        theirs: (&str, &str),
        their_psk: Option<&str>,
    ) -> Result<Interop> {
        let net = TwoSites::new()?;
        let scratch = Scratch::new(tag, &net.id)?;
        let psk = random_psk();
        let charon = Charon::start(&net.gw_b, &scratch.join("swan-b"))?;
        charon.load(&swan_b(
            their_psk.unwrap_or(&psk),
            false,
            theirs.0,
            theirs.1,
        ))?;
        let cfg = hybridnet_a(&psk, ours_initiates, ours.0, ours.1);
        let ours = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &cfg.to_toml())?;
        Ok(Interop {
            charon,
            ours,
            scratch,
            net,
            psk,
        })
    }

    /// Waits for the tunnel on both sides and returns (our connection, strongSwan's child).
    pub fn wait_up(&self) -> Result<(ConnectionReport, SwanChildSa)> {
        let ours = self
            .ours
            .wait_established("site-b", Duration::from_secs(20))?;
        let theirs = self.charon.wait_child_installed(Duration::from_secs(10))?;
        Ok((ours, theirs))
    }

    /// Ping both ways, 4 MiB each way over TCP with verified content, SPIs that match,
    /// counters that grow, and no PSK in our log or status. Returns a summary line.
    pub fn check_tunnel(&self) -> Result<String> {
        let (before, theirs) = self.wait_up()?;
        assert_spis_match(&before, &theirs)?;
        check_traffic(&self.net)?;
        let after = self.ours.connection("site-b")?;
        assert_counters_grew(&before, &after, 2 * 4 * 1024 * 1024)?;
        let theirs_after =
            SwanChildSa::find(&self.charon.sas()?).context("strongSwan child vanished")?;
        assert_spis_match(&after, &theirs_after)?;
        if theirs_after.bytes_in < 4 * 1024 * 1024 || theirs_after.bytes_out < 4 * 1024 * 1024 {
            bail!(
                "strongSwan counted too little traffic: in {} out {}\n{:#?}",
                theirs_after.bytes_in,
                theirs_after.bytes_out,
                theirs_after.ike
            );
        }
        assert_no_secret(&self.ours.log(), &self.psk, "gateway log")?;
        assert_no_secret(&self.ours.status_text(), &self.psk, "gateway status")?;
        assert_no_secret(
            &serde_json::to_string(&self.ours.status()?)?,
            &self.psk,
            "gateway status JSON",
        )?;
        Ok(format!(
            "ours: {} ESP {}; strongSwan: {} ESP {}",
            after.ike_algorithms.unwrap_or_default(),
            after.esp_algorithms.unwrap_or_default(),
            theirs_after.ike_algorithms,
            theirs_after.esp_algorithms
        ))
    }
}

/// Ping vm-a → vm-b and back, then 4 MiB TCP each way with SHA-256 verification.
pub fn check_traffic(net: &TwoSites) -> Result<()> {
    traffic::ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10))?;
    traffic::ping(&net.vm_a, addrs::VM_B, 3)?;
    traffic::ping(&net.vm_b, addrs::VM_A, 3)?;
    let t1 = traffic::tcp_transfer(&net.vm_b, addrs::VM_B, 5001, &net.vm_a, 4 * 1024 * 1024)
        .context("TCP vm-a → vm-b")?;
    let t2 = traffic::tcp_transfer(&net.vm_a, addrs::VM_A, 5002, &net.vm_b, 4 * 1024 * 1024)
        .context("TCP vm-b → vm-a")?;
    eprintln!("TCP 4 MiB a→b in {:?}, b→a in {:?}", t1.elapsed, t2.elapsed);
    Ok(())
}

/// Our inbound SPI must be their outbound and vice versa.
pub fn assert_spis_match(ours: &ConnectionReport, theirs: &SwanChildSa) -> Result<()> {
    let active = ours
        .child_sas
        .iter()
        .find(|c| c.active)
        .context("no active CHILD_SA in our status")?;
    if active.spi_in != theirs.spi_out || active.spi_out != theirs.spi_in {
        bail!(
            "SPIs differ: ours in {} out {}, strongSwan in {} out {}\n{:#?}",
            active.spi_in,
            active.spi_out,
            theirs.spi_in,
            theirs.spi_out,
            theirs.ike
        );
    }
    Ok(())
}

/// Both directions' counters grew by at least `min_bytes` (sum of both) and some packets.
pub fn assert_counters_grew(
    before: &ConnectionReport,
    after: &ConnectionReport,
    min_bytes: u64,
) -> Result<()> {
    let grew_in = after.inbound.bytes - before.inbound.bytes;
    let grew_out = after.outbound.bytes - before.outbound.bytes;
    if after.inbound.packets <= before.inbound.packets
        || after.outbound.packets <= before.outbound.packets
        || grew_in + grew_out < min_bytes
    {
        bail!(
            "counters did not grow with the traffic: before {:?}/{:?}, after {:?}/{:?}",
            before.inbound,
            before.outbound,
            after.inbound,
            after.outbound
        );
    }
    let active = after
        .child_sas
        .iter()
        .find(|c| c.active)
        .context("no active child")?;
    if active.inbound.packets == 0 || active.outbound.packets == 0 {
        bail!("the active CHILD_SA carried nothing: {active:?}");
    }
    Ok(())
}

/// Fails if the PSK (as configured, or its hex body) appears in `text`.
pub fn assert_no_secret(text: &str, psk: &str, what: &str) -> Result<()> {
    let body = psk.strip_prefix("0x").unwrap_or(psk);
    if text.contains(psk) || (body.len() >= 8 && text.to_lowercase().contains(&body.to_lowercase()))
    {
        bail!("the PSK appears in the {what}");
    }
    Ok(())
}
