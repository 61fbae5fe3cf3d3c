//! The `hearth` binary: exit codes, diagnostics on stderr, data on stdout.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers may unwrap")]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearth-config/tests/corpus").join(name)
}

/// A `hearth` command isolated from the developer's own config and keys.
fn hearth() -> Command {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "200");
    cmd
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = hearth().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn cfg(name: &str) -> String {
    corpus(name).display().to_string()
}

#[test]
fn the_three_seed_configs_validate() {
    for name in ["seed-lmstudio-minimax.json5", "seed-hybrid.json5", "seed-custom-proxy.json5"] {
        let (code, _, stderr) = run(&["config", "validate", "--config", &cfg(name)]);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stderr.contains("valid (0 error(s), 0 warning(s))"), "{stderr}");
    }
}

#[test]
fn three_mistakes_in_one_run_exit_78() {
    let (code, _, stderr) =
        run(&["config", "validate", "--config", &cfg("error-three-mistakes.json5")]);
    assert_eq!(code, 78);
    let stderr = stderr.replace(&cfg(""), "<corpus>/");
    insta::assert_snapshot!(stderr);
}

#[test]
fn validate_json() {
    let (code, stdout, _) =
        run(&["config", "validate", "--json", "--config", &cfg("error-three-mistakes.json5")]);
    assert_eq!(code, 78);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"], 3);
    let lines: Vec<u64> =
        v["diagnostics"].as_array().unwrap().iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [5, 12, 13]);
    assert_eq!(v["diagnostics"][0]["help"], "did you mean `fallbacks`?");
}

#[test]
fn models_commands_refuse_an_invalid_config() {
    let (code, stdout, stderr) = run(&["models", "list", "--config", &cfg("error-syntax.json5")]);
    assert_eq!(code, 78);
    assert!(stdout.is_empty());
    assert!(stderr.contains("error[syntax]"), "{stderr}");
}

