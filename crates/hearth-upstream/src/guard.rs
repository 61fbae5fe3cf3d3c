//! Network guard for model requests (OpenClaw's SSRF rules, `openclaw-models-spec.md` §5).
//!
//! | destination | `allowPrivateNetwork` unset | `true` | `false` |
//! |---|---|---|---|
//! | the exact configured `baseUrl` origin, loopback or private | allowed | allowed | blocked |
//! | another loopback / private origin (other port, other host) | blocked | allowed | blocked |
//! | cloud metadata, link-local, NAT64 local-use `64:ff9b:1::/48` | blocked | allowed | blocked |
//! | public hosts | allowed | allowed | allowed |
//!
//! "Origin" is scheme, host and port exactly as in the configured `baseUrl`: `localhost` and
//! `127.0.0.1` are different origins, and a redirect to another port does not inherit trust.
//! Metadata endpoints are blocked even when they are the configured origin.
//!
//! Three layers: [`check`] before a request is sent, [`redirect_policy`] for every redirect
//! hop (at most [`MAX_REDIRECTS`]), and [`GuardedResolver`] for names that resolve to private
//! addresses (DNS rebinding: a public-looking name answering with `127.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hearth_config::Provider;
use hearth_config::resolve::{HostClass, classify_ip, host_class};

use crate::event::{ErrorClass, UpstreamError};

/// Redirect hops followed at most.
pub const MAX_REDIRECTS: usize = 3;

/// Host names of cloud metadata services (compared lowercased, without a trailing dot).
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// Where a destination is, for the guard: [`HostClass`] with metadata services apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Loopback,
    Private,
    /// Link-local addresses and NAT64 local-use prefixes.
    LinkLocal,
    /// Cloud metadata services (AWS, GCP, Azure, Alibaba, Oracle...).
    Metadata,
    Public,
}

impl Destination {
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Loopback => "loopback",
            Destination::Private => "private network",
            Destination::LinkLocal => "link-local",
            Destination::Metadata => "cloud metadata",
            Destination::Public => "public",
        }
    }
}

fn is_metadata_ip(ip: IpAddr) -> bool {
    match unmap(ip) {
        // AWS/GCP/Azure/Oracle, AWS ECS task metadata, Alibaba Cloud.
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(169, 254, 170, 2)
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        // AWS IMDS over IPv6.
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Classifies one address.
pub fn classify_addr(ip: IpAddr) -> Destination {
    if is_metadata_ip(ip) {
        return Destination::Metadata;
    }
    let ip = unmap(ip);
    if ip.is_unspecified() {
        // 0.0.0.0 and :: reach this machine.
        return Destination::Loopback;
    }
    if let IpAddr::V6(v6) = ip {
        let s = v6.segments();
        // NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215).
        if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
            return Destination::LinkLocal;
        }
    }
    match classify_ip(ip) {
        HostClass::Loopback => Destination::Loopback,
        HostClass::Private => Destination::Private,
        HostClass::LinkLocal => Destination::LinkLocal,
        HostClass::Public => Destination::Public,
    }
}

/// Classifies the host of a URL, by name (no DNS lookup; see [`GuardedResolver`]).
pub fn classify_url(url: &url::Url) -> Destination {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => classify_addr(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => classify_addr(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_NAMES.contains(&name.as_str()) {
                return Destination::Metadata;
            }
            match host_class(url) {
                HostClass::Loopback => Destination::Loopback,
                HostClass::Private => Destination::Private,
                HostClass::LinkLocal => Destination::LinkLocal,
                HostClass::Public => Destination::Public,
            }
        }
        None => Destination::Public,
    }
}

/// The guard of one provider: cheap to clone, `Send + Sync`, usable in a redirect policy.
#[derive(Debug, Clone)]
pub struct Guard {
    provider: String,
    origin: url::Origin,
    /// Lowercased host of the configured `baseUrl` (for [`GuardedResolver`]).
    host: Option<String>,
    allow_private_network: Option<bool>,
}

impl Guard {
    pub fn new(provider: &Provider) -> Self {
        Guard {
            provider: provider.id.clone(),
            origin: provider.base_url.origin(),
            host: provider.base_url.host_str().map(|h| h.to_ascii_lowercase()),
            allow_private_network: provider.allow_private_network,
        }
    }

    /// Whether a request to `url` may be sent.
    pub fn check(&self, url: &url::Url) -> Result<(), UpstreamError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.blocked(url, "only http and https are allowed"));
        }
        let destination = classify_url(url);
        let same_origin = url.origin() == self.origin;
        match self.decide(destination, same_origin) {
            Ok(()) => Ok(()),
            Err(why) => Err(self.blocked(url, &why)),
        }
    }

    fn decide(&self, destination: Destination, same_origin: bool) -> Result<(), String> {
        match (destination, self.allow_private_network) {
            (Destination::Public, _) => Ok(()),
            (_, Some(true)) => Ok(()),
            (d, Some(false)) => {
                Err(format!("{} destination and request.allowPrivateNetwork is false", d.as_str()))
            }
            (Destination::Metadata | Destination::LinkLocal, None) => Err(format!(
                "{} destinations are never trusted implicitly, even as the configured baseUrl",
                destination.as_str()
            )),
            (Destination::Loopback | Destination::Private, None) if same_origin => Ok(()),
            (d, None) => Err(format!(
                "{} destination other than the configured origin {}",
                d.as_str(),
                self.origin.ascii_serialization()
            )),
        }
    }

    /// Whether addresses a name resolved to may be connected to. `configured_host`: the name
    /// is the host of the configured `baseUrl` (its port is checked by [`Guard::check`]).
    fn allows_resolved(&self, name: &str, ip: IpAddr) -> bool {
        let configured = self.host.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(name));
        self.decide(classify_addr(ip), configured).is_ok()
    }

    fn blocked(&self, url: &url::Url, why: &str) -> UpstreamError {
        // The path and query may carry anything; the origin is enough to act on.
        let hint = if self.allow_private_network == Some(false) {
            "remove request.allowPrivateNetwork: false to trust the configured baseUrl"
        } else {
            "set request.allowPrivateNetwork: true on this provider to allow it"
        };
        UpstreamError::new(
            ErrorClass::Connect,
            format!(
                "{}: request to {} blocked by the network guard ({why}); {hint} (models.providers.{}.request)",
                self.provider,
                url.origin().ascii_serialization(),
                self.provider
            ),
        )
    }
}

