//! The HTTP client outgoing webhooks are sent with, closed to the platform's own network.
//!
//! An endpoint URL is a string a tenant chose; sent naively it reaches loopback services, the
//! VPC, or the cloud metadata service (169.254.169.254). So: `https` only (plain `http` to
//! loopback only when local development allows it), every address a name resolves to is
//! checked when the connection is made (the resolver below is the one the connection uses, so
//! a name that resolves to a public address when checked and a private one when connecting,
//! DNS rebinding, cannot slip through), IP literals are checked before sending, no proxy from
//! the environment, no redirects followed, short timeouts, and at most a few KiB of the answer
//! read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How much of a receiver's answer is kept (for the delivery log).
pub const KEPT_BODY_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct EgressPolicy {
    /// Allow `http://` to loopback addresses (local development and tests only).
    pub allow_loopback_http: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self { allow_loopback_http: false, connect_timeout: Duration::from_secs(3), timeout: Duration::from_secs(10) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("only https endpoints are allowed")]
    Scheme,
    #[error("the endpoint has no host")]
    NoHost,
    #[error("{0} is not a public address")]
    Forbidden(IpAddr),
    #[error("could not reach the endpoint: {0}")]
    Http(#[source] reqwest::Error),
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The first `KEPT_BODY_BYTES` of the answer, as text.
    pub body: String,
    pub latency_ms: u64,
}

#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    policy: EgressPolicy,
}

impl Egress {
    pub fn new(policy: EgressPolicy) -> Result<Self, reqwest::Error> {
        Self::build(policy, None)
    }

    /// As `new`, with names resolved by `resolver` before the same checks (tests give names
    /// that resolve to the addresses an attacker would pick).
    pub fn with_resolver(policy: EgressPolicy, resolver: Arc<dyn Resolve>) -> Result<Self, reqwest::Error> {
        Self::build(policy, Some(resolver))
    }

    fn build(policy: EgressPolicy, inner: Option<Arc<dyn Resolve>>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .dns_resolver(Arc::new(PublicOnly { allow_loopback: policy.allow_loopback_http, inner }))
            .build()?;
        Ok(Self { client, policy })
    }

    /// Whether `url` may be sent to at all (see [`check_url`]).
    pub fn check(&self, url: &Url) -> Result<(), EgressError> {
        check_url(url, self.policy.allow_loopback_http)
    }

    /// POSTs `body` as JSON with `headers` and reads at most `KEPT_BODY_BYTES` of the answer.
    pub async fn post(&self, url: &Url, headers: &[(&str, String)], body: Vec<u8>) -> Result<Answer, EgressError> {
        self.check(url)?;
        let started = Instant::now();
        let mut request = self.client.post(url.clone()).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(EgressError::Http)?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < KEPT_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(KEPT_BODY_BYTES - kept.len())]),
                // The status is the answer; an unreadable body only shortens the log.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// Whether `url` may be sent to at all: its scheme and, for an IP literal, its address. Names
/// are checked again at every connection, by the resolver.
pub fn check_url(url: &Url, allow_loopback_http: bool) -> Result<(), EgressError> {
    let loopback_allowed = |host: &str| {
        allow_loopback_http && (host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    };
    let host = url.host_str().ok_or(EgressError::NoHost)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match url.scheme() {
        "https" => {}
        "http" if loopback_allowed(host) => {}
        _ => return Err(EgressError::Scheme),
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && forbidden(ip)
        && !loopback_allowed(host)
    {
        return Err(EgressError::Forbidden(ip));
    }
    Ok(())
}

/// Resolves as the system does (or as `inner` does), then refuses a name any of whose addresses
/// is not public.
struct PublicOnly {
    allow_loopback: bool,
    inner: Option<Arc<dyn Resolve>>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let inner = self.inner.clone();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = match inner {
                Some(inner) => inner.resolve(name).await?.collect(),
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            if let Some(bad) =
                addresses.iter().map(SocketAddr::ip).find(|ip| forbidden(*ip) && !(allow_loopback && ip.is_loopback()))
            {
                return Err(Box::new(EgressError::Forbidden(bad)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is outside the public internet: loopback, private, link-local (the
/// metadata service), carrier-grade NAT, unspecified, broadcast, multicast, documentation and
/// reserved ranges, and every IPv6 form that embeds or translates to such an IPv4 address
/// (IPv4-mapped, -compatible and -translated, NAT64, 6to4, ISATAP) or tunnels to one (Teredo).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    let low_v4 = embedded_v4(segments[6], segments[7]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo: tunnels to an IPv4 host, never a receiver
        || (segments[0] == 0x2001 && segments[1] == 0x0002 && segments[2] == 0) // benchmarking
        || (segments[0] == 0x2001 && (segments[1] & 0xfff0) == 0x0020) // ORCHIDv2
        || (segments[..4] == [0x100, 0, 0, 0]) // discard-only
        || (segments[..6] == [0; 6] && forbidden_v4(low_v4)) // IPv4-compatible
        || (segments[..6] == [0, 0, 0, 0, 0xffff, 0] && forbidden_v4(low_v4)) // IPv4-translated (SIIT)
        || (segments[0] == 0x2002 && forbidden_v4(embedded_v4(segments[1], segments[2]))) // 6to4
        || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && forbidden_v4(low_v4)) // NAT64, well-known prefix
        || (segments[..3] == [0x64, 0xff9b, 1]) // NAT64, local-use prefix: the network's own translator
        || ((segments[4] & 0xfdff) == 0 && segments[5] == 0x5efe && forbidden_v4(low_v4)) // ISATAP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_metadata_and_embedded_forms_are_forbidden() {
        for address in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fd00::1",
            "fe80::1",
            "2002:7f00:0001::1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:ffff::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8:1::5efe:a00:1",
            "2606:4700::200:5efe:7f00:1",
            "100::1",
        ] {
            assert!(forbidden(address.parse().unwrap()), "{address} should be forbidden");
        }
        for address in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
            "::ffff:0:5db8:d822",
            "2002:5db8:d822::1",
            "64:ff9b::5db8:d822",
        ] {
            assert!(!forbidden(address.parse().unwrap()), "{address} should be public");
        }
    }

    #[test]
    fn only_https_and_no_private_literals_unless_local_development_allows_loopback() {
        let strict = Egress::new(EgressPolicy::default()).unwrap();
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(strict.check(&url("https://hooks.example.com/x")).is_ok());
        assert!(matches!(strict.check(&url("http://hooks.example.com/x")), Err(EgressError::Scheme)));
        assert!(matches!(strict.check(&url("ftp://hooks.example.com/x")), Err(EgressError::Scheme)));
        for literal in
            ["https://127.0.0.1/", "https://[::1]/", "https://169.254.169.254/latest", "https://[::ffff:10.0.0.1]/"]
        {
            assert!(matches!(strict.check(&url(literal)), Err(EgressError::Forbidden(_))), "{literal}");
        }
        assert!(matches!(strict.check(&url("http://127.0.0.1:8080/")), Err(EgressError::Scheme)));
        let local = Egress::new(EgressPolicy { allow_loopback_http: true, ..EgressPolicy::default() }).unwrap();
        assert!(local.check(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(local.check(&url("http://localhost:8080/")).is_ok());
        assert!(matches!(local.check(&url("http://10.0.0.1/")), Err(EgressError::Scheme)));
        assert!(matches!(local.check(&url("https://10.0.0.1/")), Err(EgressError::Forbidden(_))));
    }
}
