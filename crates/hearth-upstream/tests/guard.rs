//! Network guard: acceptance scenario 20 of `openclaw-models-spec.md` §16 (exact-origin trust),
//! cloud metadata and link-local destinations, redirects, DNS answers, local marker keys.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hearth_config::{Config, Provider, load_str};
use hearth_testkit::{FakeUpstream, Reply};
use hearth_upstream::ErrorClass;
use hearth_upstream::guard::{self, GuardedResolver};

fn config(providers: &str) -> Config {
    let text = format!(r#"{{models: {{mode: "replace", providers: {{ {providers} }}}}}}"#);
    let loaded = load_str("guard.json5", &text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

fn provider(base_url: &str, allow: Option<bool>) -> Provider {
    let request = match allow {
        Some(v) => format!(", request: {{allowPrivateNetwork: {v}}}"),
        None => String::new(),
    };
    let c = config(&format!(r#"local: {{baseUrl: "{base_url}"{request}, models: [{{id: "m"}}]}}"#));
    c.providers["local"].clone()
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

fn allowed(p: &Provider, u: &str) -> bool {
    match guard::check(p, &url(u)) {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(e.class, ErrorClass::Connect, "{e}");
            assert!(e.message.contains("network guard"), "{e}");
            false
        }
    }
}

/// Scenario 20: `baseUrl = "http://192.168.1.50:8000/v1"`.
#[test]
fn scenario_20_exact_origin_trust() {
    let base = "http://192.168.1.50:8000/v1";
    let p = provider(base, None);
    assert!(allowed(&p, "http://192.168.1.50:8000/v1/chat/completions"));
    assert!(!allowed(&p, "http://192.168.1.50:9000/v1/chat/completions"), "another port");
    assert!(!allowed(&p, "https://192.168.1.50:8000/v1/chat/completions"), "another scheme");
    assert!(!allowed(&p, "http://192.168.1.51:8000/v1/chat/completions"), "another host");

    let p = provider(base, Some(false));
    assert!(!allowed(&p, "http://192.168.1.50:8000/v1/chat/completions"), "false withdraws trust");
    assert!(!allowed(&p, "http://192.168.1.50:9000/v1/chat/completions"));

    let p = provider(base, Some(true));
    assert!(allowed(&p, "http://192.168.1.50:8000/v1/chat/completions"));
    assert!(allowed(&p, "http://192.168.1.50:9000/v1/chat/completions"));

    // Metadata as the configured baseUrl: blocked whatever allowPrivateNetwork says.
    let meta = "http://169.254.169.254/v1";
    for allow in [None, Some(false), Some(true)] {
        let p = provider(meta, allow);
        assert!(!allowed(&p, "http://169.254.169.254/v1/chat/completions"), "{allow:?}");
    }
    let link_local = "http://169.254.10.20:8000/v1";
    for allow in [None, Some(false), Some(true)] {
        let p = provider(link_local, allow);
        assert!(!allowed(&p, "http://169.254.10.20:8000/v1/chat/completions"), "{allow:?}");
    }
}

/// One provider, a table of destinations and whether each is allowed.
fn check(base: &str, allow: Option<bool>, cases: &[(&str, bool)]) {
    let p = provider(base, allow);
    for (target, want) in cases {
        assert_eq!(allowed(&p, target), *want, "{target} from {base} with {allow:?}");
    }
}

#[test]
fn public_destinations_are_always_allowed() {
    for allow in [None, Some(true), Some(false)] {
        let p = provider("http://127.0.0.1:8000/v1", allow);
        assert!(allowed(&p, "https://api.openai.com/v1/chat/completions"), "{allow:?}");
        assert!(allowed(&p, "http://93.184.216.34/x"), "{allow:?}");
    }
}

#[test]
fn loopback_origins_are_exact() {
    let p = provider("http://127.0.0.1:1234/v1", None);
    assert!(allowed(&p, "http://127.0.0.1:1234/v1/responses"));
    assert!(!allowed(&p, "http://127.0.0.1:1235/v1/responses"));
    // Another spelling of the same machine is another origin.
    assert!(!allowed(&p, "http://localhost:1234/v1/responses"));
    assert!(!allowed(&p, "http://[::1]:1234/v1/responses"));
    assert!(!allowed(&p, "http://0.0.0.0:1234/v1/responses"));
    // Default ports are part of the origin.
    let p = provider("http://gpu-box.local/v1", None);
    assert!(allowed(&p, "http://gpu-box.local:80/v1/models"));
    assert!(!allowed(&p, "http://gpu-box.local:8080/v1/models"));
}

const METADATA_AND_LINK_LOCAL: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://169.254.10.20:8000/",
    "http://[fe80::1]:8000/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    // 169.254.169.254 written as one decimal number.
    "http://2852039166/latest/meta-data/",
    // 169.254.169.254 embedded in IPv6: compatible, NAT64, 6to4, Teredo, translated.
    "http://[::169.254.169.254]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/latest/meta-data/",
    "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/",
];

#[test]
fn metadata_and_link_local_are_blocked_whatever_allow_private_network_says() {
    for base in ["https://api.example.com/v1", "http://10.0.0.5:8000/v1", "http://127.0.0.1:1/v1"] {
        for allow in [None, Some(true), Some(false)] {
            let cases: Vec<(&str, bool)> =
                METADATA_AND_LINK_LOCAL.iter().map(|t| (*t, false)).collect();
            check(base, allow, &cases);
        }
    }
}

/// IPv6 spellings of loopback and private IPv4 addresses are loopback and private: another
/// origin than the configured one, blocked unless `allowPrivateNetwork: true`.
#[test]
fn ipv6_forms_embedding_ipv4_are_classified_by_the_ipv4_address() {
    let embedded = [
        "http://[::127.0.0.1]:1234/v1/models",
        "http://[::ffff:127.0.0.1]:1234/v1/models",
        "http://[64:ff9b::7f00:1]:1234/v1/models",
        "http://[2002:7f00:1::]:1234/v1/models",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:1234/v1/models",
        "http://[::10.0.0.5]:8000/v1/models",
        "http://[64:ff9b::c0a8:101]/",
        "http://[2002:c0a8:101::1]/",
    ];
    let hosted: Vec<(&str, bool)> = embedded.iter().map(|t| (*t, false)).collect();
    check("https://api.example.com/v1", None, &hosted);
    check("http://127.0.0.1:1234/v1", None, &hosted);
    let open: Vec<(&str, bool)> = embedded.iter().map(|t| (*t, true)).collect();
    check("https://api.example.com/v1", Some(true), &open);
    // Public IPv4 addresses behind the same forms stay public.
    check(
        "https://api.example.com/v1",
        None,
        &[
            ("http://[64:ff9b::808:808]/", true),
            ("http://[2002:808:808::1]/", true),
            ("http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", true),
        ],
    );
}

/// The resolver trusts private answers for the configured host name (it never sees a port),
/// so that name on any other origin is refused before a lookup could be trusted.
#[test]
fn the_configured_host_is_trusted_on_its_exact_origin_only() {
    let split_dns = "http://llm.example.com:8000/v1";
    check(
        split_dns,
        None,
        &[
            ("http://llm.example.com:8000/v1/chat/completions", true),
            ("http://LLM.example.com:8000/v1/models", true),
            // A trailing dot is another spelling, so another origin.
            ("http://llm.example.com.:8000/v1/models", false),
            ("http://llm.example.com:9000/v1/chat/completions", false),
            ("http://llm.example.com/", false),
            ("https://llm.example.com:8000/v1/models", false),
            ("http://LLM.EXAMPLE.COM.:9000/", false),
            // Other public names are not the configured host: public as ever.
            ("http://other.example.com:9000/", true),
        ],
    );
    check(split_dns, Some(true), &[("http://llm.example.com:9000/", true)]);
    check(split_dns, Some(false), &[("http://llm.example.com:9000/", false)]);
    // A hosted provider: a hop to another port or to plain http of its host is refused too.
    check(
        "https://api.example.com/v1",
        None,
        &[
            ("https://api.example.com/v2/models", true),
            ("https://api.example.com:8443/v1/models", false),
            ("http://api.example.com/v1/models", false),
        ],
    );
}

#[test]
fn private_destinations_other_than_the_origin_are_blocked() {
    let hosted = provider("https://api.example.com/v1", None);
    for target in [
        "http://127.0.0.1:8000/",
        "http://localhost:11434/api/chat",
        "http://192.168.0.1/",
        "http://10.1.2.3:8080/",
        "http://gpu-box.local:1234/",
        "http://intranet/",
    ] {
        assert!(!allowed(&hosted, target), "{target}");
    }
    assert!(!allowed(&hosted, "file:///etc/passwd"));
    assert!(!allowed(&hosted, "ftp://api.example.com/"));
}

/// Redirects are re-checked hop by hop: a redirect from the trusted origin to another local
/// port is refused, and at most three hops are followed.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_rechecked() {
    let trusted = FakeUpstream::start().await.unwrap();
    let other = FakeUpstream::start().await.unwrap();
    let p = provider(&format!("{}/v1", trusted.origin()), None);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        reqwest::Client::builder().redirect(guard::redirect_policy(&p)).no_proxy().build().unwrap();

    // Same origin: followed.
    trusted.push(Reply::json(302, "{}").header("location", "/v1/elsewhere"));
    trusted.push(Reply::json(200, r#"{"ok":true}"#));
    let r = client.get(format!("{}/v1/models", trusted.origin())).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Another loopback port: refused before any request reaches it.
    trusted.push(Reply::json(302, "{}").header("location", &format!("{}/steal", other.origin())));
    let e = client.get(format!("{}/v1/models", trusted.origin())).send().await.unwrap_err();
    let chain = format!("{:?}", error_chain(&e));
    assert!(chain.contains("network guard"), "{chain}");
    assert!(other.requests().is_empty(), "the other origin was contacted");

    // More than three hops.
    for _ in 0..4 {
        trusted.push(Reply::json(302, "{}").header("location", "/v1/again"));
    }
    trusted.push(Reply::json(200, "{}"));
    let e = client.get(format!("{}/v1/models", trusted.origin())).send().await.unwrap_err();
    assert!(format!("{:?}", error_chain(&e)).contains("redirects"), "{e}");
}

/// With `allowPrivateNetwork: true`, a redirect from the trusted server to another local port
/// is followed, and a redirect to a metadata address (in any spelling) is still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_metadata_is_refused_even_with_allow_private_network() {
    let trusted = FakeUpstream::start().await.unwrap();
    let other = FakeUpstream::start().await.unwrap();
    let p = provider(&format!("{}/v1", trusted.origin()), Some(true));
    hearth_upstream::client::install_crypto();
    let client = reqwest::Client::builder()
        .redirect(guard::redirect_policy(&p))
        .dns_resolver(std::sync::Arc::new(GuardedResolver::new(&p)))
        .connect_timeout(std::time::Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap();

    // Another loopback port: allowed by `true`.
    trusted.push(Reply::json(302, "{}").header("location", &format!("{}/v1/x", other.origin())));
    other.push(Reply::json(200, r#"{"ok":true}"#));
    let r = client.get(format!("{}/v1/models", trusted.origin())).send().await.unwrap();
    assert_eq!(r.status(), 200);

    for location in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fe80::1]:8080/",
    ] {
        trusted.push(Reply::json(302, "{}").header("location", location));
        let e = client.get(format!("{}/v1/models", trusted.origin())).send().await.unwrap_err();
        let chain = format!("{:?}", error_chain(&e));
        assert!(chain.contains("network guard") && chain.contains("always blocked"), "{chain}");
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

/// A name that resolves to loopback is refused unless it is the configured host.
#[tokio::test(flavor = "multi_thread")]
async fn dns_answers_are_checked() {
    let hosted = GuardedResolver::new(&provider("https://api.example.com/v1", None));
    let e = hosted.lookup("localhost").await.unwrap_err();
    assert!(e.message.contains("network guard"), "{e}");

    let local = GuardedResolver::new(&provider("http://localhost:8000/v1", None));
    let addrs: Vec<SocketAddr> = local.lookup("localhost").await.unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));

    let open = GuardedResolver::new(&provider("https://api.example.com/v1", Some(true)));
    assert!(!open.lookup("localhost").await.unwrap().is_empty());

    let closed = GuardedResolver::new(&provider("http://localhost:8000/v1", Some(false)));
    assert!(closed.lookup("localhost").await.is_err());
}

/// DNS answers with metadata or link-local addresses are dropped whatever the setting and
/// whatever the name, the configured host included.
#[test]
fn metadata_dns_answers_are_dropped() {
    let answers = |ips: &[&str]| -> Vec<SocketAddr> {
        ips.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), 0)).collect()
    };
    let bad = ["169.254.169.254", "64:ff9b::a9fe:a9fe", "::169.254.169.254", "fe80::1"];
    for allow in [None, Some(true), Some(false)] {
        let r = GuardedResolver::new(&provider("http://llm.example.com:8000/v1", allow));
        for name in ["llm.example.com", "evil.example.net"] {
            let e = r.filter(name, answers(&bad)).unwrap_err();
            assert!(e.message.contains("never allowed"), "{e}");
            let mixed = r.filter(name, answers(&["169.254.169.254", "93.184.216.34"])).unwrap();
            assert_eq!(mixed, answers(&["93.184.216.34"]), "{name} {allow:?}");
        }
        // Private answers: the configured host's are trusted unless `false`; another name's
        // only with `true`.
        let private = answers(&["10.1.2.3", "::ffff:192.168.1.9"]);
        assert_eq!(r.filter("llm.example.com", private.clone()).is_ok(), allow != Some(false));
        assert_eq!(r.filter("evil.example.net", private).is_ok(), allow == Some(true));
    }
}

/// Scenario 21: a local marker key is a valid credential for loopback, private, `.local` and
/// bare host names only.
#[test]
fn local_marker_keys() {
    let with_key = |base: &str, key: &str| {
        let c =
            config(&format!(r#"p: {{baseUrl: "{base}", apiKey: "{key}", models: [{{id: "m"}}]}}"#));
        c.providers["p"].clone()
    };
    for base in [
        "http://127.0.0.1:1234/v1",
        "http://localhost:11434",
        "http://gpu-box.local:1234/v1",
        "http://192.168.1.50:8000/v1",
        "http://gpubox:8000/v1",
    ] {
        for key in ["lmstudio", "ollama-local", "sk-no-key-required"] {
            let p = with_key(base, key);
            assert!(guard::local_marker_ok(&p), "{key} at {base}");
            assert!(guard::local_marker_error(&p).is_none());
        }
    }
    for base in ["https://api.example.com/v1", "http://169.254.169.254/v1"] {
        let p = with_key(base, "ollama-local");
        assert!(!guard::local_marker_ok(&p), "{base}");
        let e = guard::local_marker_error(&p).unwrap();
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(e.message.contains("marker(ollama-local)"), "{e}");
    }
    // A real key is not a marker: nothing to check.
    assert!(guard::local_marker_ok(&with_key("https://api.example.com/v1", "sk-abcdef123456")));
    let p = provider("https://api.example.com/v1", None);
    assert!(guard::local_marker_ok(&p), "no key at all");
}
