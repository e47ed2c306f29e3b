//! The TUN device (layer 3, no packet-information header) and the routes that steer remote
//! prefixes into it. Routes go through `ip route replace` so that an existing route is taken
//! over rather than duplicated, and are removed again on shutdown.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// `struct ifreq` with the union viewed as flags or an MTU (both at offset 16).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {name:?} must be 1 to 15 bytes"),
            ));
        }
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(r)
    }
    fn set_short(&mut self, v: libc::c_short) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }
    fn short(&self) -> libc::c_short {
        libc::c_short::from_ne_bytes([self.data[0], self.data[1]])
    }
    fn set_int(&mut self, v: libc::c_int) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }
}

/// An open TUN device; closing it (drop) deletes the interface and the routes through it.
pub struct Tun {
    fd: OwnedFd,
    name: String,
    vnet: bool,
    tso: bool,
    uso: bool,
}

impl Tun {
    /// Creates (or attaches to) TUN interface `name` in non-blocking mode. With `offload`,
    /// every packet carries a `virtio_net_hdr` and the kernel may hand over TCP super-packets
    /// (TSO) with partial checksums; if the kernel refuses the offloads the header stays but
    /// packets arrive whole ([`Tun::tso`] tells which).
    pub fn open(name: &str, offload: bool) -> io::Result<Tun> {
        let path = CString::new("/dev/net/tun").expect("static path");
        // SAFETY: plain open(2) of a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")));
        }
        // SAFETY: fd was just returned by open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = IfReq::new(name)?;
        req.set_short(IFF_TUN | IFF_NO_PI | if offload { IFF_VNET_HDR } else { 0 });
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq mirrors.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        let end = req
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(req.name.len());
        let name = String::from_utf8_lossy(&req.name[..end]).into_owned();
        let (mut tso, mut uso) = (false, false);
        if offload {
            let set = |flags: libc::c_uint| {
                // SAFETY: TUNSETOFFLOAD takes an unsigned int by value.
                let r = unsafe {
                    libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong)
                };
                r == 0
            };
            let tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
            // UDP segmentation needs Linux 6.2; older kernels refuse the flags (EINVAL)
            uso = set(tcp | TUN_F_USO4 | TUN_F_USO6);
            tso = uso || set(tcp);
        }
        Ok(Tun {
            fd,
            name,
            vnet: offload,
            tso,
            uso,
        })
    }

    /// Whether every packet read or written carries a `virtio_net_hdr`.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet
    }

    /// Whether the kernel may hand over TCP super-packets.
    pub fn tso(&self) -> bool {
        self.tso
    }

    /// Whether UDP super-packets (`GSO_UDP_L4`) pass both ways.
    pub fn uso(&self) -> bool {
        self.uso
    }

    /// The kernel's name for the interface.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the MTU and brings the interface up.
    pub fn configure(&self, mtu: u16) -> io::Result<()> {
        // SAFETY: socket(2) with constant arguments.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: s is a fresh descriptor we own.
        let s = unsafe { OwnedFd::from_raw_fd(s) };
        let mut req = IfReq::new(&self.name)?;
        req.set_int(mtu as libc::c_int);
        // SAFETY: SIOCSIFMTU takes a struct ifreq.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFMTU as _, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("set MTU {mtu} on {}: {e}", self.name),
            ));
        }
        let mut req = IfReq::new(&self.name)?;
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS take a struct ifreq.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = req.short() | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        req.set_short(flags);
        // SAFETY: as above.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("bring {} up: {e}", self.name),
            ));
        }
        Ok(())
    }

    /// Reads one packet; `WouldBlock` when none is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Writes one packet toward the kernel.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: packet is valid for packet.len() bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `ip`: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A route the gateway keeps in its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GwRoute {
    /// Into the tunnel (the TUN device).
    Tun(ipnet::IpNet),
    /// Refused with ICMP "administratively prohibited": configured remote prefixes that the
    /// peer left out of every Child SA, so senders hear at once instead of a silent drop.
    Prohibit(ipnet::IpNet),
}

impl GwRoute {
    /// The destination prefix.
    pub fn prefix(&self) -> ipnet::IpNet {
        match self {
            GwRoute::Tun(p) | GwRoute::Prohibit(p) => *p,
        }
    }

