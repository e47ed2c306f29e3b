//! Network security groups as nftables chains in a VM's namespace: per NIC, inbound through
//! its subnet's NSG then its own, outbound the other way round, each rule in priority order
//! (first match decides; Allow goes on to the next NSG, Deny drops); replies of allowed flows
//! pass by connection tracking, so the rules are stateful as Azure's are.

use ipnet::Ipv4Net;
use site::nsg::{Access, Direction, EffectiveNsg, EffectiveRule, NsgProtocol, PortRange};

/// The body of the VM namespace's table for its NICs (`(interface, NSGs in effect)`), or
/// `None` when no NIC has an NSG.
pub(super) fn vm_ruleset(nics: &[(String, &[EffectiveNsg])]) -> Option<String> {
    if nics.iter().all(|(_, layers)| layers.is_empty()) {
        return None;
    }
    let mut head_in = String::new();
    let mut head_out = String::new();
    let mut chains = String::new();
    for (i, (ifname, layers)) in nics.iter().enumerate() {
        if layers.is_empty() {
            continue;
        }
        for (direction, head, dev) in [
            (Direction::Inbound, &mut head_in, "iifname"),
            (Direction::Outbound, &mut head_out, "oifname"),
        ] {
            let tag = if direction == Direction::Inbound {
                "in"
            } else {
                "out"
            };
            let ordered: Vec<&EffectiveNsg> = match direction {
                Direction::Inbound => layers.iter().collect(),
                Direction::Outbound => layers.iter().rev().collect(),
            };
            head.push_str(&format!("  {dev} \"{ifname}\" jump nic{i}_{tag}_0\n"));
            for (k, layer) in ordered.iter().enumerate() {
                let last = k + 1 == ordered.len();
                let allow = if last {
                    "accept".to_string()
                } else {
                    format!("goto nic{i}_{tag}_{}", k + 1)
                };
                chains.push_str(&format!("chain nic{i}_{tag}_{k} {{\n"));
                for r in layer.rules.iter().filter(|r| r.rule.direction == direction) {
                    if let Some(m) = matcher(r) {
                        let verdict = match r.rule.access {
                            Access::Allow => allow.as_str(),
                            Access::Deny => "drop",
                        };
                        chains.push_str(&format!(
                            "  {m}{verdict} comment \"{}\"\n",
                            comment(&r.name)
                        ));
                    }
                }
                chains.push_str(&format!(
                    "  drop comment \"end of {}\"\n}}\n",
                    comment(&layer.nsg_id)
                ));
            }
        }
    }
    Some(format!(
        "chain input {{\n  type filter hook input priority filter; policy accept;\n  ct state established,related accept\n{head_in}}}\nchain output {{\n  type filter hook output priority filter; policy accept;\n  ct state established,related accept\n{head_out}}}\n{chains}"
    ))
}

/// The match part of one rule (ending in a space, empty for "everything"), or `None` when it
/// can match nothing (e.g. a service tag that expands to no prefix).
fn matcher(r: &EffectiveRule) -> Option<String> {
    let mut m = String::new();
    let ports_apply = matches!(
        r.rule.protocol,
        NsgProtocol::Tcp | NsgProtocol::Udp | NsgProtocol::Any
    );
    let has_ports =
        ports_apply && (!r.rule.source_ports.is_empty() || !r.rule.destination_ports.is_empty());
    match r.rule.protocol {
        NsgProtocol::Any if has_ports => m.push_str("meta l4proto { tcp, udp } "),
        NsgProtocol::Any => {}
        NsgProtocol::Tcp => m.push_str("meta l4proto tcp "),
        NsgProtocol::Udp => m.push_str("meta l4proto udp "),
        NsgProtocol::Icmp => m.push_str("meta l4proto icmp "),
        NsgProtocol::Esp => m.push_str("meta l4proto esp "),
        NsgProtocol::Ah => m.push_str("meta l4proto ah "),
    }
    for (key, prefixes) in [("saddr", &r.source), ("daddr", &r.destination)] {
        if prefixes.is_empty() {
            return None;
        }
        if !prefixes.contains(&Ipv4Net::default()) {
            m.push_str(&format!("ip {key} {} ", set(prefixes.iter())));
        }
    }
    if ports_apply {
        for (key, ports) in [
            ("sport", &r.rule.source_ports),
            ("dport", &r.rule.destination_ports),
        ] {
            if !ports.is_empty() {
                m.push_str(&format!("th {key} {} ", set(ports.iter().map(port))));
            }
        }
    }
    Some(m)
}

