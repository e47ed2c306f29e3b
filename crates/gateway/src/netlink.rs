//! Routes into the TUN device over rtnetlink, many per system call. One `ip route replace`
//! process per route cost ~1.5 ms each, which made a gateway with 10,000 connections spend
//! most of its start-up forking `ip`; here one socket carries batches of RTM_NEWROUTE /
//! RTM_DELROUTE requests and the kernel acknowledges each (so a failure still names its
//! prefix). Only what `ip route replace PREFIX dev TUN` / `ip route del PREFIX dev TUN` did:
//! main table, scope link, unicast.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Requests sent before their acknowledgements are read: 256 acknowledgements fit a
/// default-sized socket receive buffer many times over.
const BATCH: usize = 256;

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;

/// Why a batch of routes was not (completely) applied.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The TUN device is not there (any more).
    #[error("no interface {0}")]
    NoDevice(String),
    /// The netlink socket could not be opened or used.
    #[error("rtnetlink: {0}")]
    Socket(io::Error),
    /// The kernel refused a route.
    #[error("route {prefix} via {dev}: {cause}")]
    Refused {
        /// The route's prefix.
        prefix: ipnet::IpNet,
        /// The device.
        dev: String,
        /// The kernel's answer.
        cause: io::Error,
    },
}

/// Add or delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Delete,
}

/// Points every prefix at device `dev` (replacing existing routes for them). All are tried;
/// the first refusal is returned.
pub fn replace_routes(prefixes: &[ipnet::IpNet], dev: &str) -> Result<(), RouteError> {
    apply(prefixes, dev, Op::Replace)
}

/// Removes the routes of these prefixes through `dev`; absent ones are not an error.
pub fn delete_routes(prefixes: &[ipnet::IpNet], dev: &str) -> Result<(), RouteError> {
    apply(prefixes, dev, Op::Delete)
}

fn apply(prefixes: &[ipnet::IpNet], dev: &str, op: Op) -> Result<(), RouteError> {
    if prefixes.is_empty() {
        return Ok(());
    }
    let name = std::ffi::CString::new(dev).map_err(|_| RouteError::NoDevice(dev.into()))?;
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        if op == Op::Delete {
            // the device went, and its routes with it
            return Ok(());
        }
        return Err(RouteError::NoDevice(dev.into()));
    }
    let sock = open().map_err(RouteError::Socket)?;
    let mut first_err = None;
    let mut buf = Vec::with_capacity(BATCH * 64);
    let mut rx = vec![0u8; 64 * 1024];
    for (chunk_no, chunk) in prefixes.chunks(BATCH).enumerate() {
        buf.clear();
        let base = (chunk_no * BATCH) as u32 + 1;
        for (k, p) in chunk.iter().enumerate() {
            encode(&mut buf, p, ifindex, op, base + k as u32);
        }
        send(&sock, &buf).map_err(RouteError::Socket)?;
        let mut acked = 0;
        while acked < chunk.len() {
            // SAFETY: `rx` is writable for its length.
            let n = unsafe { libc::recv(sock.as_raw_fd(), rx.as_mut_ptr().cast(), rx.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RouteError::Socket(e));
            }
            let mut off = 0;
            let n = n as usize;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(rx[off..off + 4].try_into().expect("4")) as usize;
                let kind = u16::from_ne_bytes(rx[off + 4..off + 6].try_into().expect("2"));
                let seq = u32::from_ne_bytes(rx[off + 8..off + 12].try_into().expect("4"));
                if len < 16 || off + len > n {
                    break;
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    acked += 1;
                    let errno = -i32::from_ne_bytes(rx[off + 16..off + 20].try_into().expect("4"));
                    let absent = op == Op::Delete && errno == libc::ESRCH;
                    if errno != 0 && !absent && first_err.is_none() {
                        let i = seq.wrapping_sub(base) as usize;
                        if let Some(p) = chunk.get(i) {
                            first_err = Some(RouteError::Refused {
                                prefix: *p,
                                dev: dev.into(),
                                cause: io::Error::from_raw_os_error(errno),
                            });
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_nl is valid; the kernel picks our port id.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `addr` is a valid sockaddr_nl of the given size.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

fn send(sock: &OwnedFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: a zeroed sockaddr_nl addresses the kernel (port id 0).
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as u16;
    loop {
        // SAFETY: `buf` and `to` are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Appends one route request: nlmsghdr, rtmsg, RTA_DST, RTA_OIF.
fn encode(out: &mut Vec<u8>, p: &ipnet::IpNet, ifindex: u32, op: Op, seq: u32) {
    let (family, addr): (u8, Vec<u8>) = match p {
        ipnet::IpNet::V4(n) => (libc::AF_INET as u8, n.network().octets().to_vec()),
        ipnet::IpNet::V6(n) => (libc::AF_INET6 as u8, n.network().octets().to_vec()),
    };
    let attr = |out: &mut Vec<u8>, kind: u16, data: &[u8]| {
        out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    let start = out.len();
    let (kind, flags) = match op {
        Op::Replace => (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        Op::Delete => (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK),
    };
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in below
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[
        family,
        p.prefix_len(),
        0,
        0,
        RT_TABLE_MAIN,
        if op == Op::Replace { RTPROT_BOOT } else { 0 },
        if op == Op::Replace {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_NOWHERE
        },
        if op == Op::Replace { RTN_UNICAST } else { 0 },
    ]);
    out.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    attr(out, RTA_DST, &addr);
    attr(out, RTA_OIF, &ifindex.to_ne_bytes());
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_laid_out_as_rtnetlink_expects() {
        let mut b = vec![];
        let p: ipnet::IpNet = "10.201.0.4/30".parse().unwrap();
        encode(&mut b, &p, 7, Op::Replace, 42);
        // 16 header + 12 rtmsg + 8 RTA_DST + 8 RTA_OIF
        assert_eq!(b.len(), 44);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 44);
        assert_eq!(
            u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            RTM_NEWROUTE
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
        assert_eq!(&b[16..24], &[2, 30, 0, 0, 254, 3, 253, 1]);
        assert_eq!(&b[28..36], &[8, 0, 1, 0, 10, 201, 0, 4]);
        assert_eq!(&b[36..44], &[8, 0, 4, 0, 7, 0, 0, 0]);
    }
}
