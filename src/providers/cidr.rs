//! IP networks in CIDR notation (`203.0.113.0/24`, `2001:db8::/32`), for
//! the peer allow-list of unsigned sources. Small enough not to need a crate.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 peer
    /// (`::ffff:203.0.113.9`, what a dual-stack socket reports) is compared
    /// as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix)
                    == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix)
                    == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(addr: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        addr >> (width - prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a network like 203.0.113.0/24 or 2001:db8::/32")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    /// `addr/prefix`, or a bare address (a single host). Host bits must be
    /// zero: `203.0.113.7/24` is almost always a typo for `/32`, so it is
    /// refused rather than silently widened.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(err)?,
            Some(_) => return Err(err()),
        };
        let bits = match network {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let host_bits = if prefix == width {
            0
        } else {
            bits & (u128::MAX >> (128 - (width - prefix)))
        };
        if host_bits != 0 {
            return Err(err());
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_v4_and_v6_networks() {
        let net: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(net.contains(ip("203.0.113.9")));
        assert!(net.contains(ip("::ffff:203.0.113.9")), "v4-mapped peer");
        assert!(!net.contains(ip("203.0.114.1")));
        assert!(!net.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("198.51.100.1")));
    }

    #[test]
    fn refuses_typos() {
        for bad in [
            "203.0.113.7/24",
            "203.0.113.0/33",
            "203.0.113.0/",
            "203.0.113.0/+8",
            "example.com/8",
            "2001:db8::/129",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