fn port(p: &PortRange) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        format!("{}-{}", p.first, p.last)
    }
}

fn set<T: ToString>(items: impl Iterator<Item = T>) -> String {
    format!(
        "{{ {} }}",
        items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// Text safe inside an nft comment (resource names may hold anything).
fn comment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use site::nsg::{AddressMatch, Association, SecurityRule};

    fn rule(
        name: &str,
        priority: u16,
        direction: Direction,
        access: Access,
        protocol: NsgProtocol,
        src: &str,
        dports: &[PortRange],
    ) -> EffectiveRule {
        EffectiveRule {
            name: format!("securityRules/{name}"),
            rule: SecurityRule {
                name: name.into(),
                description: None,
                protocol,
                source_ports: vec![],
                destination_ports: dports.to_vec(),
                source: vec![AddressMatch::Any],
                destination: vec![AddressMatch::Any],
                access,
                priority,
                direction,
            },
            source: vec![src.parse().unwrap()],
            destination: vec![Ipv4Net::default()],
        }
    }

    #[test]
    fn subnet_then_nic_inbound_and_the_reverse_outbound() {
        let ssh = PortRange {
            first: 22,
            last: 22,
        };
        let subnet = EffectiveNsg {
            nsg_id: "/x/subnet-nsg".into(),
            association: Association::Subnet("s".into()),
            rules: vec![
                rule(
                    "ssh",
                    1000,
                    Direction::Inbound,
                    Access::Allow,
                    NsgProtocol::Tcp,
                    "0.0.0.0/0",
                    &[ssh],
                ),
                rule(
                    "deny",
                    4096,
                    Direction::Inbound,
                    Access::Deny,
                    NsgProtocol::Any,
                    "0.0.0.0/0",
                    &[],
                ),
                rule(
                    "out",
                    100,
                    Direction::Outbound,
                    Access::Allow,
                    NsgProtocol::Any,
                    "10.1.0.0/16",
                    &[],
                ),
            ],
        };
        let nic = EffectiveNsg {
            nsg_id: "/x/nic-nsg".into(),
            association: Association::NetworkInterface("n".into()),
            rules: vec![rule(
                "icmp",
                200,
                Direction::Inbound,
                Access::Deny,
                NsgProtocol::Icmp,
                "203.0.113.0/24",
                &[],
            )],
        };
        let layers = [subnet, nic];
        let text = vm_ruleset(&[("eth0".into(), &layers[..])]).unwrap();
        assert!(text.contains("iifname \"eth0\" jump nic0_in_0"), "{text}");
        assert!(
            text.contains("ct state established,related accept"),
            "{text}"
        );
        // inbound: the subnet's NSG first; its Allow goes on to the NIC's
        let in0 = &text[text.find("chain nic0_in_0").unwrap()..];
        assert!(in0.contains("comment \"end of /x/subnet-nsg\""), "{in0}");
        assert!(
            in0.contains("meta l4proto tcp th dport { 22 } goto nic0_in_1"),
            "{in0}"
        );
        let in1 = &text[text.find("chain nic0_in_1").unwrap()..];
        assert!(
            in1.contains("meta l4proto icmp ip saddr { 203.0.113.0/24 } drop"),
            "{in1}"
        );
        // outbound: the NIC's NSG first
        let out0 = &text[text.find("chain nic0_out_0").unwrap()..];
        assert!(out0.contains("comment \"end of /x/nic-nsg\""), "{out0}");
        let out1 = &text[text.find("chain nic0_out_1").unwrap()..];
        assert!(out1.contains("ip saddr { 10.1.0.0/16 } accept"), "{out1}");
        assert!(vm_ruleset(&[("eth0".into(), &[][..])]).is_none());
    }
}
