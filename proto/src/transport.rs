//! Which control-plane addresses a client may send its bearer token to,
//! defined once for `sealctl` and the reactor: `https://` anywhere, plain
//! `http://` only to this machine's loopback interface, where nothing
//! crosses a network. A token sent in clear to another host can be read
//! (and replayed) by anyone on the path.
//!
//! The check is pure: it parses the address with the parser the gRPC
//! client uses (`http::Uri`, what tonic's `Endpoint::from_shared` calls)
//! and looks at the host as written, so it runs before anything is
//! resolved or sent, and it decides on the very host the client would
//! connect to. Plain http is allowed to:
//! - `localhost` (any letter case);
//! - an IPv4 address in `127.0.0.0/8`, as std's parser reads it (four
//!   decimal octets: the same parser the connector uses before it falls
//!   back to name resolution, so spellings it rejects, such as `127.1` or
//!   `0x7f.0.0.1`, are names here, and refused);
//! - `[::1]` (any spelling of it) and an IPv4-mapped loopback address
//!   (`[::ffff:127.0.0.1]`), which the kernel delivers to 127.0.0.1.
//!
//! Everything else over plain http is refused: other names (which could
//! resolve anywhere), `0.0.0.0` and `[::]` (which some systems connect to
//! a non-loopback interface), private ranges, IPv4-mapped non-loopback
//! addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tonic::codegen::http::Uri;

/// How a client talks to an address that passed [`check_plaintext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `https://`: TLS, to any host.
    Tls,
    /// `http://` to a loopback address: plain text that never leaves the machine.
    LoopbackPlaintext,
}

/// Why an address was refused; the address is shown without any user
/// info, path or query (which have no business in it, and could hold a
/// password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    /// Plain `http://` to a host that is not loopback.
    #[error(
        "refusing to send a token in clear to {0}: use https:// (plain http is only allowed to loopback addresses)"
    )]
    Plaintext(String),
    /// Not an `http://` or `https://` URL with a host.
    #[error(
        "{0:?} is not a control-plane address: use https://HOST:PORT (or http://127.0.0.1:PORT on this machine)"
    )]
    NotAnAddress(String),
}

/// Whether a token may be sent to `address`, and how: `https://` always,
/// `http://` only to loopback (see the module docs); nothing is resolved.
pub fn check_plaintext(address: &str) -> Result<Transport, AddressRefused> {
    let not_an_address = || AddressRefused::NotAnAddress(address.to_owned());
    let uri: Uri = address.parse().map_err(|_| not_an_address())?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(not_an_address)?;
    // The parser takes any digits after the host and reads no port from
    // those that are not a u16 (the connector would then use the
    // scheme's default port): that is a typo, not an address.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = authority.rsplit_once(host).map_or("", |(_, rest)| rest);
    if !after_host.is_empty() && uri.port_u16().is_none() {
        return Err(not_an_address());
    }
    match uri.scheme_str() {
        Some("https") => Ok(Transport::Tls),
        Some("http") if is_loopback_host(host) => Ok(Transport::LoopbackPlaintext),
        Some("http") => {
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            Err(AddressRefused::Plaintext(format!("http://{host}{port}")))
        }
        _ => Err(not_an_address()),
    }
}