#[test]
fn missing_config_file_is_an_error_when_named() {
    let (code, _, stderr) = run(&["config", "validate", "--config", "/nonexistent/hearth.json5"]);
    assert_eq!(code, 78);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

#[test]
fn no_config_means_builtin_defaults() {
    let (code, stdout, stderr) = run(&["models", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("anthropic/claude-opus-4-6"));
    assert!(stderr.contains("lmstudio (http://127.0.0.1:1234/v1)"), "{stderr}");
    let (code, _, stderr) = run(&["config", "validate"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("built-in defaults"), "{stderr}");
}

#[test]
fn hearth_config_env_var_is_used() {
    let out = hearth()
        .env("HEARTH_CONFIG", cfg("seed-hybrid.json5"))
        .args(["models", "resolve"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("anthropic/claude-sonnet-4-5 → lmstudio/minimax-m2.1-gs32")
    );
}

#[test]
fn models_list_on_the_seed() {
    let (code, stdout, _) =
        run(&["models", "list", "--config", &cfg("seed-lmstudio-minimax.json5")]);
    assert_eq!(code, 0);
    let row = stdout.lines().find(|l| l.contains("lmstudio/minimax-m2.1-gs32")).unwrap();
    for cell in ["Minimax", "openai-responses", "196608", "8192", "text", "$0", "config"] {
        assert!(row.contains(cell), "missing {cell} in {row}");
    }
    assert!(
        stdout.contains("anthropic/claude-opus-4-6"),
        "built-in Anthropic rows are listed beside it"
    );
    let (_, json, _) =
        run(&["models", "list", "--json", "--config", &cfg("seed-lmstudio-minimax.json5")]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let row =
        rows.as_array().unwrap().iter().find(|r| r["ref"] == "lmstudio/minimax-m2.1-gs32").unwrap();
    assert_eq!(row["alias"], "Minimax");
    assert_eq!(row["contextWindow"], 196608);
    assert_eq!(row["maxTokens"], 8192);
    assert_eq!(row["cost"]["input"], 0.0);
}

#[test]
fn replace_mode_leaves_only_the_configured_row() {
    let (code, json, _) =
        run(&["models", "list", "--json", "--all", "--config", &cfg("replace-mode.json5")]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let refs: Vec<&str> =
        rows.as_array().unwrap().iter().map(|r| r["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, ["lmstudio/minimax-m2.1-gs32"]);
}

#[test]
fn list_filters_by_provider() {
    let (code, json, _) = run(&["models", "list", "--json", "--provider", "groq"]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(rows.as_array().unwrap().iter().all(|r| r["provider"] == "groq"));
    assert!(rows.as_array().unwrap().iter().any(|r| r["model"] == "openai/gpt-oss-120b"));
    let (code, _, stderr) = run(&["models", "list", "--provider", "nosuch"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown provider"));
}

#[test]
fn resolve_alias_and_chain() {
    let (code, stdout, _) =
        run(&["models", "resolve", "Minimax", "--config", &cfg("seed-lmstudio-minimax.json5")]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().next(), Some("lmstudio/minimax-m2.1-gs32"));
    let (code, stdout, _) = run(&["models", "resolve", "--config", &cfg("seed-hybrid.json5")]);
    assert_eq!(code, 0);
    assert!(stdout.contains("chain: anthropic/claude-sonnet-4-5 → lmstudio/minimax-m2.1-gs32 → anthropic/claude-opus-4-6"), "{stdout}");
    let (_, json, _) =
        run(&["models", "resolve", "Sonnet", "--json", "--config", &cfg("seed-hybrid.json5")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["chain"],
        serde_json::json!([
            "anthropic/claude-sonnet-4-5",
            "lmstudio/minimax-m2.1-gs32",
            "anthropic/claude-opus-4-6"
        ])
    );
    assert_eq!(v["resolvedBy"], "alias");
    let (_, json, _) = run(&[
        "models",
        "resolve",
        "MiniMax Local",
        "--strict",
        "--json",
        "--config",
        &cfg("seed-hybrid.json5"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["chain"], serde_json::json!(["lmstudio/minimax-m2.1-gs32"]));
}

#[test]
fn resolve_unknown_lists_candidates() {
    let (code, _, stderr) =
        run(&["models", "resolve", "Minimx", "--config", &cfg("seed-lmstudio-minimax.json5")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no model, alias or model id matches `Minimx`"), "{stderr}");
    assert!(stderr.contains("Minimax"), "{stderr}");
    let (code, _, stderr) = run(&["models", "resolve", "nosuch/model"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown provider `nosuch`"), "{stderr}");
}

#[test]
fn config_get_masks_secrets() {
    let (code, stdout, _) =
        run(&["config", "get", "models.providers.literal", "--config", &cfg("secrets.json5")]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("sk-literal-do-not-print"), "{stdout}");
    assert!(stdout.contains("\"apiKey\": \"***\""), "{stdout}");
    assert!(stdout.contains("https://api.example.com/v1"));
    let (code, stdout, _) = run(&[
        "config",
        "get",
        "models.providers.literal.apiKey",
        "--config",
        &cfg("secrets.json5"),
    ]);
    assert_eq!((code, stdout.trim()), (0, "\"***\""));
    let (code, stdout, _) = run(&[
        "config",
        "get",
        r#"agents.defaults.models["lmstudio/minimax-m2.1-gs32"].alias"#,
        "--config",
        &cfg("seed-lmstudio-minimax.json5"),
    ]);
    assert_eq!((code, stdout.trim()), (0, "\"Minimax\""));
    let (code, _, stderr) =
        run(&["config", "get", "gateway.port", "--config", &cfg("seed-lmstudio-minimax.json5")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not set"));
}

#[test]
fn schema_is_json_schema() {
    let (code, stdout, _) = run(&["config", "schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    assert!(v["$defs"]["RawModel"]["properties"]["contextWindow"].is_object());
}

#[test]
fn every_command_has_help_with_examples() {
    for args in [
        &["config", "validate"][..],
        &["config", "get"],
        &["config", "schema"],
        &["models", "list"],
        &["models", "resolve"],
    ] {
        let out = hearth().args(args).arg("--help").output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8(out.stdout).unwrap().contains("Example"), "{args:?}");
    }
}

#[test]
fn broken_pipe_is_success() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hearth"))
        .args(["models", "list", "--all"])
        .env("HOME", "/nonexistent-hearth-home")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is dropped here: the pipe closes while hearth may still be writing.
    assert!(child.wait().unwrap().success());
}

/// Every model-layer example of OpenClaw's docs must load (warnings allowed). They are
/// third-party data kept outside the project, next to it in `shared/`; the test reads them there.
#[test]
fn openclaw_doc_examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/openclaw-config-examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: {} is not present in this checkout", dir.display());
        return;
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json5") {
            continue;
        }
        count += 1;
        let (code, _, stderr) =
            run(&["config", "validate", "--config", &path.display().to_string()]);
        assert_eq!(code, 0, "{}:\n{stderr}", path.display());
    }
    assert!(count > 100, "expected the whole example set, found {count}");
}

#[test]
fn completions_name_the_subcommands() {
    let (code, stdout, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("_hearth()"), "{stdout}");
    for sub in
        ["config", "models", "agent", "sessions", "infer", "gateway", "doctor", "completions"]
    {
        assert!(stdout.contains(sub), "bash completions lack `{sub}`");
    }
    // Nested subcommands and flags too.
    assert!(stdout.contains("validate") && stdout.contains("--json"), "{stdout}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let (code, stdout, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("doctor"), "{shell}");
    }
    // An invalid config does not matter: completions read no config.
    let (code, _, _) = run(&["completions", "bash", "--config", &cfg("error-syntax.json5")]);
    assert_eq!(code, 0);
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2);
}

/// `config init` against a listener answering `/v1/models` and a port where nothing listens:
/// one provider with its models, a file hearth loads without a diagnostic, never overwritten
/// without `--force`.
#[tokio::test(flavor = "multi_thread")]
async fn config_init_writes_a_starter_for_the_servers_it_finds() {
    use hearth_testkit::{FakeUpstream, Reply};
    let models = r#"{"object":"list","data":[
        {"id":"org/tiny-a","object":"model","owned_by":"vllm","max_model_len":4096},
        {"id":"org/tiny-b","object":"model","owned_by":"vllm","max_model_len":2048}]}"#;
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, models));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/hearth.json5");
    let found = up.origin().trim_start_matches("http://").to_owned();
    let dead_addr = format!("127.0.0.1:{dead}");
    let p = path.display().to_string();
    let run_init = move |extra: &[&str]| {
        let mut cmd = hearth();
        cmd.args(["config", "init", "--path", &p, "--probe", &found, "--probe", &dead_addr]);
        cmd.args(extra);
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let first = run_init.clone();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || first(&[])).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("found vLLM at {}/v1 (2 model(s))", up.origin())), "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("// hearth config, written by `hearth config init`"), "{text}");
    assert!(text.contains(r#"primary: "vllm/org/tiny-a","#), "{text}");
    assert!(text.contains(r#"{ id: "org/tiny-b", contextWindow: 2048 },"#), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{dead}")), "the dead port is named: {text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // hearth's own loader takes it without a single diagnostic.
    let config = path.display().to_string();
    let (code, _, stderr) = run(&["config", "validate", "--config", &config]);
    assert_eq!(code, 0, "{stderr}\n{text}");
    assert!(stderr.contains("valid (0 error(s), 0 warning(s))"), "{stderr}");
    let (code, stdout, _) = run(&["models", "resolve", "--config", &config, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["chain"][0], "vllm/org/tiny-a");
    assert_eq!(v["candidates"][0]["baseUrl"], format!("{}/v1", up.origin()));
    assert_eq!(v["candidates"][0]["contextWindow"], 4096);

    // An existing file is kept unless --force.
    let again = run_init.clone();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || again(&[])).await.unwrap();
    assert_eq!(code, 1);
    assert!(stderr.contains("exists; pass --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    up.push(Reply::json(200, models));
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_init(&["--force", "--json"])).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["found"][0]["provider"], "vllm");
    assert_eq!(v["found"][0]["models"], serde_json::json!(["org/tiny-a", "org/tiny-b"]));
    assert_eq!(v["notFound"], serde_json::json!([format!("127.0.0.1:{dead}")]));
}

/// Runs with a state directory of its own.
fn run_in(state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = hearth().env("HEARTH_STATE_DIR", state).args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The one error envelope: `{"ok": false, "error": {"code", "message", ...}}` on stdout.
#[track_caller]
fn error_envelope(stdout: &str, code: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: not JSON: {stdout:?}"));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

/// `--json` errors share one envelope, with the exit codes of the text output. See: #14.
#[test]
fn json_errors_share_one_envelope() {
    let state = tempfile::tempdir().unwrap();
    let seed = cfg("seed-lmstudio-minimax.json5");

    // config get takes --json; the value is the same JSON either way.
    let (code, plain, _) =
        run(&["config", "get", "models.providers.lmstudio.apiKey", "--config", &seed]);
    assert_eq!(code, 0);
    let (code, json, _) =
        run(&["config", "get", "models.providers.lmstudio.apiKey", "--config", &seed, "--json"]);
    assert_eq!((code, &json), (0, &plain));
    let (code, stdout, stderr) =
        run(&["config", "get", "gateway.port", "--config", &seed, "--json"]);
    assert_eq!(code, 1, "{stderr}");
    error_envelope(&stdout, "not_set");
    let (code, stdout, _) = run(&["config", "get", "gateway.port", "--json"]);
    assert_eq!(code, 1);
    error_envelope(&stdout, "no_config_file");
    let (code, stdout, _) = run(&["config", "get", "a[", "--config", &seed, "--json"]);
    assert_eq!(code, 1);
    error_envelope(&stdout, "invalid_path");
    let (code, stdout, stderr) =
        run(&["config", "get", "models", "--config", &cfg("error-syntax.json5"), "--json"]);
    assert_eq!(code, 78);
    let v = error_envelope(&stdout, "invalid_config");
    assert!(!v["error"]["diagnostics"].as_array().unwrap().is_empty(), "{v}");
    assert!(stderr.contains("error[syntax]"), "diagnostics stay on stderr: {stderr}");

    // A model reference that does not resolve: resolve and infer say it the same way.
    let (code, stdout, _) =
        run(&["models", "resolve", "nosuch/model", "--config", &seed, "--json"]);
    assert_eq!(code, 1);
    let v = error_envelope(&stdout, "model_not_found");
    assert!(v["error"]["help"].is_string(), "{v}");
    let (code, stdout, _) = run_in(
        state.path(),
        &[
            "infer",
            "model",
            "run",
            "--model",
            "nosuch/model",
            "--prompt",
            "hi",
            "--config",
            &seed,
            "--json",
        ],
    );
    assert_eq!(code, 1);
    error_envelope(&stdout, "model_not_found");
    let (code, stdout, _) = run(&["infer", "model", "run", "--prompt", " ", "--json"]);
    assert_eq!(code, 2);
    error_envelope(&stdout, "usage");
    let (code, stdout, _) = run(&["models", "list", "--provider", "nosuch", "--json"]);
    assert_eq!(code, 1);
    error_envelope(&stdout, "provider_not_found");
    let (code, stdout, _) =
        run(&["models", "list", "--config", &cfg("error-syntax.json5"), "--json"]);
    assert_eq!(code, 78);
    error_envelope(&stdout, "invalid_config");

    // Sessions that do not exist.
    for sub in ["show", "reset"] {
        let (code, stdout, stderr) = run_in(state.path(), &["sessions", sub, "nosuch", "--json"]);
        assert_eq!(code, 1, "{sub}: {stderr}");
        let v = error_envelope(&stdout, "session_not_found");
        assert_eq!(v["error"]["message"], "no session `agent:main:nosuch`", "{v}");
        assert!(stderr.contains("no session"), "{stderr}");
    }
    // Without --json nothing changes: the message on stderr, stdout empty.
    let (code, stdout, stderr) = run_in(state.path(), &["sessions", "show", "nosuch"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("no session `agent:main:nosuch`"), "{stderr}");
}

#[test]
fn sessions_arguments_have_help() {
    let (code, stdout, _) = run(&["sessions", "show", "--help"]);
    assert_eq!(code, 0);
    for (arg, help) in [
        ("<KEY>", "Session key"),
        ("--agent <ID>", "The agent"),
        ("--json", "Print machine-readable JSON"),
    ] {
        // Short help puts it on the argument's line, long help (`--help`) on the next one.
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines.iter().position(|l| l.trim_start().starts_with(arg)).unwrap();
        let text = lines[at..(at + 2).min(lines.len())].join(" ");
        assert!(text.contains(help), "`{arg}` has no help in:\n{stdout}");
    }
}
