//! The client a sign-in attempt comes from, as the guessing limits count it.
//!
//! Behind a reverse proxy the socket peer is the proxy, and the client's address travels in
//! `X-Forwarded-For`. Each proxy *appends* the address it got the request from, so only the
//! right end of the header is written by proxies the operator runs; everything left of that
//! is whatever the client sent, and a client that may choose its address chooses its own
//! budget. The client is therefore the right-most entry that is not a trusted proxy, and
//! the header of a request whose peer is not a trusted proxy is not read at all.
//!
//! IPv6 clients are counted per /64: that is the smallest network a subscriber line is
//! given, so one household (or one guesser) holds 2^64 addresses and would otherwise hold as
//! many budgets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The networks of the reverse proxies whose `X-Forwarded-For` entries are believed. Empty:
/// the header is ignored and the socket peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyNetworkError {
    #[error(
        "{0:?} is not a network such as \"10.0.0.0/8\" or \"2001:db8::/32\", nor one address such as \"127.0.0.1\""
    )]
    Malformed(String),
    #[error(
        "{given:?} has bits set past its prefix length: write \"{network}\" for the network, or \"{host}\" for the one address"
    )]
    HostBits {
        given: String,
        network: IpNet,
        host: IpNet,
    },
}

impl TrustedProxies {
    /// Parses CIDR networks ("10.0.0.0/8") and single addresses ("127.0.0.1", taken as /32
    /// or /128). A network written with host bits ("10.0.0.1/8") is refused: it is either
    /// a typo for the network or for one address, and guessing which could trust the wrong
    /// machines.
    pub fn parse<S: AsRef<str>>(networks: &[S]) -> Result<Self, ProxyNetworkError> {
        networks
            .iter()
            .map(|n| parse_network(n.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer` with these `X-Forwarded-For` header
    /// values, in the order they arrived (several headers read as one list, RFC 9110 5.3).
    ///
    /// Walks from the right past trusted proxies. An entry that is not an address (a port is
    /// allowed, as some proxies add one) ends the walk at the last trusted hop: no proxy we
    /// trust wrote it, so nothing left of it can be believed. When every entry is trusted the
    /// left-most one is the client (a machine inside the proxies' own network).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for value in forwarded.rev() {
            let Ok(text) = std::str::from_utf8(value) else {
                return client;
            };
            for entry in text.rsplit(',') {
                let Some(ip) = forwarded_address(entry) else {
                    return client;
                };
                client = ip;
                if !self.trusts(ip) {
                    return ip;
                }
            }
        }
        client
    }
}

fn parse_network(text: &str) -> Result<IpNet, ProxyNetworkError> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| ProxyNetworkError::Malformed(text.to_string()))?;
    if net.trunc() != net {
        return Err(ProxyNetworkError::HostBits {
            given: text.to_string(),
            network: net.trunc(),
            host: IpNet::from(net.addr()),
        });
    }
    Ok(net)
}

/// One `X-Forwarded-For` entry as an address: `192.0.2.7`, `2001:db8::7`, and with a port,
/// `192.0.2.7:4711` or `[2001:db8::7]:4711`. None for anything else (`unknown`, an
/// obfuscated identifier, an empty entry), which the caller treats as the end of the trust.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = match entry.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match entry.parse::<SocketAddr>() {
            Ok(socket) => socket.ip(),
            Err(_) => IpAddr::V6(
                entry
                    .strip_prefix('[')?
                    .strip_suffix(']')?
                    .parse::<Ipv6Addr>()
                    .ok()?,
            ),
        },
    };
    Some(ip.to_canonical())
}

/// What one client's budget is kept under: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPrefix {
    V4(Ipv4Addr),
    /// The network's address: the interface half is zero.
    V6(Ipv6Addr),
}

impl From<IpAddr> for ClientPrefix {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => Self::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        }
    }
}

impl fmt::Display for ClientPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => write!(f, "{v4}/32"),
            Self::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn client(trusted: &TrustedProxies, peer: &str, headers: &[&str]) -> IpAddr {
        trusted.client(ip(peer), headers.iter().map(|h| h.as_bytes()))
    }

    #[test]
    fn networks_and_single_addresses_parse() {
        let t = proxies(&["10.0.0.0/8", " 127.0.0.1 ", "2001:db8::/32", "::1"]);
        assert!(t.trusts(ip("10.200.3.4")));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("2001:db8:ffff::1")));
        assert!(t.trusts(ip("::1")));
        assert!(!t.trusts(ip("11.0.0.1")));
        assert!(!t.trusts(ip("2001:db9::1")));
        assert_eq!(
            TrustedProxies::parse::<&str>(&[]).unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn malformed_networks_are_refused_with_a_hint() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "localhost",
            "",
            "10.0.0.0/",
            "::/129",
        ] {
            let e = TrustedProxies::parse(&[bad]).unwrap_err();
            assert!(matches!(e, ProxyNetworkError::Malformed(_)), "{bad}: {e}");
            assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
        }
        let e = TrustedProxies::parse(&["10.0.0.1/8"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"10.0.0.1/8\" has bits set past its prefix length: write \"10.0.0.0/8\" for the network, or \"10.0.0.1/32\" for the one address"
        );
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&t, "203.0.113.9", &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(client(&none, "10.0.0.1", &["198.51.100.1"]), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let t = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // The client wrote "1.1.1.1, 10.9.9.9"; the proxies appended the real address and
        // their own.
        assert_eq!(
            client(
                &t,
                "127.0.0.1",
                &["1.1.1.1, 10.9.9.9, 198.51.100.7, 10.0.0.2"]
            ),
            ip("198.51.100.7")
        );
        // Two headers are one list, in order.
        assert_eq!(
            client(&t, "127.0.0.1", &["1.1.1.1", "198.51.100.7,10.0.0.2"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["198.51.100.7", "10.0.0.2"]),
            ip("198.51.100.7")
        );
        // Ports and brackets as some proxies write them.
        assert_eq!(
            client(&t, "127.0.0.1", &["198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["[2001:db8::7]:4711, 10.0.0.3"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(&t, "127.0.0.1", &["[2001:db8::8]"]),
            ip("2001:db8::8")
        );
        // An IPv4 peer seen on an IPv6 socket is the IPv4 address.
        assert_eq!(
            client(&t, "::ffff:127.0.0.1", &["::ffff:198.51.100.7"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_without_a_usable_header_is_itself_the_client() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&t, "10.0.0.1", &[]), ip("10.0.0.1"));
        // Garbage right of any real address: the walk stops at the last trusted hop.
        assert_eq!(
            client(&t, "10.0.0.1", &["198.51.100.7, unknown"]),
            ip("10.0.0.1")
        );
        assert_eq!(
            client(&t, "10.0.0.1", &["198.51.100.7, _hidden, 10.0.0.5"]),
            ip("10.0.0.5")
        );
        assert_eq!(client(&t, "10.0.0.1", &["198.51.100.7,"]), ip("10.0.0.1"));
        // Every entry trusted: the left-most is the client.
        assert_eq!(
            client(&t, "10.0.0.1", &["10.1.1.1, 10.2.2.2"]),
            ip("10.1.1.1")
        );
        let raw: [&[u8]; 1] = [b"198.51.100.7, \xff\xfe"];
        assert_eq!(t.client(ip("10.0.0.1"), raw.into_iter()), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_share_a_prefix_per_64() {
        let a = ClientPrefix::from(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientPrefix::from(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let c = ClientPrefix::from(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let v4 = ClientPrefix::from(ip("192.0.2.1"));
        assert_ne!(v4, ClientPrefix::from(ip("192.0.2.2")));
        assert_eq!(v4, ClientPrefix::from(ip("::ffff:192.0.2.1")));
        assert_eq!(v4.to_string(), "192.0.2.1/32");
    }

    proptest! {
        /// Any header, any bytes, any peer: an answer, never a panic, and the answer is the
        /// peer or an address the header or the peer named.
        #[test]
        fn any_header_gives_an_address(
            headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..4),
            texts in proptest::collection::vec("[0-9a-f:.,\\[\\] ]{0,60}", 0..3),
            peer in any::<[u8; 4]>(),
            trust_all in any::<bool>(),
        ) {
            let t = if trust_all { proxies(&["0.0.0.0/0", "::/0"]) } else { proxies(&["10.0.0.0/8"]) };
            let peer = IpAddr::from(peer);
            let values: Vec<&[u8]> = headers
                .iter()
                .map(Vec::as_slice)
                .chain(texts.iter().map(|s| s.as_bytes()))
                .collect();
            let got = t.client(peer, values.iter().copied());
            let _ = ClientPrefix::from(got).to_string();
            let named = got == peer
                || values.iter().any(|v| {
                    String::from_utf8_lossy(v)
                        .split(',')
                        .filter_map(forwarded_address)
                        .any(|a| a == got)
                });
            prop_assert!(named, "{got} came from nowhere");
        }

        #[test]
        fn any_network_text_parses_or_is_refused(text in "\\PC{0,40}") {
            let _ = TrustedProxies::parse(&[text]);
        }
    }
}
