//! IP networks for `ip=` rules: IPv4 and IPv6, with optional CIDR prefix.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `<address>` or `<address>/<prefix>`; host bits beyond the prefix are
    /// refused (a likely typo) rather than silently masked.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| match addr_text.split_once('%') {
            // A caller's zone is ignored (`parse_caller_ip`); a rule names addresses, on any interface.
            Some((bare, _)) if bare.parse::<std::net::Ipv6Addr>().is_ok() => {
                // The prefix as typed, not yet read: it may hold anything (a newline, an escape).
                let prefix = prefix_text.map_or(String::new(), |p| format!("/{}", crate::error::visible(p)));
                format!("{addr_text:?} names a zone, which an IP rule cannot (a caller's zone is ignored): did you mean ip={bare}{prefix}?")
            }
            _ => format!("{addr_text:?} is not an IPv4 or IPv6 address"),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') && (p == "0" || !p.starts_with('0')) => n,
                _ => return Err(format!("prefix {p:?} must be a number from 0 to {max}")),
            },
        };
        let net = IpNet { addr, prefix };
        if net.network() != addr {
            return Err(format!("host bits are set after the /{prefix} prefix (did you mean ip={}/{prefix}?)", net.network()));
        }
        Ok(net)
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(self.prefix)).into()),
        }
    }

    /// True when `addr` lies in this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, as Node reports IPv4 peers on dual-stack sockets) count as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => (u32::from(a) ^ u32::from(net)) & mask32(self.prefix) == 0,
            (IpAddr::V6(net), IpAddr::V6(a)) => (u128::from(a) ^ u128::from(net)) & mask128(self.prefix) == 0,
            (IpAddr::V6(net), IpAddr::V4(a)) => (u128::from(a.to_ipv6_mapped()) ^ u128::from(net)) & mask128(self.prefix) == 0,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Parses the caller's address as given to `isAllowed`; anything unparsable is
/// `None`. An IPv6 zone (`fe80::1%eth0`, as Node reports link-local peers) is
/// ignored: rules name addresses, not interfaces.
pub fn parse_caller_ip(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    let addr = match text.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() && addr.contains(':') => addr,
        Some(_) => return None,
        None => text,
    };
    addr.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(net: &str, ip: &str) -> bool {
        IpNet::parse(net).unwrap().contains(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_single_and_cidr() {
        assert!(contains("142.250.200.46", "142.250.200.46"));
        assert!(!contains("142.250.200.46", "142.250.200.47"));
        assert!(contains("142.250.200.0/24", "142.250.200.255"));
        assert!(!contains("142.250.200.0/24", "142.250.201.0"));
        assert!(contains("0.0.0.0/0", "8.8.8.8"));
        assert!(!contains("0.0.0.0/0", "::1"));
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        assert!(contains("2001:db8::/32", "2001:db8:1::7"));
        assert!(!contains("2001:db8::/32", "2001:db9::1"));
        assert!(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
        assert!(contains("::ffff:10.0.0.0/104", "10.9.9.9"));
        assert!(contains("::1", "::1"));
    }

    #[test]
    fn caller_addresses() {
        assert_eq!(parse_caller_ip(b"fe80::1%eth0"), Some("fe80::1".parse().unwrap()));
        assert_eq!(parse_caller_ip(b"10.1.2.3%eth0"), None);
        assert_eq!(parse_caller_ip(b"fe80::1%"), None);
        assert_eq!(parse_caller_ip(b"::ffff:10.1.2.3"), Some("::ffff:10.1.2.3".parse().unwrap()));
        assert_eq!(parse_caller_ip(b"nonsense"), None);
    }

    #[test]
    fn bad_networks() {
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("10.0.0.0/08").is_err());
        assert!(IpNet::parse("10.0.0.0/").is_err());
        assert!(IpNet::parse("10.0.0.1/24").unwrap_err().contains("ip=10.0.0.0/24"));
        assert!(IpNet::parse("010.0.0.1").is_err());
        assert!(IpNet::parse("fe80::1%eth0").is_err());
        assert!(IpNet::parse("::/0").is_ok());
    }

    /// A prefix past the address's length is refused as such, also on an all-zero address,
    /// where no host bit is set to refuse it otherwise; so is a sign, which Rust's number parse takes.
    #[test]
    fn a_prefix_beyond_the_address_length_or_signed_is_refused() {
        for (net, max) in [("0.0.0.0/33", 32), ("0.0.0.0/255", 32), ("::/129", 128), ("::/200", 128), ("10.0.0.0/+8", 32), ("::/+0", 128)] {
            let why = IpNet::parse(net).unwrap_err();
            assert!(why.contains(&format!("must be a number from 0 to {max}")), "{net}: {why}");
        }
        assert_eq!(IpNet::parse("::/128").unwrap().to_string(), "::");
        assert_eq!(IpNet::parse("0.0.0.0/32").unwrap().to_string(), "0.0.0.0");
    }

    #[test]
    fn a_zone_in_a_rule_is_refused_with_the_rule_it_meant() {
        let zoned = IpNet::parse("fe80::1%eth0").unwrap_err();
        assert!(zoned.contains("names a zone") && zoned.contains("did you mean ip=fe80::1?"), "{zoned}");
        assert!(IpNet::parse("fe80::%eth0/64").unwrap_err().contains("did you mean ip=fe80::/64?"));
        // Not an address before the %: no hint.
        assert!(IpNet::parse("10.0.0.1%eth0").unwrap_err().contains("is not an IPv4 or IPv6 address"));
        assert!(IpNet::parse("fe80::g%eth0").unwrap_err().contains("is not an IPv4 or IPv6 address"));
        // The prefix repeated in the hint is shown, not written raw into the message.
        let forged = IpNet::parse("fe80::1%eth0/64\n\u{1b}[31mFAKE").unwrap_err();
        assert!(!forged.chars().any(char::is_control), "{forged:?}");
        assert!(forged.contains("did you mean ip=fe80::1/64<U+000A><U+001B>[31mFAKE?"), "{forged}");
    }
}
