//! Which IP addresses a plugin may connect to: only globally reachable ones.
//!
//! [`non_global`] names the special-purpose range an address falls in (private, loopback,
//! link-local with the cloud metadata address, unspecified, documentation, multicast...), from the
//! IANA special-purpose address registries, or `None` for an ordinary public address. IPv6 forms that
//! embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the IPv4 address inside them, so
//! `::ffff:127.0.0.1` is loopback. The connector (`upstream`) applies this to every address a host
//! name resolves to, before it connects to any of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

/// Ranges that are not globally reachable, and what each is.
const NON_GLOBAL: [(&str, &str); 28] = [
    ("0.0.0.0/8", "'this network' (unspecified)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata services live here)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "reserved for IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "deprecated IPv4-compatible IPv6"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "reserved for IETF protocol assignments (Teredo included)"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique local (ULA, private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local"),
    ("ff00::/8", "multicast"),
];

static RANGES: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    NON_GLOBAL.iter().map(|(net, why)| (net.parse().expect("the table holds valid networks"), *why)).collect()
});

/// Why `ip` is not globally reachable (`"loopback (127.0.0.0/8)"`), or `None` when it is.
pub fn non_global(ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    RANGES.iter().find(|(net, _)| net.contains(&ip)).map(|(net, why)| format!("{why} ({net})"))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), well-known NAT64 (`64:ff9b::a.b.c.d`) or
/// 6to4 (`2002:AABB:CCDD::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, high, low16, ..] => {
            Some(Ipv4Addr::new((high >> 8) as u8, high as u8, (low16 >> 8) as u8, low16 as u8))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(ip: &str) -> Option<String> {
        non_global(ip.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_not_global() {
        for (ip, expected) in [
            ("10.1.2.3", "private (RFC 1918) (10.0.0.0/8)"),
            ("172.31.255.255", "private (RFC 1918) (172.16.0.0/12)"),
            ("192.168.0.1", "private (RFC 1918) (192.168.0.0/16)"),
            ("127.0.0.1", "loopback (127.0.0.0/8)"),
            ("169.254.169.254", "link-local (cloud metadata services live here) (169.254.0.0/16)"),
            ("0.0.0.0", "'this network' (unspecified) (0.0.0.0/8)"),
            ("100.100.100.200", "shared carrier-grade NAT space (RFC 6598) (100.64.0.0/10)"),
            ("::1", "loopback (::1/128)"),
            ("::", "unspecified (::/128)"),
            ("fd00:ec2::254", "unique local (ULA, private) (fc00::/7)"),
            ("fe80::1", "link-local (fe80::/10)"),
            ("ff02::1", "multicast (ff00::/8)"),
            ("255.255.255.255", "reserved (and broadcast) (240.0.0.0/4)"),
        ] {
            assert_eq!(why(ip).as_deref(), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_judged_by_the_ipv4_inside() {
        assert_eq!(why("::ffff:127.0.0.1").as_deref(), Some("loopback (127.0.0.0/8)"));
        assert_eq!(why("::ffff:169.254.169.254").unwrap().split(' ').next(), Some("link-local"));
        assert_eq!(why("64:ff9b::10.0.0.1").as_deref(), Some("private (RFC 1918) (10.0.0.0/8)"));
        assert_eq!(why("2002:c0a8:0101::1").as_deref(), Some("private (RFC 1918) (192.168.0.0/16)"));
        assert_eq!(why("::ffff:8.8.8.8"), None);
        assert_eq!(why("64:ff9b::8.8.8.8"), None);
    }

    #[test]
    fn public_addresses_are_global() {
        for ip in ["8.8.8.8", "172.65.251.78", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"] {
            assert_eq!(why(ip), None, "{ip}");
        }
    }
}
