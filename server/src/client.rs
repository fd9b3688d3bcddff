//! Who a request comes from: the peer's address, or, when the peer is one of
//! `api.trusted_proxies`, the address that proxy forwarded in
//! `X-Forwarded-For`. A forwarded address from anyone else is ignored, so a
//! client cannot pick the address its sign-in failures and rate limit count
//! against.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The client behind `peer`: the rightmost `X-Forwarded-For` address that is
/// not itself a trusted proxy, when `peer` is one; `peer` otherwise.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !trusted.contains(ip)).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_only_through_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let spoof = headers("203.0.113.9");
        assert_eq!(client_address(peer, &spoof, &[proxy]), peer, "an untrusted peer cannot name another client");
        assert_eq!(client_address(proxy, &spoof, &[proxy]), "203.0.113.9".parse::<IpAddr>().unwrap());
        // The client may prepend anything; the address the proxy appended wins.
        let chain = headers("1.1.1.1, 203.0.113.9, 10.0.0.2");
        let trusted = ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(client_address(proxy, &chain, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
