//! `generic`: every value a VPN device needs, as plain text, for devices without a renderer.

use std::fmt::Write as _;

use crate::error::DevConfigError;
use crate::peer::PeerDevice;
use crate::strongswan::comment_safe;
use crate::vendor::Vendor;

/// The `generic` vendor: a plain-text summary in Azure's vocabulary.
pub struct Generic;

fn list(v: &[impl ToString]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Vendor for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn description(&self) -> &'static str {
        "plain-text summary of every parameter (addresses, prefixes, proposals, lifetimes, DPD, PSK)"
    }

    fn file_name(&self) -> &'static str {
        "vpn-device.txt"
    }

    fn contains_secret(&self) -> bool {
        true
    }

    fn render(&self, p: &PeerDevice) -> Result<String, DevConfigError> {
        let mut o = String::new();
        let pol = &p.policy;
        let _ = writeln!(
            o,
            "VPN device configuration for connection {} (site {}, kind {})",
            comment_safe(&p.connection_name),
            comment_safe(&p.site),
            p.site_kind
        );
        let _ = writeln!(
            o,
            "This text holds the connection's pre-shared key: keep it private."
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "IKE version:                 IKEv{}",
            p.ike_version.number()
        );
        let _ = writeln!(o, "Device address (outside):    {}", p.local_address);
        let _ = writeln!(
            o,
            "Device IKE identity:         {} (IP address)",
            p.local_id
        );
        for (i, t) in p.tunnels.iter().enumerate() {
            let _ = writeln!(o, "Cloud gateway {} address:     {} (IKE identity: the same IP address; public IP {})", i + 1, t.remote_address, comment_safe(&t.public_ip_name));
        }
        let _ = writeln!(
            o,
            "Device prefixes (local):     {}",
            list(&p.local_prefixes)
        );
        let _ = writeln!(
            o,
            "Cloud prefixes (remote):     {}",
            list(&p.remote_prefixes)
        );
        let _ = writeln!(
            o,
            "Traffic selectors:           {}",
            if p.policy_based_traffic_selectors {
                "one per local/remote prefix pair (policy-based)"
            } else {
                "all prefixes in one pair (route-based)"
            }
        );
        let _ = writeln!(
            o,
            "Policy:                      {}",
            if pol.custom {
                "custom (ipsecPolicies)"
            } else {
                "site kind default"
            }
        );
        let _ = writeln!(
            o,
            "IKE proposals:               {}",
            list(&pol.ike_proposals)
        );
        let weak = pol.weak_algorithms();
        if !weak.is_empty() {
            let _ = writeln!(
                o,
                "WARNING, weak algorithms:    {} (keep them only for a device that offers nothing better)",
                weak.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "IKE SA lifetime:             {} s",
            pol.ike_lifetime_secs
        );
        let _ = writeln!(
            o,
            "ESP proposals:               {}",
            list(p.esp_proposals())
        );
        let _ = writeln!(
            o,
            "Child SA lifetime:           {} s / {} KB",
            pol.child_lifetime_secs, pol.child_lifetime_kilobytes
        );
        let _ = writeln!(o, "DPD timeout:                 {} s", p.dpd_timeout_secs);
        let _ = writeln!(o, "Authentication:              pre-shared key");
        let _ = writeln!(o, "Pre-shared key:              {}", p.shared_key.expose());
        let _ = writeln!(
            o,
            "NAT traversal:               UDP 500 and 4500 must reach the device"
        );
        Ok(o)
    }
}
