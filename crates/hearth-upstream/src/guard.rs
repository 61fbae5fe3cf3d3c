//! Network guard for model requests (OpenClaw's SSRF rules, `openclaw-models-spec.md` §5).
//!
//! | destination | `allowPrivateNetwork` unset | `true` | `false` |
//! |---|---|---|---|
//! | the exact configured `baseUrl` origin, loopback or private | allowed | allowed | blocked |
//! | another loopback / private origin (other port, other host) | blocked | allowed | blocked |
//! | another origin (port, scheme) of the configured host name | blocked | allowed | blocked |
//! | cloud metadata, link-local, NAT64 local-use `64:ff9b:1::/48` | blocked | **blocked** | blocked |
//! | public hosts | allowed | allowed | allowed |
//!
//! Invariant: a request never reaches a cloud metadata service or a link-local address,
//! whatever `allowPrivateNetwork` says, even as the configured `baseUrl`, directly, through a
//! redirect or through a DNS answer. hearth is stricter than OpenClaw here (where `true` opens
//! metadata too): no model server lives at 169.254.169.254, and a redirect there from a
//! trusted LAN box would hand out cloud credentials (`docs/config-compat.md`).
//!
//! "Origin" is scheme, host and port exactly as in the configured `baseUrl`: `localhost` and
//! `127.0.0.1` are different origins, and a redirect to another port does not inherit trust.
//! An address is classified by what it reaches: every IPv6 form that embeds an IPv4 address
//! (mapped, compatible, NAT64, 6to4, Teredo: [`hearth_config::resolve::embedded_ipv4`]) by
//! that address, so `[::127.0.0.1]` is loopback and `[64:ff9b::a9fe:a9fe]` is metadata.
//!
//! Three layers: [`check`] before a request is sent, [`redirect_policy`] for every redirect
//! hop (at most [`MAX_REDIRECTS`]), and [`GuardedResolver`] for names that resolve to private
//! addresses (DNS rebinding: a public-looking name answering with `127.0.0.1`). The resolver
//! sees a name, never a port, so it trusts private answers for the configured host name
//! only, and [`Guard::check`] (run before every request and on every hop) refuses that name on
//! any other origin: private answers are trusted for the exact configured origin alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hearth_config::Provider;
use hearth_config::resolve::{HostClass, classify_ip, embedded_ipv4, host_class};

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

/// The IPv4 address an IPv6 address reaches, when it embeds one; else the address itself.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Classifies one address.
pub fn classify_addr(ip: IpAddr) -> Destination {
    if is_metadata_ip(ip) {
        return Destination::Metadata;
    }
    // `classify_ip` classifies embedded IPv4 addresses, `0.0.0.0/8`, `::` and the NAT64
    // local-use prefix too.
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
            return Err(self.blocked(url, &Refusal::fixed("only http and https are allowed")));
        }
        let same_origin = url.origin() == self.origin;
        // The resolver trusts private answers for the configured host name whatever the port
        // (it is never told one), so that name on another origin is refused here.
        if !same_origin
            && self.allow_private_network != Some(true)
            && let Some(url::Host::Domain(name)) = url.host()
            && self.is_configured_host(name)
        {
            return Err(self.blocked(
                url,
                &Refusal::opt_in(format!(
                    "another origin of the configured host; its DNS answers are trusted only for {}",
                    self.origin.ascii_serialization()
                )),
            ));
        }
        match self.decide(classify_url(url), same_origin) {
            Ok(()) => Ok(()),
            Err(refusal) => Err(self.blocked(url, &refusal)),
        }
    }

    fn is_configured_host(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.host.as_deref().is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(name))
    }

    fn decide(&self, destination: Destination, same_origin: bool) -> Result<(), Refusal> {
        match (destination, self.allow_private_network) {
            (Destination::Public, _) => Ok(()),
            // Before `allowPrivateNetwork`: no setting opens these (module doc).
            (Destination::Metadata | Destination::LinkLocal, _) => Err(Refusal::fixed(format!(
                "{} destinations are always blocked, whatever request.allowPrivateNetwork says \
                 and even as the configured baseUrl",
                destination.as_str()
            ))),
            (_, Some(true)) => Ok(()),
            (d, Some(false)) => Err(Refusal {
                why: format!("{} destination and request.allowPrivateNetwork is false", d.as_str()),
                hint: Some(
                    "remove request.allowPrivateNetwork: false to trust the configured baseUrl",
                ),
            }),
            (Destination::Loopback | Destination::Private, None) if same_origin => Ok(()),
            (d, None) => Err(Refusal::opt_in(format!(
                "{} destination other than the configured origin {}",
                d.as_str(),
                self.origin.ascii_serialization()
            ))),
        }
    }

    /// Whether an address a name resolved to may be connected to. Private answers count as
    /// the configured origin's when the name is the configured host: [`Guard::check`] has
    /// refused that name on every other origin before any lookup.
    fn allows_resolved(&self, name: &str, ip: IpAddr) -> bool {
        self.decide(classify_addr(ip), self.is_configured_host(name)).is_ok()
    }

    fn blocked(&self, url: &url::Url, refusal: &Refusal) -> UpstreamError {
        // The path and query may carry anything; the origin is enough to act on.
        let hint = refusal.hint.map(|h| format!("; {h}")).unwrap_or_default();
        UpstreamError::new(
            ErrorClass::Connect,
            format!(
                "{}: request to {} blocked by the network guard ({}){hint} (models.providers.{}.request)",
                self.provider,
                url.origin().ascii_serialization(),
                refusal.why,
                self.provider
            ),
        )
    }
}