/// Whether a model request of `provider` may go to `url`.
pub fn check(provider: &Provider, url: &url::Url) -> Result<(), UpstreamError> {
    Guard::new(provider).check(url)
}

/// A redirect policy that re-checks every hop with the provider's guard and follows at most
/// [`MAX_REDIRECTS`] hops.
pub fn redirect_policy(provider: &Provider) -> reqwest::redirect::Policy {
    let guard = Guard::new(provider);
    reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` starts with the original URL.
        if attempt.previous().len() > MAX_REDIRECTS {
            let message = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(message);
        }
        match guard.check(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e.message),
        }
    })
}

/// A DNS resolver that drops addresses the guard would block for the name resolved: a public
/// name that resolves to a private, loopback, link-local or metadata address is refused
/// unless `allowPrivateNetwork: true` (or, for private and loopback addresses, unless it is
/// the configured `baseUrl` host). Install it with `ClientBuilder::dns_resolver`.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
}

impl GuardedResolver {
    pub fn new(provider: &Provider) -> Self {
        GuardedResolver { guard: Arc::new(Guard::new(provider)) }
    }

    /// Resolves `name` and keeps the addresses the guard allows; an error when none is left.
    pub async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, UpstreamError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map_err(|e| UpstreamError::new(ErrorClass::Connect, format!("{name}: {e}")))?
            .collect();
        filter_resolved(&self.guard, name, addrs)
    }
}

fn filter_resolved(
    guard: &Guard,
    name: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    let total = addrs.len();
    let allowed: Vec<SocketAddr> =
        addrs.into_iter().filter(|a| guard.allows_resolved(name, a.ip())).collect();
    if allowed.is_empty() && total > 0 {
        return Err(UpstreamError::new(
            ErrorClass::Connect,
            format!(
                "{}: {name} resolves only to addresses the network guard blocks; set \
                 request.allowPrivateNetwork: true on this provider to allow them",
                guard.provider
            ),
        ));
    }
    Ok(allowed)
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

/// Whether the provider's key is acceptable as far as local markers go: a non-secret marker
/// (`"lmstudio"`, `"ollama-local"`, ...) is a valid credential only for loopback and private
/// hosts (`.local`, bare host names, RFC 1918). A real key, or no key, is always fine here.
pub fn local_marker_ok(provider: &Provider) -> bool {
    match &provider.api_key {
        Some(secret) if secret.is_local_marker() => {
            matches!(classify_url(&provider.base_url), Destination::Loopback | Destination::Private)
        }
        _ => true,
    }
}

/// The error for a marker key on a public host (see [`local_marker_ok`]), if it applies.
pub fn local_marker_error(provider: &Provider) -> Option<UpstreamError> {
    if local_marker_ok(provider) {
        return None;
    }
    let marker = provider.api_key.as_ref().map(|s| s.describe()).unwrap_or_default();
    Some(UpstreamError::new(
        ErrorClass::Auth,
        format!(
            "{}: apiKey {marker} is a local marker, accepted only for loopback and private \
             hosts; {} is public: set a real key",
            provider.id,
            provider.base_url.origin().ascii_serialization()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses() {
        for ip in ["169.254.169.254", "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254"]
        {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify_addr(ip), Destination::Metadata, "{ip}");
        }
        assert_eq!(classify_addr("169.254.1.1".parse().unwrap()), Destination::LinkLocal);
        assert_eq!(classify_addr("fe80::1".parse().unwrap()), Destination::LinkLocal);
        assert_eq!(classify_addr("64:ff9b:1::a".parse().unwrap()), Destination::LinkLocal);
        assert_eq!(classify_addr("0.0.0.0".parse().unwrap()), Destination::Loopback);
        assert_eq!(classify_addr("100.64.0.1".parse().unwrap()), Destination::Private);
        assert_eq!(classify_addr("fd12::1".parse().unwrap()), Destination::Private);
        assert_eq!(classify_addr("8.8.8.8".parse().unwrap()), Destination::Public);
    }

    #[test]
    fn metadata_names() {
        for u in ["http://metadata.google.internal/", "http://METADATA.google.internal./x"] {
            assert_eq!(classify_url(&url::Url::parse(u).unwrap()), Destination::Metadata, "{u}");
        }
        // Decimal and hex IPv4 forms are normalized by the URL parser.
        let u = url::Url::parse("http://2852039166/latest").unwrap();
        assert_eq!(classify_url(&u), Destination::Metadata);
        let u = url::Url::parse("http://0x7f000001:8000/").unwrap();
        assert_eq!(classify_url(&u), Destination::Loopback);
    }
}
