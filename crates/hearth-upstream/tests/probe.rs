//! Runtime truth: the real llama.cpp server (a served window smaller than the configured one is
//! detected and reported), and scripted upstreams with the shapes vLLM, Ollama and LM Studio
//! answer with (`shared/reference/local-servers.md` §2).
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_config::{Config, load_str};
use hearth_testkit::{FakeUpstream, LlamaServer, Reply};
use hearth_upstream::ErrorClass;
use hearth_upstream::probe::{
    self, ContextWarning, ModelState, Probes, ServerKind, effective_context, effective_context_for,
};

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn config(providers: &str) -> Config {
    let text = format!(r#"{{models: {{mode: "replace", providers: {{ {providers} }}}}}}"#);
    let loaded = load_str("probe.json5", &text, &env());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

fn paths(up: &FakeUpstream) -> Vec<String> {
    up.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

/// `--ctx-size 256` on the server, `contextWindow: 4096` in the config.
#[tokio::test(flavor = "multi_thread")]
async fn llama_cpp_served_window_smaller_than_configured() {
    let server = LlamaServer::start(256)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let c = config(&format!(
        r#"local: {{baseUrl: "{}/v1", api: "openai-responses", models: [{{id: "tiny", contextWindow: 4096}}, {{id: "other", contextWindow: 128}}]}}"#,
        server.origin()
    ));
    let provider = &c.providers["local"];
    let p = probe::probe(provider, &env()).await;
    assert!(p.reachable, "{p:?}");
    assert!(p.error.is_none(), "{p:?}");
    assert_eq!(p.kind, ServerKind::LlamaCpp);
    assert!(p.latency.is_some());
    assert!(p.listed("tiny"));
    assert!(!p.listed("other"), "llama.cpp lists only its alias");
    assert!(p.any_model_id, "single-model llama.cpp answers any id");
    let tiny = p.find("tiny").unwrap();
    assert_eq!(tiny.state, ModelState::Loaded);
    assert_eq!(tiny.context_window, Some(256));
    assert_eq!(tiny.max_context_window, Some(2048), "n_ctx_train of the tiny model");
    // llama-server has /v1/responses.
    assert_eq!(p.responses_api, Some(true));

    let probes = Probes::new(Arc::new(env()));
    let served = probes.served_context(provider, "tiny").await;
    assert_eq!(served, Some(256));
    let model = provider.model("tiny").unwrap();
    let (budget, warning) = effective_context_for(model, served);
    assert_eq!(budget, 256);
    let warning = warning.unwrap();
    assert_eq!(warning, ContextWarning { configured: 4096, served: 256 });
    assert!(warning.to_string().contains("4096"), "{warning}");
    // A config that claims less than the server gives is not warned about.
    let small = provider.model("other").unwrap();
    assert_eq!(
        effective_context_for(small, probes.served_context(provider, "other").await),
        (128, None)
    );
    assert_eq!(effective_context(4096, None), (4096, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn llama_cpp_loading_model() {
    let up = FakeUpstream::start().await.unwrap();
    let loading = r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;
    up.push(Reply::json(503, loading));
    let c = config(&format!(r#"l: {{baseUrl: "{}/v1", models: [{{id: "qwen3"}}]}}"#, up.origin()));
    let p = probe::probe(&c.providers["l"], &env()).await;
    assert!(p.reachable);
    assert_eq!(p.kind, ServerKind::LlamaCpp);
    assert_eq!(p.find("qwen3").unwrap().state, ModelState::Loading);
    assert_eq!(p.error.as_ref().unwrap().class, ErrorClass::Loading);
    assert_eq!(paths(&up), ["GET /v1/models"]);
}

/// llama.cpp router mode (`--models-dir`): `/models` rows carry `status.value`.
#[tokio::test(flavor = "multi_thread")]
async fn llama_cpp_router_mode() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        200,
        r#"{"object":"list","data":[
          {"id":"qwen3-8b","object":"model","owned_by":"llamacpp","status":{"value":"loaded","args":["--ctx-size","8192"]}},
          {"id":"gemma-3","object":"model","owned_by":"llamacpp","status":{"value":"unloaded"}},
          {"id":"mistral","object":"model","owned_by":"llamacpp","status":{"value":"loading"}}]}"#,
    ));
    let c = config(&format!(r#"l: {{baseUrl: "{}/v1"}}"#, up.origin()));
    let p = probe::probe(&c.providers["l"], &env()).await;
    assert_eq!(p.kind, ServerKind::LlamaCpp);
    assert!(!p.any_model_id);
    assert_eq!(p.find("qwen3-8b").unwrap().state, ModelState::Loaded);
    assert_eq!(p.find("gemma-3").unwrap().state, ModelState::NotLoaded);
    assert_eq!(p.find("mistral").unwrap().state, ModelState::Loading);
    assert!(p.find("nope").is_none());
    assert_eq!(paths(&up), ["GET /v1/models"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn vllm_max_model_len_and_lora_parent() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        200,
        r#"{"object":"list","data":[
          {"id":"Qwen/Qwen3-32B","object":"model","created":1760000000,"owned_by":"vllm","root":"/models/Qwen3-32B","parent":null,"max_model_len":40960,
           "permission":[{"id":"modelperm-1","object":"model_permission","allow_sampling":true}]},
          {"id":"sql-lora","object":"model","created":1760000000,"owned_by":"vllm","root":"/adapters/sql","parent":"Qwen/Qwen3-32B","max_model_len":null}]}"#,
    ));
    let c = config(&format!(
        r#"gpu: {{baseUrl: "{}/v1", models: [{{id: "Qwen/Qwen3-32B", contextWindow: 131072}}]}}"#,
        up.origin()
    ));
    let provider = &c.providers["gpu"];
    let probes = Probes::new(Arc::new(env()));
    let p = probes.get(provider).await;
    assert_eq!(p.kind, ServerKind::Vllm);
    assert!(p.reachable && p.error.is_none(), "{p:?}");
    let base = p.find("Qwen/Qwen3-32B").unwrap();
    assert_eq!((base.state, base.context_window), (ModelState::Loaded, Some(40960)));
    assert_eq!(p.find("sql-lora").unwrap().context_window, Some(40960), "LoRA inherits its parent");
    assert_eq!(p.find("qwen/qwen3-32b").unwrap().id, "Qwen/Qwen3-32B", "any case");
    assert_eq!(p.responses_api, None, "not checked: no model uses openai-responses");

    // Cached: no new request within the TTL.
    assert_eq!(probes.served_context(provider, "Qwen/Qwen3-32B").await, Some(40960));
    assert_eq!(probes.cached_context(provider, "Qwen/Qwen3-32B"), Some(40960));
    assert_eq!(paths(&up), ["GET /v1/models"]);
    let model = provider.model("Qwen/Qwen3-32B").unwrap();
    let (budget, warning) = effective_context_for(model, Some(40960));
    assert_eq!(budget, 40960);
    assert_eq!(warning, Some(ContextWarning { configured: 131072, served: 40960 }));

    // A context-overflow error teaches a smaller window.
    probes.learn_context(provider, "Qwen/Qwen3-32B", 32768);
    assert_eq!(probes.served_context(provider, "Qwen/Qwen3-32B").await, Some(32768));
    assert_eq!(paths(&up).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_ps_show_and_modelfile_num_ctx() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        200,
        r#"{"models":[
          {"name":"qwen3:8b","model":"qwen3:8b","modified_at":"2026-08-01T10:00:00Z","size":5225376047,"digest":"500a1f","details":{"format":"gguf","family":"qwen3","parameter_size":"8.2B","quantization_level":"Q4_K_M"}},
          {"name":"llama3.3:latest","model":"llama3.3:latest","size":42520413916,"digest":"a6eb4","details":{"format":"gguf","family":"llama"}},
          {"name":"gemma3:4b","model":"gemma3:4b","size":3338801804,"digest":"a2af6","details":{"format":"gguf","family":"gemma3"}}]}"#,
    ));
    up.push(Reply::json(
        200,
        r#"{"models":[{"name":"qwen3:8b","model":"qwen3:8b","size":6654289920,"digest":"500a1f",
          "details":{"format":"gguf","family":"qwen3","parameter_size":"8.2B","quantization_level":"Q4_K_M"},
          "expires_at":"2026-08-21T19:22:45Z","size_vram":6654289920,"context_length":32768}]}"#,
    ));
    // /api/show for llama3.3 (configured, not loaded): trained 131072, Modelfile num_ctx 16384.
    up.push(Reply::json(
        200,
        r#"{"license":"…","modelfile":"FROM llama3.3\nPARAMETER num_ctx 16384","parameters":"num_ctx                        16384\nstop                           \"<|eot_id|>\"",
          "template":"…","details":{"format":"gguf","family":"llama"},
          "model_info":{"general.architecture":"llama","general.parameter_count":70553706560,"llama.context_length":131072,"llama.embedding_length":8192},
          "capabilities":["completion","tools"]}"#,
    ));
    // /api/show for gemma3 (configured, not loaded): no num_ctx in the Modelfile.
    up.push(Reply::json(
        200,
        r#"{"parameters":"stop \"<end_of_turn>\"","model_info":{"general.architecture":"gemma3","gemma3.context_length":131072},"capabilities":["completion","vision"]}"#,
    ));
    let c = config(&format!(
        r#"ollama: {{baseUrl: "{}", api: "ollama", models: [{{id: "qwen3:8b", contextWindow: 40960}}, {{id: "llama3.3", contextWindow: 131072}}, {{id: "gemma3:4b"}}, {{id: "missing:1b"}}]}}"#,
        up.origin()
    ));
    let p = probe::probe(&c.providers["ollama"], &env()).await;
    assert_eq!(p.kind, ServerKind::Ollama);
    assert!(p.reachable && p.error.is_none(), "{p:?}");
    let qwen = p.find("qwen3:8b").unwrap();
    assert_eq!((qwen.state, qwen.context_window), (ModelState::Loaded, Some(32768)));
    let llama = p.find("llama3.3").unwrap();
    assert_eq!(llama.id, "llama3.3:latest", ":latest is implicit");
    assert_eq!(llama.state, ModelState::NotLoaded);
    assert_eq!((llama.context_window, llama.max_context_window), (Some(16384), Some(131072)));
    let gemma = p.find("gemma3:4b").unwrap();
    assert_eq!((gemma.context_window, gemma.max_context_window), (None, Some(131072)));
    assert!(!p.listed("missing:1b"));
    assert_eq!(paths(&up), ["GET /api/tags", "GET /api/ps", "POST /api/show", "POST /api/show"],);
    let shows: Vec<String> = up
        .requests()
        .iter()
        .skip(2)
        .map(|r| r.json()["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shows, ["llama3.3", "gemma3:4b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn lm_studio_states_and_responses_check() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        200,
        r#"{"object":"list","data":[
          {"id":"qwen2.5-coder-7b-instruct","object":"model","type":"llm","publisher":"lmstudio-community","arch":"qwen2",
           "compatibility_type":"gguf","quantization":"Q4_K_M","state":"loaded","max_context_length":32768,"loaded_context_length":16384,"capabilities":["tool_use"]},
          {"id":"llama-3.2-1b-instruct","object":"model","type":"llm","arch":"llama","compatibility_type":"mlx","quantization":"4bit","state":"not-loaded","max_context_length":131072},
          {"id":"minimax-m2.1","object":"model","type":"llm","state":"loading","max_context_length":196608},
          {"id":"minimax-m2.1","object":"model","type":"llm","state":"loaded","max_context_length":196608,"loaded_context_length":65536}]}"#,
    ));
    up.push(Reply::json(404, r#"{"error":"Unexpected endpoint or method. (POST /v1/responses)"}"#));
    let c = config(&format!(
        r#"lmstudio: {{baseUrl: "{}/v1", models: [{{id: "qwen2.5-coder-7b-instruct", contextWindow: 32768}}]}}"#,
        up.origin()
    ));
    let provider = &c.providers["lmstudio"];
    assert_eq!(provider.api.as_str(), "openai-responses", "the built-in lmstudio default");
    let p = probe::probe(provider, &env()).await;
    assert_eq!(p.kind, ServerKind::LmStudio);
    let coder = p.find("qwen2.5-coder-7b-instruct").unwrap();
    assert_eq!(
        (coder.state, coder.context_window, coder.max_context_window),
        (ModelState::Loaded, Some(16384), Some(32768))
    );
    let small = p.find("llama-3.2-1b-instruct").unwrap();
    assert_eq!((small.state, small.context_window), (ModelState::NotLoaded, None));
    let minimax = p.find("minimax-m2.1").unwrap();
    assert_eq!(
        (minimax.state, minimax.context_window),
        (ModelState::Loaded, Some(65536)),
        "the loaded row wins"
    );
    assert_eq!(p.served.len(), 3);
    assert_eq!(p.responses_api, Some(false), "404 on POST /v1/responses");
    assert_eq!(paths(&up), ["GET /api/v0/models", "POST /v1/responses"]);
}

/// An OpenAI-compatible server that lists context lengths the hosted way, and a key it needs.
#[tokio::test(flavor = "multi_thread")]
async fn generic_models_with_auth() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        200,
        r#"{"data":[{"id":"moonshotai/kimi-k2.6","context_length":262144},{"id":"llama-3.3-70b","context_window":131072},{"id":"plain"}]}"#,
    ));
    let c = config(&format!(
        r#"proxy: {{baseUrl: "{}/api/v1", apiKey: "sk-test-123456789", models: [{{id: "plain"}}]}}"#,
        up.origin()
    ));
    let p = probe::probe(&c.providers["proxy"], &env()).await;
    assert_eq!(p.kind, ServerKind::Generic);
    assert_eq!(p.find("moonshotai/kimi-k2.6").unwrap().context_window, Some(262144));
    assert_eq!(p.find("llama-3.3-70b").unwrap().context_window, Some(131072));
    let plain = p.find("plain").unwrap();
    assert_eq!((plain.state, plain.context_window), (ModelState::Unknown, None));
    let req = &up.requests()[0];
    assert_eq!(req.path, "/api/v1/models");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-123456789"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_auth_and_guarded() {
    // Nothing listens: unreachable, connect error, cached briefly.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = config(&format!(r#"down: {{baseUrl: "http://127.0.0.1:{port}/v1"}}"#));
    let p = probe::probe(&c.providers["down"], &env()).await;
    assert!(!p.reachable);
    assert_eq!(p.error.as_ref().unwrap().class, ErrorClass::Connect, "{p:?}");
    assert!(p.served.is_empty() && p.latency.is_none());

    // 401: reachable, auth error.
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(
        401,
        r#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#,
    ));
    let c = config(&format!(r#"locked: {{baseUrl: "{}/v1"}}"#, up.origin()));
    let p = probe::probe(&c.providers["locked"], &env()).await;
    assert!(p.reachable);
    assert_eq!(p.error.as_ref().unwrap().class, ErrorClass::Auth);

    // allowPrivateNetwork: false withdraws the trust in a loopback baseUrl: nothing is sent.
    let up = FakeUpstream::start().await.unwrap();
    let c = config(&format!(
        r#"strict: {{baseUrl: "{}/v1", request: {{allowPrivateNetwork: false}}}}"#,
        up.origin()
    ));
    let p = probe::probe(&c.providers["strict"], &env()).await;
    assert!(!p.reachable);
    assert!(p.error.as_ref().unwrap().message.contains("network guard"), "{p:?}");
    assert!(up.requests().is_empty());
}

/// Concurrent callers share one probe; a failed probe is retried after the error TTL.
#[tokio::test(flavor = "multi_thread")]
async fn probes_cache_is_shared_and_expires() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"data":[{"id":"m","max_model_len":1000,"owned_by":"vllm"}]}"#));
    let c = config(&format!(r#"v: {{baseUrl: "{}/v1"}}"#, up.origin()));
    let provider = c.providers["v"].clone();
    let probes = Arc::new(
        Probes::new(Arc::new(env()))
            .with_ttl(Duration::from_millis(300), Duration::from_millis(50)),
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let probes = Arc::clone(&probes);
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move { probes.served_context(&provider, "m").await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(1000));
    }
    assert_eq!(up.requests().len(), 1, "one probe for eight callers");
    tokio::time::sleep(Duration::from_millis(350)).await;
    up.push(Reply::json(200, r#"{"data":[{"id":"m","max_model_len":500,"owned_by":"vllm"}]}"#));
    assert_eq!(probes.served_context(&provider, "m").await, Some(500), "re-probed after the TTL");
    probes.invalidate(&provider);
    // The next probe fails (no reply scripted: the fake answers 500); the old one is gone.
    assert_eq!(probes.served_context(&provider, "m").await, None);
    assert_eq!(up.requests().len(), 3);
}
