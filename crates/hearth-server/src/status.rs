//! `GET /hearth/status` (authenticated): what the chat page's status view shows, from the same
//! sources `hearth models status` reads. For each provider worth showing (configured, or named
//! by the default chain or an agent): its server as the probe last saw it (reachable, kind,
//! latency, what it serves with its windows and load state), each catalog model with its
//! configured and served window, the key state of a hosted one (never contacted here), the
//! hint to start a local one that does not answer, a `localService`'s state (started by hearth,
//! its pid, leases, starts and idle stops); and the router's cooldowns with their reason and
//! time left. `?refresh=1` probes the local servers again instead of reading the cache.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use hearth_config::{KeyState, Origin, Provider};
use serde_json::{Value, json};

use crate::{AppState, json_response};

pub async fn status(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let refresh = query.as_deref().is_some_and(|q| q.split('&').any(|kv| kv == "refresh=1"));
    let config = app.config.load();
    let referenced = config.referenced();
    let shown: Vec<&Provider> = config
        .providers
        .values()
        .filter(|p| {
            p.origin == Origin::Config
                || referenced.iter().any(|r| r.split('/').next() == Some(p.id.as_str()))
        })
        .collect();
    let probes = shown.iter().map(|p| {
        let app = &app;
        async move {
            if !p.is_local() {
                return None;
            }
            if refresh {
                app.probes.invalidate(p);
            }
            Some(app.probes.get(p).await)
        }
    });
    let probes = futures::future::join_all(probes).await;
    let mut providers = Vec::new();
    for (provider, probe) in shown.iter().zip(probes) {
        let key = match provider.key_state(app.env.as_ref()) {
            KeyState::Present(how) => json!({"state": "present", "how": how}),
            KeyState::NotNeeded => json!({"state": "not needed"}),
            KeyState::NoneConfigured => json!({"state": "none configured"}),
            // A local server usually needs no key: a key variable that is not set is no problem
            // there (as in the startup lines).
            _ if provider.is_local() => json!({"state": "not set"}),
            other => json!({"state": "missing", "problem": other.problem()}),
        };
        let models: Vec<Value> = provider
            .models
            .iter()
            .map(|m| {
                let served = probe.as_ref().and_then(|p| p.find(&m.id));
                json!({
                    "id": m.id,
                    "ref": format!("{}/{}", provider.id, m.id),
                    "contextWindow": m.context_tokens.or(m.context_window),
                    "servedWindow": served.and_then(|s| s.context_window),
                    "state": served.map(|s| s.state.as_str()),
                })
            })
            .collect();
        let mut row = json!({
            "id": provider.id,
            "api": provider.api.as_str(),
            "baseUrl": provider.base_url.as_str(),
            "local": provider.is_local(),
            "localService": provider.local_service.as_ref().map(|_| {
                // Started by hearth (its pid), in use though hearth did not start it, or not
                // running: the router's table of local services.
                match app.router.services().status_of(provider) {
                    Some(v) => json!({"running": v.pid.is_some() || v.external, "pid": v.pid,
                        "external": v.external, "leases": v.leases, "starts": v.starts,
                        "idleStops": v.idle_stops}),
                    None => json!({"running": false}),
                }
            }),
            "key": key,
            "models": models,
        });
        if let Some(probe) = probe {
            row["server"] = json!(probe.kind.as_str());
            row["reachable"] = json!(probe.reachable);
            row["latencyMs"] = json!(probe.latency.map(|d| d.as_millis() as u64));
            row["error"] = json!(probe.error.as_ref().map(|e| e.message.clone()));
            row["served"] = probe
                .served
                .iter()
                .take(50)
                .map(|s| {
                    json!({"id": s.id, "state": s.state.as_str(), "contextWindow": s.context_window,
                        "maxContextWindow": s.max_context_window})
                })
                .collect();
            if !probe.reachable {
                row["hint"] =
                    json!(crate::relay::start_hint(&provider.id, provider.base_url.as_str()));
            }
        }
        providers.push(row);
    }
    let chain = config
        .candidate_chain(None, None, false)
        .map(|c| c.candidates.iter().map(ToString::to_string).collect::<Vec<_>>())
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({"chain": chain, "providers": providers, "cooldowns": app.router.cooldowns()}),
    )
}
