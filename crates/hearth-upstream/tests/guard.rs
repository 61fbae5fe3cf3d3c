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

    // Metadata as the configured baseUrl: blocked unless allowPrivateNetwork: true.
    let meta = "http://169.254.169.254/v1";
    assert!(!allowed(&provider(meta, None), "http://169.254.169.254/v1/chat/completions"));
    assert!(!allowed(&provider(meta, Some(false)), "http://169.254.169.254/v1/models"));
    assert!(allowed(&provider(meta, Some(true)), "http://169.254.169.254/v1/chat/completions"));
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

#[test]
fn metadata_and_link_local_are_blocked() {
    let hosted = provider("https://api.example.com/v1", None);
    let lan = provider("http://10.0.0.5:8000/v1", None);
    let open = provider("https://api.example.com/v1", Some(true));
    for target in [
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
    ] {
        assert!(!allowed(&hosted, target), "{target} from a hosted provider");
        assert!(!allowed(&lan, target), "{target} from a LAN provider");
        assert!(allowed(&open, target), "{target} with allowPrivateNetwork: true");
    }
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
