//! Batched UDP I/O: `recvmmsg` into a fixed set of buffers, and UDP GSO (`UDP_SEGMENT`) to
//! send a run of equal-sized ESP packets to one peer in one system call, with a per-packet
//! fallback when the kernel or device lacks segmentation offload.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Control buffer per received message (room for one UDP_GRO cmsg).
const CMSG_ROOM: usize = 64;
/// Most segments the kernel accepts in one GSO send (UDP_MAX_SEGMENTS is 64 on older kernels).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (the IP total-length limit, minus headers).
pub const GSO_MAX_BYTES: usize = 65_000;

/// Receive buffers and headers for `recvmmsg`, allocated once.
pub struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    ctrl: Vec<u64>,
}

// SAFETY: the raw pointers inside point only into the struct's own heap buffers.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// `count` buffers of `slot` bytes.
    pub fn new(count: usize, slot: usize) -> Box<RecvBatch> {
        // SAFETY: all-zero is a valid sockaddr_storage / iovec / mmsghdr.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut b = Box::new(RecvBatch {
            slot,
            bufs: vec![0u8; count * slot],
            addrs: vec![zero_addr; count],
            iovs: Vec::with_capacity(count),
            hdrs: Vec::with_capacity(count),
            ctrl: vec![0u64; count * CMSG_ROOM / 8],
        });
        let bufs = b.bufs.as_mut_ptr();
        for i in 0..count {
            b.iovs.push(libc::iovec {
                // SAFETY: i * slot is within bufs (count slots of `slot` bytes).
                iov_base: unsafe { bufs.add(i * slot) }.cast(),
                iov_len: slot,
            });
        }
        let iovs = b.iovs.as_mut_ptr();
        let addrs = b.addrs.as_mut_ptr();
        let ctrl = b.ctrl.as_mut_ptr();
        for i in 0..count {
            // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            // SAFETY: i < count, the length of `addrs`.
            h.msg_hdr.msg_name = unsafe { addrs.add(i) }.cast();
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: i < count, the length of `iovs`.
            h.msg_hdr.msg_iov = unsafe { iovs.add(i) };
            h.msg_hdr.msg_iovlen = 1;
            // SAFETY: `ctrl` holds count * CMSG_ROOM bytes as u64 words.
            h.msg_hdr.msg_control = unsafe { ctrl.add(i * CMSG_ROOM / 8) }.cast();
            h.msg_hdr.msg_controllen = CMSG_ROOM as _;
            b.hdrs.push(h);
        }
        b
    }

    /// Receives up to the batch size without blocking; returns how many arrived.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_hdr.msg_controllen = CMSG_ROOM as _;
            h.msg_len = 0;
        }
        // SAFETY: hdrs describes valid buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Message `i` of the last `recv`: its buffer (whole slot), length, sender, whether it
    /// was truncated, and the size of the datagrams UDP GRO joined in it (= length if none).
    pub fn get(&mut self, i: usize) -> (&mut [u8], usize, Option<SocketAddr>, bool, usize) {
        let len = (self.hdrs[i].msg_len as usize).min(self.slot);
        let trunc = self.hdrs[i].msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
        let from = sockaddr_to(&self.addrs[i]);
        let mut seg = len;
        // SAFETY: walking the control buffer the kernel filled for this message.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&self.hdrs[i].msg_hdr);
            while !c.is_null() {
                if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                    if v > 0 {
                        seg = v as usize;
                    }
                }
                c = libc::CMSG_NXTHDR(&self.hdrs[i].msg_hdr, c);
            }
        }
        let slot = self.slot;
        (
            &mut self.bufs[i * slot..(i + 1) * slot],
            len,
            from,
            trunc,
            seg.max(1),
        )
    }
}

fn sockaddr_to(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed storage is valid; we fill the variant matching the family.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v.port().to_be();
            sin6.sin6_addr.s6_addr = v.ip().octets();
            sin6.sin6_flowinfo = v.flowinfo();
            sin6.sin6_scope_id = v.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Sends `buf` (a run of packets of `seg` bytes, the last possibly shorter) to `to` as one
/// UDP GSO super-datagram.
pub fn send_gso(fd: RawFd, buf: &[u8], seg: usize, to: SocketAddr) -> io::Result<()> {
    let (mut ss, sslen) = to_sockaddr(to);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // room for one cmsg carrying a u16
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr/cmsg construction over local buffers that outlive the call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = sslen;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(2) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
        if libc::sendmsg(fd, &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Asks the kernel to hand over runs of same-flow datagrams joined (UDP GRO); returns
/// whether it agreed (older kernels do not know the option).
pub fn enable_gro(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int.
    unsafe {
        libc::setsockopt(
            fd,
            SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Sends one datagram.
pub fn send_to(fd: RawFd, buf: &[u8], to: SocketAddr) -> io::Result<()> {
    let (ss, sslen) = to_sockaddr(to);
    // SAFETY: buf and ss are valid for the call.
    let n = unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (&ss as *const libc::sockaddr_storage).cast(),
            sslen,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether a GSO send error means "this path cannot do GSO" (so fall back for good).
pub fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT) | Some(libc::EOPNOTSUPP)
    )
}

/// The unspecified address of `a`'s family.
pub fn unspecified_like(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn gso_send_arrives_as_separate_datagrams_and_batch_receive_gets_them() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut buf = Vec::new();
        for i in 0..5u8 {
            buf.extend(std::iter::repeat_n(i, if i == 4 { 300 } else { 1000 }));
        }
        match send_gso(tx.as_raw_fd(), &buf, 1000, to) {
            Ok(()) => {}
            Err(e) if gso_unsupported(&e) => {
                for (i, c) in buf.chunks(1000).enumerate() {
                    assert!(i < 5);
                    send_to(tx.as_raw_fd(), c, to).unwrap();
                }
            }
            Err(e) => panic!("{e}"),
        }
        let mut batch = RecvBatch::new(8, 2048);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = match batch.recv(rx.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            for i in 0..n {
                let (b, len, from, trunc, seg) = batch.get(i);
                assert!(!trunc);
                assert_eq!(seg, len, "GRO not enabled on this socket");
                assert_eq!(from, Some(tx.local_addr().unwrap()));
                got.push(b[..len].to_vec());
            }
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(got.len(), 5);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), if i == 4 { 300 } else { 1000 });
            assert!(d.iter().all(|&b| b == i as u8));
        }
    }

    #[test]
    fn gro_receive_reports_the_segment_size() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        if !enable_gro(rx.as_raw_fd()) {
            return; // kernel without UDP GRO: the plain path is covered above
        }
        let to = rx.local_addr().unwrap();
        let mut buf = Vec::new();
        for i in 0..4u8 {
            buf.extend(std::iter::repeat_n(i, if i == 3 { 100 } else { 1200 }));
        }
        if send_gso(tx.as_raw_fd(), &buf, 1200, to).is_err() {
            return;
        }
        let mut batch = RecvBatch::new(4, 65536);
        let mut data = Vec::new();
        for _ in 0..100 {
            match batch.recv(rx.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let (b, len, _, trunc, seg) = batch.get(i);
                        assert!(!trunc);
                        for chunk in b[..len].chunks(seg) {
                            data.push(chunk.to_vec());
                        }
                    }
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
            if data.len() >= 4 {
                break;
            }
        }
        assert_eq!(
            data.len(),
            4,
            "the four datagrams, whether joined by GRO or not"
        );
        for (i, d) in data.iter().enumerate() {
            assert_eq!(d.len(), if i == 3 { 100 } else { 1200 });
            assert!(d.iter().all(|&b| b == i as u8));
        }
    }
}
