//! Loads every config in `tests/corpus/` and snapshots what hearth makes of it: the
//! diagnostics, and the resolved providers, models, aliases and candidate chains.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use hearth_config::{Config, Origin, load_file};

fn env() -> BTreeMap<String, String> {
    [("CORPUS_SET_KEY".to_owned(), "set-secret-value".to_owned())].into()
}

fn summarize(name: &str, path: &Path) -> String {
    let loaded = load_file(path, &env());
    let mut out = String::new();
    for d in &loaded.diagnostics {
        let location = d.location.as_ref().map_or(String::new(), |l| {
            let file =
                l.file.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned());
            format!(" @ {file}:{}:{}", l.line, l.column)
        });
        let _ = writeln!(out, "{}[{}]{location}: {}", d.severity.as_str(), d.code, d.message);
        if let Some(help) = &d.help {
            let _ = writeln!(out, "    help: {help}");
        }
    }
    match &loaded.config {
        Some(config) => describe(&mut out, config),
        None => {
            let _ = writeln!(out, "=> rejected");
        }
    }
    // Machine-independent: absolute paths (e.g. in `$include` cycle chains) become `<corpus>`.
    let dir = path.parent().and_then(|p| p.canonicalize().ok()).unwrap_or_default();
    let out = out.replace(&dir.display().to_string(), "<corpus>");
    assert!(!out.contains("set-secret-value"), "{name}: a secret leaked into the summary");
    assert!(!out.contains("sk-literal-do-not-print"), "{name}: a secret leaked into the summary");
    out
}

fn describe(out: &mut String, config: &Config) {
    let _ = writeln!(out, "=> mode {:?}, {} providers", config.mode, config.providers.len());
    for p in config.providers.values().filter(|p| p.origin == Origin::Config) {
        let _ = writeln!(
            out,
            "provider {} api={} base={} host={:?} key={} timeout={:?} allowPrivateNetwork={:?}",
            p.id,
            p.api.as_str(),
            p.base_url,
            p.host,
            p.api_key.as_ref().map_or("none".to_owned(), |k| k.describe()),
            p.timeout,
            p.allow_private_network,
        );
        for (name, value) in &p.headers {
            let _ = writeln!(out, "  header {name}: {}", value.describe());
        }
        if let Some(params) = &p.params {
            let _ = writeln!(out, "  params {params}");
        }
        if let Some(ls) = &p.local_service {
            let _ = writeln!(
                out,
                "  localService {} {:?} cwd={:?} env={:?} health={} ready={:?} idleStop={:?}",
                ls.command.display(),
                ls.args,
                ls.cwd,
                ls.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                ls.health_url,
                ls.ready_timeout,
                ls.idle_stop
            );
        }
        for m in &p.models {
            let _ = writeln!(
                out,
                "  model {} name={:?} api={} reasoning={} input={:?} cost={:?} window={:?} tokens={:?} budget={} max={} origin={}",
                m.id,
                m.name,
                m.api.as_str(),
                m.reasoning,
                m.input.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
                m.cost.map(|c| (c.input, c.output, c.cache_read, c.cache_write)),
                m.context_window,
                m.context_tokens,
                m.context_budget(),
                m.max_tokens,
                m.origin.as_str(),
            );
            if m.compat != Default::default() {
                let _ = writeln!(out, "    compat {:?}", m.compat);
            }
            if let Some(params) = &m.params {
                let _ = writeln!(out, "    params {params}");
            }
        }
    }
    for (alias, target) in config.aliases.values() {
        let _ = writeln!(out, "alias {alias} -> {target}");
    }
    for (r, settings) in &config.model_settings {
        if let Some(params) = &settings.params {
            let _ = writeln!(out, "settings {r} params {params}");
        }
    }
    let chain = |agent: Option<&str>| match config.candidate_chain(agent, None, false) {
        Ok(c) => format!(
            "{}{}",
            c.candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> "),
            if c.strict { " (strict)" } else { "" }
        ),
        Err(e) => format!("error: {e}"),
    };
    let _ = writeln!(out, "default chain: {}", chain(None));
    for id in config.agents.keys() {
        let _ = writeln!(out, "agent {id} chain: {}", chain(Some(id)));
    }
    if !config.defaults.allow.is_empty() {
        let _ = writeln!(out, "allow {:?}", config.defaults.allow);
    }
    let g = &config.gateway;
    let _ = writeln!(
        out,
        "gateway port={} bind={:?} auth={:?} token={} chat={} responses={}",
        g.port,
        g.bind,
        g.auth_mode,
        g.token.as_ref().map_or("none".to_owned(), |t| t.describe()),
        g.chat_completions,
        g.responses
    );
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json5"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 15, "the corpus shrank");
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let summary = summarize(&name, &path);
        let rejected = summary.contains("=> rejected");
        assert_eq!(
            rejected,
            name.starts_with("error-"),
            "{name}: files named error-* and only those must be rejected\n{summary}"
        );
        insta::assert_snapshot!(name, summary);
    }
}
