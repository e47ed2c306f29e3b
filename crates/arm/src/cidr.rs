//! The CIDR functions (`parseCidr`, `cidrSubnet`, `cidrHost`) for IPv4 and IPv6, as documented
//! for ARM: templates that carve VNet address space use them to compute subnet prefixes.

use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed `address/length`, normalised to its network address.
struct Cidr {
    network: u128,
    len: u32,
    bits: u32,
    v6: bool,
}

fn parse(text: &str) -> Result<Cidr, String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or(format!("'{text}' is not in CIDR notation (address/length)"))?;
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("'{addr}' is not an IP address"))?;
    let len: u32 = len
        .trim()
        .parse()
        .map_err(|_| format!("'{len}' is not a prefix length"))?;
    let (raw, bits, v6) = match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32, false),
        IpAddr::V6(a) => (u128::from(a), 128, true),
    };
    if len > bits {
        return Err(format!("prefix length {len} is larger than {bits}"));
    }
    Ok(Cidr {
        network: raw & mask(len, bits),
        len,
        bits,
        v6,
    })
}

fn mask(len: u32, bits: u32) -> u128 {
    let all: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if len == 0 {
        0
    } else {
        (all >> (bits - len)) << (bits - len) & all
    }
}

fn show(v: u128, v6: bool) -> String {
    if v6 {
        Ipv6Addr::from(v).to_string()
    } else {
        Ipv4Addr::from(v as u32).to_string()
    }
}

impl Cidr {
    fn last(&self) -> u128 {
        let all: u128 = if self.bits == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits) - 1
        };
        self.network | (all & !mask(self.len, self.bits))
    }
    /// First and last addresses a host may use: IPv4 reserves network and broadcast (except /31
    /// and /32), IPv6 has no broadcast.
    fn usable(&self) -> (u128, u128) {
        if self.v6 || self.len >= 31 {
            (self.network, self.last())
        } else {
            (self.network + 1, self.last() - 1)
        }
    }
}

/// `parseCidr(network)`.
pub(crate) fn parse_cidr(text: &str) -> Result<Value, String> {
    let c = parse(text)?;
    let (first, last) = c.usable();
    let mut out = json!({
        "network": show(c.network, c.v6),
        "netmask": show(mask(c.len, c.bits), c.v6),
    });
    if !c.v6 {
        out["broadcast"] = Value::String(show(c.last(), false));
    }
    out["firstUsable"] = Value::String(show(first, c.v6));
    out["lastUsable"] = Value::String(show(last, c.v6));
    out["cidr"] = Value::from(c.len);
    Ok(out)
}

/// `cidrSubnet(network, newCIDR, subnetIndex)`.
pub(crate) fn cidr_subnet(text: &str, new_len: i64, index: i64) -> Result<Value, String> {
    let c = parse(text)?;
    if new_len < c.len as i64 || new_len > c.bits as i64 {
        return Err(format!(
            "the new prefix length {new_len} must be between {} and {}",
            c.len, c.bits
        ));
    }
    let new_len = new_len as u32;
    let extra = new_len - c.len;
    let count: u128 = 1u128.checked_shl(extra).unwrap_or(u128::MAX);
    if index < 0 || index as u128 >= count {
        return Err(format!(
            "subnet index {index} is out of range: {text} holds {count} /{new_len} subnets"
        ));
    }
    let step = 1u128.checked_shl(c.bits - new_len).unwrap_or(0);
    Ok(Value::String(format!(
        "{}/{new_len}",
        show(c.network + step * index as u128, c.v6)
    )))
}

/// `cidrHost(network, hostIndex)`: index 0 is the first usable address.
pub(crate) fn cidr_host(text: &str, index: i64) -> Result<Value, String> {
    let c = parse(text)?;
    let first = if c.v6 || c.len >= 31 {
        c.network + if c.v6 { 1 } else { 0 }
    } else {
        c.network + 1
    };
    let (_, last) = c.usable();
    if index < 0 || last < first || index as u128 > last - first {
        return Err(format!("host index {index} is out of range for {text}"));
    }
    Ok(Value::String(show(first + index as u128, c.v6)))
}