    /// Installs it (replacing a route for the same prefix).
    pub fn add(&self, dev: &str) -> io::Result<()> {
        match self {
            GwRoute::Tun(p) => add_route(p, dev),
            GwRoute::Prohibit(p) => {
                let fam = if p.addr().is_ipv6() { "-6" } else { "-4" };
                run_ip(&[fam, "route", "replace", "prohibit", &p.to_string()])
            }
        }
    }

    /// Removes it (absent routes are not an error).
    pub fn del(&self, dev: &str) -> io::Result<()> {
        match self {
            GwRoute::Tun(p) => del_route(p, dev),
            GwRoute::Prohibit(p) => {
                let fam = if p.addr().is_ipv6() { "-6" } else { "-4" };
                match run_ip(&[fam, "route", "del", "prohibit", &p.to_string()]) {
                    Err(e) if e.to_string().contains("No such process") => Ok(()),
                    r => r,
                }
            }
        }
    }
}

/// The fewest prefixes that cover exactly `start..=end` (one address family).
pub fn range_prefixes(start: std::net::IpAddr, end: std::net::IpAddr) -> Vec<ipnet::IpNet> {
    let (v6, bits, s, e) = match (start, end) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => (
            false,
            32u32,
            u128::from(u32::from(a)),
            u128::from(u32::from(b)),
        ),
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            (true, 128, u128::from(a), u128::from(b))
        }
        _ => return vec![],
    };
    let mut out = Vec::new();
    let mut cur = s;
    while cur <= e {
        // the largest aligned block starting at `cur` that stays within `e`
        let mut size_bits = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while size_bits > 0 {
            let last = 1u128
                .checked_shl(size_bits)
                .map_or(Some(u128::MAX), |b| cur.checked_add(b - 1));
            match last {
                Some(l) if l <= e => break,
                _ => size_bits -= 1,
            }
        }
        let len = (bits - size_bits) as u8;
        let net = if v6 {
            ipnet::IpNet::V6(
                ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(cur), len).expect("length"),
            )
        } else {
            ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(cur as u32), len).expect("length"),
            )
        };
        out.push(net);
        match 1u128
            .checked_shl(size_bits)
            .and_then(|step| cur.checked_add(step))
        {
            Some(n) => cur = n,
            None => break,
        }
    }
    out
}

/// Points `prefix` at the TUN device (replacing any existing route for it).
pub fn add_route(prefix: &ipnet::IpNet, dev: &str) -> io::Result<()> {
    let p = prefix.to_string();
    let fam = if prefix.addr().is_ipv6() { "-6" } else { "-4" };
    run_ip(&[fam, "route", "replace", &p, "dev", dev])
}

/// Removes the route for `prefix` through the TUN device (absent routes are not an error).
pub fn del_route(prefix: &ipnet::IpNet, dev: &str) -> io::Result<()> {
    let p = prefix.to_string();
    let fam = if prefix.addr().is_ipv6() { "-6" } else { "-4" };
    match run_ip(&[fam, "route", "del", &p, "dev", dev]) {
        Err(e)
            if e.to_string().contains("No such process")
                || e.to_string().contains("Cannot find device") =>
        {
            Ok(())
        }
        r => r,
    }
}

/// The MTU of the interface that holds `addr`, if any does.
pub fn interface_mtu_for(addr: IpAddr) -> Option<u16> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return None;
    }
    let mut name = None;
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list returned by getifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family tells its real type.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            let a = match fam {
                libc::AF_INET => {
                    // SAFETY: family is AF_INET.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    Some(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ))
                }
                libc::AF_INET6 => {
                    // SAFETY: family is AF_INET6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            };
            if a == Some(addr) {
                // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                name = Some(
                    unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                        .to_string_lossy()
                        .into_owned(),
                );
                break;
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    let name = name?;
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod route_tests {
    use super::range_prefixes;

    fn text(a: &str, b: &str) -> Vec<String> {
        range_prefixes(a.parse().unwrap(), b.parse().unwrap())
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn ranges_become_the_fewest_prefixes() {
        assert_eq!(text("10.2.1.0", "10.2.1.255"), ["10.2.1.0/24"]);
        assert_eq!(
            text("10.2.2.0", "10.2.8.255"),
            ["10.2.2.0/23", "10.2.4.0/22", "10.2.8.0/24"]
        );
        assert_eq!(text("10.2.0.0", "10.2.0.0"), ["10.2.0.0/32"]);
        assert_eq!(text("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(text("fd00::", "fd00::ffff"), ["fd00::/112"]);
        assert_eq!(
            text("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
        assert!(text("10.0.0.1", "fd00::1").is_empty());
    }
}