/// `localhost`, `127.0.0.0/8`, `[::1]` or an IPv4-mapped loopback address,
/// read from the text only.
fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<Ipv6Addr>().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().map(IpAddr::V4),
    };
    // `to_canonical` turns `::ffff:a.b.c.d` into `a.b.c.d` (and nothing
    // else: IPv4-compatible `::a.b.c.d` stays IPv6 and is refused).
    ip.is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTENCE: &str = "use https:// (plain http is only allowed to loopback addresses)";

    #[test]
    fn plain_http_to_loopback_is_allowed_in_every_form() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.254",
            "127.0.0.0",
            "localhost",
            "LocalHost",
            "[::1]",
            "[0:0:0:0:0:0:0:1]",
            "[0000::0001]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
        ] {
            for address in [
                format!("http://{host}"),
                format!("http://{host}:7700"),
                format!("http://{host}:7700/"),
                format!("http://{host}:1"),
            ] {
                assert_eq!(
                    check_plaintext(&address),
                    Ok(Transport::LoopbackPlaintext),
                    "{address}"
                );
            }
        }
    }

    #[test]
    fn plain_http_to_anything_else_is_refused_naming_the_address() {
        for host in [
            // Names, which could resolve anywhere.
            "db.example",
            "sealplane.example.com",
            "localhost.",
            "localhost.example",
            "foo.localhost",
            "localhost6",
            "ip6-localhost",
            "my-laptop",
            // Spellings of 127.0.0.1 std does not parse: names to the connector.
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "127.0.0.1.",
            "127.0.0.1.example",
            // Other addresses: unspecified, private, public, link-local.
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "100.64.0.1",
            "8.8.8.8",
            "128.0.0.1",
            "126.255.255.255",
            "255.255.255.255",
            "[::]",
            "[::2]",
            "[fe80::1]",
            "[fd00::1]",
            "[2001:db8::1]",
            // IPv4-mapped and -compatible addresses that are not loopback.
            "[::ffff:10.0.0.1]",
            "[::ffff:0.0.0.0]",
            "[::ffff:192.168.1.1]",
            "[::127.0.0.1]",
            "[64:ff9b::127.0.0.1]",
        ] {
            for (address, shown) in [
                (format!("http://{host}"), format!("http://{host}")),
                (format!("http://{host}:7700"), format!("http://{host}:7700")),
                (
                    format!("http://{host}:7700/x?y"),
                    format!("http://{host}:7700"),
                ),
            ] {
                let refused = check_plaintext(&address).unwrap_err();
                assert_eq!(refused, AddressRefused::Plaintext(shown), "{address}");
                assert!(refused.to_string().contains(SENTENCE), "{refused}");
            }
        }
    }

    #[test]
    fn the_sentence_names_the_address_and_says_what_to_do() {
        assert_eq!(
            check_plaintext("http://db.example:7700")
                .unwrap_err()
                .to_string(),
            "refusing to send a token in clear to http://db.example:7700: use https:// (plain http is only allowed to loopback addresses)"
        );
    }

    #[test]
    fn the_host_is_the_one_connected_to_not_a_decoy() {
        // User info before `@` is not the host; and it is never echoed.
        let refused = check_plaintext("http://127.0.0.1:pw@db.example:7700").unwrap_err();
        assert_eq!(
            refused,
            AddressRefused::Plaintext("http://db.example:7700".into())
        );
        assert!(!refused.to_string().contains("pw"), "{refused}");
        assert_eq!(
            check_plaintext("http://user@127.0.0.1:7700"),
            Ok(Transport::LoopbackPlaintext)
        );
        // A loopback address in the path or query does not count.
        for address in [
            "http://db.example/127.0.0.1",
            "http://db.example?127.0.0.1",
            "http://db.example:7700/localhost",
        ] {
            assert!(
                matches!(check_plaintext(address), Err(AddressRefused::Plaintext(_))),
                "{address}"
            );
        }
    }

    #[test]
    fn the_scheme_is_read_as_the_client_reads_it() {
        // The URL parser reads the scheme in any letter case, as the
        // client does: what is TLS for one is TLS for the other.
        assert_eq!(check_plaintext("HTTPS://db.example"), Ok(Transport::Tls));
        assert_eq!(
            check_plaintext("HTTP://db.example:7700"),
            Err(AddressRefused::Plaintext("http://db.example:7700".into()))
        );
        assert_eq!(
            check_plaintext("Http://127.0.0.1:7700"),
            Ok(Transport::LoopbackPlaintext)
        );
    }

    #[test]
    fn https_is_allowed_to_any_host() {
        for address in [
            "https://sealplane.example:7700",
            "https://10.0.0.1:7700",
            "https://[2001:db8::1]:7700",
            "https://127.0.0.1:7700",
            "https://localhost",
        ] {
            assert_eq!(check_plaintext(address), Ok(Transport::Tls), "{address}");
        }
    }

    #[test]
    fn anything_else_is_not_an_address() {
        for address in [
            "",
            "127.0.0.1:7700",
            "db.example:7700",
            "tcp://127.0.0.1:7700",
            "ftp://127.0.0.1",
            "grpc://db.example:7700",
            "unix:///run/sealplane.sock",
            "http://",
            "http:///x",
            "https://",
            "http://a b",
            "http://[::1",
            "http://127.0.0.1:99999",
            "https://db.example:65536",
            "http://127.0.0.1:",
            "/path",
        ] {
            assert!(
                matches!(
                    check_plaintext(address),
                    Err(AddressRefused::NotAnAddress(_))
                ),
                "{address}: {:?}",
                check_plaintext(address)
            );
        }
        // The URL parser takes any bracketed host; it is no loopback address.
        assert!(check_plaintext("http://[zz]").is_err());
        assert_eq!(
            check_plaintext("tcp://127.0.0.1:7700")
                .unwrap_err()
                .to_string(),
            "\"tcp://127.0.0.1:7700\" is not a control-plane address: use https://HOST:PORT (or http://127.0.0.1:PORT on this machine)"
        );
    }
}
