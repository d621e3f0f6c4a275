//! Claiming the listening address for this process alone.
//!
//! Every worker has its own `SO_REUSEPORT` listener, so that the kernel spreads new connections
//! over the workers. But Linux lets *any* process of the same user join such a group (the only
//! check is the effective uid), so a second `satchel-server` on the same port would bind, print
//! `listening on` and take half the connections, serving them from another root. Two checks
//! keep the group to this process:
//!
//! 1. **Before binding**, a probe socket with `SO_REUSEADDR` but *not* `SO_REUSEPORT` is bound
//!    to the address and closed. The kernel refuses it (`EADDRINUSE`) when anything listens on
//!    an overlapping address: in `inet_csk_bind_conflict`, a socket without `SO_REUSEPORT`
//!    conflicts with every `LISTEN` socket on the port whose address overlaps, whatever that
//!    socket's own options. A probe that never listens leaves no `TIME_WAIT` behind, and with
//!    `SO_REUSEADDR` it ignores the `TIME_WAIT` sockets of a previous run.
//! 2. **After binding**, the listening sockets on the port are read from `/proc/net/tcp` and
//!    `/proc/net/tcp6` (this network namespace); one on an overlapping address that is not one
//!    of ours (by socket inode) means another server joined between the probe and our binds
//!    (two started at once). Then this one gives up too: both may fail, neither serves half.
//!
//! The probe is skipped for port 0 (the kernel picks a fresh port). A `[::]` listener not
//! limited to IPv6 overlaps IPv4 addresses too; from an IPv4 bind, a foreign `[::]` listener is
//! not counted by check 2 (`/proc` does not say whether it is IPv6-only), so that race is
//! covered by the probe alone.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use crate::worker;

/// `st` of a listening socket in `/proc/net/tcp*`.
const TCP_LISTEN: u8 = 0x0A;

/// Binds the workers' `count` listeners on `addr` (see [`worker::bind_listeners`]), failing with
/// `AddrInUse` if another process listens on it, before or at the same time.
pub(crate) fn bind_exclusive(
    addr: SocketAddr,
    count: usize,
    defer_accept: bool,
) -> io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        probe(addr)?;
    }
    let listeners = worker::bind_listeners(addr, count, defer_accept)?;
    ensure_sole(&listeners)?;
    Ok(listeners)
}

/// The caller names the address (`cannot listen on ADDR: ...`).
fn in_use() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "address in use by another process",
    )
}

/// Binds (and closes) a socket with `SO_REUSEADDR` but not `SO_REUSEPORT`: refused if anything
/// listens on an overlapping address.
fn probe(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    match socket.bind(&addr.into()) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(in_use()),
        other => other,
    }
}

/// Fails if a listening socket that is not one of `ours` shares their port on an overlapping
/// address. Without a readable `/proc/net/tcp*` there is nothing to check against.
fn ensure_sole(ours: &[TcpListener]) -> io::Result<()> {
    let Some(first) = ours.first() else {
        return Ok(());
    };
    let addr = first.local_addr()?;
    let mut inodes = HashSet::with_capacity(ours.len());
    for l in ours {
        inodes.insert(rustix::fs::fstat(l)?.st_ino);
    }
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        let foreign = text
            .lines()
            .filter_map(parse_line)
            .filter(|s| s.state == TCP_LISTEN && s.addr.port() == addr.port())
            .filter(|s| !inodes.contains(&s.inode))
            .any(|s| overlaps(addr.ip(), s.addr.ip()));
        if foreign {
            return Err(in_use());
        }
    }
    Ok(())
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, PartialEq, Eq)]
struct ProcSocket {
    addr: SocketAddr,
    state: u8,
    inode: u64,
}

/// Parses `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`;
/// `None` for the header and anything unexpected.
fn parse_line(line: &str) -> Option<ProcSocket> {
    let mut fields = line.split_ascii_whitespace();
    let local = fields.nth(1)?;
    let state = u8::from_str_radix(fields.nth(1)?, 16).ok()?;
    let inode = fields.nth(5)?.parse().ok()?;
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The address is printed as 32-bit words in the kernel's (native) byte order.
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(ProcSocket {
        addr: SocketAddr::new(ip, port),
        state,
        inode,
    })
}

/// Whether a connection to `theirs` could reach a listener on `ours` (same port assumed):
/// equal addresses, or a wildcard of the same family; our `[::]` (never IPv6-only, see
/// [`worker::bind_listeners`]) also covers IPv4.
fn overlaps(ours: IpAddr, theirs: IpAddr) -> bool {
    let ours = ours.to_canonical();
    let theirs = theirs.to_canonical();
    match (ours, theirs) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        (IpAddr::V6(a), IpAddr::V4(_)) => a.is_unspecified(),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_rows() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let want_ip = Ipv4Addr::from(u32::from_str_radix("0100007F", 16).unwrap().to_ne_bytes());
        assert_eq!(
            parse_line(v4),
            Some(ProcSocket {
                addr: SocketAddr::new(want_ip.into(), 8080),
                state: TCP_LISTEN,
                inode: 4242
            })
        );
        let v6 = "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0";
        let s = parse_line(v6).unwrap();
        assert_eq!(s.addr, "[::]:80".parse().unwrap());
        assert_eq!(s.inode, 77);
        assert_eq!(parse_line("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"), None);
        assert_eq!(parse_line("   2: 0100007F:ZZZZ"), None);
    }

    #[test]
    fn overlapping_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(overlaps(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(overlaps(ip("127.0.0.1"), ip("0.0.0.0")));
        assert!(overlaps(ip("0.0.0.0"), ip("10.1.2.3")));
        assert!(!overlaps(ip("127.0.0.1"), ip("127.0.0.2")));
        assert!(overlaps(ip("::"), ip("127.0.0.1")));
        assert!(overlaps(ip("::"), ip("::1")));
        assert!(overlaps(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!overlaps(ip("::1"), ip("127.0.0.1")));
        assert!(!overlaps(ip("0.0.0.0"), ip("::")));
    }

    /// A plain listener (like another server's) on the port makes the probe fail; a port that
    /// nobody listens on passes it.
    #[test]
    fn probe_sees_a_listener() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let e = probe(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(busy);
        probe(addr).unwrap();
    }

    /// Our own listeners are not foreign; another group member on the port is.
    #[test]
    fn a_second_group_on_the_port_is_foreign() {
        let ours = worker::bind_listeners("127.0.0.1:0".parse().unwrap(), 2, false).unwrap();
        ensure_sole(&ours).unwrap();
        let addr = ours[0].local_addr().unwrap();
        let theirs = worker::bind_listeners(addr, 1, false).unwrap();
        let e = ensure_sole(&ours).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(ensure_sole(&theirs).is_err());
        drop(theirs);
        ensure_sole(&ours).unwrap();
    }
}
