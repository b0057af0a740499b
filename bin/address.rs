//! An address to listen on: the one parser of `--bind` and `--metrics`
//! (`cli.rs`) and of [`Cluster::bind`](crate::Cluster::bind) and
//! [`Cluster::metrics`](crate::Cluster::metrics), so that an IPv6 zone may
//! name its interface (`[fe80::1%eth0]:80`) in both, as `ip` and `curl`
//! write it, where `std`'s parser takes only its index (`[fe80::1%2]:80`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

/// What [`Cluster::bind`](crate::Cluster::bind) and
/// [`Cluster::metrics`](crate::Cluster::metrics) take: text, where an IPv6
/// zone may be an interface's name (`"[fe80::1%lo]:8080"`) and a host name
/// is looked up (the first address it resolves to), or any address
/// [`ToSocketAddrs`] takes (`SocketAddr`, `("127.0.0.1", 8080)`).
pub trait ListenAddr {
    /// The one address to listen on, or why there is none (as
    /// [`ToSocketAddrs`] says it: `InvalidInput` for text that names no
    /// address or an unknown interface, the lookup's error for a host).
    fn listen_addr(&self) -> io::Result<SocketAddr>;
}

impl ListenAddr for str {
    fn listen_addr(&self) -> io::Result<SocketAddr> {
        match with_zone_name(self) {
            Some(zoned) => zoned.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
            None => first(self),
        }
    }
}

impl ListenAddr for String {
    fn listen_addr(&self) -> io::Result<SocketAddr> {
        self.as_str().listen_addr()
    }
}

impl<T: ListenAddr + ?Sized> ListenAddr for &T {
    fn listen_addr(&self) -> io::Result<SocketAddr> {
        (**self).listen_addr()
    }
}

/// Those `ToSocketAddrs` takes that are not text: as it resolves them.
macro_rules! resolved_by_std {
    ($($t:ty),*) => {$(
        impl ListenAddr for $t {
            fn listen_addr(&self) -> io::Result<SocketAddr> {
                first(self)
            }
        }
    )*};
}

resolved_by_std!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    (&str, u16),
    (String, u16)
);

impl ListenAddr for [SocketAddr] {
    fn listen_addr(&self) -> io::Result<SocketAddr> {
        first(&self)
    }
}

/// The first address `addr` resolves to.
fn first<T: ToSocketAddrs + ?Sized>(addr: &T) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))
}

/// An IP address and a port; a host name is not looked up (it may name
/// several addresses, and one listener takes one), so it gets an example.
/// An IPv6 address's zone may be an interface's name (`[fe80::1%eth0]:80`)
/// as well as its index (`[fe80::1%2]:80`), as `ip` and `curl` write it.
pub(crate) fn parse_address(text: &str) -> Result<SocketAddr, String> {
    if let Some(zoned) = with_zone_name(text) {
        return zoned;
    }
    text.parse().map_err(|_| {
        format!("'{text}' is not an IP address and port, such as 127.0.0.1:8080, 0.0.0.0:80 or [::]:8080 (host names are not looked up)")
    })
}

/// `[IPV6%NAME]:PORT` with an interface's name for a zone, the name turned
/// into its index; `None` for anything else (a numeric zone included, which
/// `SocketAddr`'s own parser takes).
fn with_zone_name(text: &str) -> Option<Result<SocketAddr, String>> {
    let (inside, port) = text.strip_prefix('[')?.split_once("]:")?;
    let (ip, name) = inside.split_once('%')?;
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (ip, port): (Ipv6Addr, u16) = (ip.parse().ok()?, port.parse().ok()?);
    Some(match nix::net::if_::if_nametoindex(name) {
        Ok(index) => Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, index))),
        Err(e) => Err(format!("'{text}': no interface named '{name}' ({e})")),
    })
}