/// Why the guard refused, and what setting would change that (none for metadata).
struct Refusal {
    why: String,
    hint: Option<&'static str>,
}

impl Refusal {
    fn fixed(why: impl Into<String>) -> Self {
        Refusal { why: why.into(), hint: None }
    }

    fn opt_in(why: String) -> Self {
        Refusal {
            why,
            hint: Some("set request.allowPrivateNetwork: true on this provider to allow it"),
        }
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

/// A DNS resolver that drops addresses the guard would block for the name resolved: a
/// link-local or metadata answer always; a private or loopback answer unless
/// `allowPrivateNetwork: true` or the name is the configured `baseUrl` host (whose other
/// origins [`Guard::check`] refuses). Install it with `ClientBuilder::dns_resolver`.
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
        self.filter(name, addrs)
    }

    /// Keeps the answers for `name` the guard allows; an error when answers came and none is
    /// left. The decision half of [`GuardedResolver::lookup`].
    pub fn filter(
        &self,
        name: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, UpstreamError> {
        filter_resolved(&self.guard, name, addrs)
    }
}

fn filter_resolved(
    guard: &Guard,
    name: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    let total = addrs.len();
    let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.into_iter().partition(|a| guard.allows_resolved(name, a.ip()));
    if allowed.is_empty() && total > 0 {
        // No setting opens metadata or link-local answers; only say so when one would help.
        let openable = refused
            .iter()
            .any(|a| matches!(classify_addr(a.ip()), Destination::Loopback | Destination::Private));
        let hint = if openable {
            "; set request.allowPrivateNetwork: true on this provider to allow them"
        } else {
            " (cloud metadata or link-local, never allowed)"
        };
        return Err(UpstreamError::new(
            ErrorClass::Connect,
            format!(
                "{}: {name} resolves only to addresses the network guard blocks{hint}",
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

    fn check(cases: &[(&str, Destination)]) {
        for (ip, want) in cases {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(classify_addr(addr), *want, "{ip}");
        }
    }

    #[test]
    fn metadata_addresses() {
        use Destination::*;
        check(&[
            ("169.254.169.254", Metadata),
            ("100.100.100.200", Metadata),
            ("fd00:ec2::254", Metadata),
            ("::ffff:169.254.169.254", Metadata),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("64:ff9b:1::a", LinkLocal),
            ("0.0.0.0", Loopback),
            ("0.1.2.3", Loopback),
            ("::", Loopback),
            ("100.64.0.1", Private),
            ("fd12::1", Private),
            ("8.8.8.8", Public),
        ]);
    }

    /// Every IPv6 form that embeds an IPv4 address is classified by that address.
    #[test]
    fn embedded_ipv4_forms() {
        use Destination::*;
        check(&[
            // IPv4-compatible `::a.b.c.d`; `::1` stays IPv6 loopback.
            ("::127.0.0.1", Loopback),
            ("::169.254.169.254", Metadata),
            ("::10.0.0.1", Private),
            ("::8.8.8.8", Public),
            ("::1", Loopback),
            // IPv4-mapped and IPv4-translated.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:0:169.254.169.254", Metadata),
            // NAT64 well-known prefix.
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::c0a8:101", Private),
            ("64:ff9b::808:808", Public),
            // 6to4: the IPv4 address is bits 16-47.
            ("2002:a9fe:a9fe::", Metadata),
            ("2002:7f00:1::1", Loopback),
            ("2002:a00:1:5::1", Private),
            ("2002:808:808::1", Public),
            // Teredo: the client address is the last 32 bits, inverted.
            ("2001:0:4136:e378:8000:63bf:5601:5601", Metadata),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Loopback),
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", Private),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Public),
            // Not Teredo (2001:db8::/32 and other 2001::/16 space).
            ("2001:db8::7f00:1", Public),
        ]);
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
