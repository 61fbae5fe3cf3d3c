//! `GET /v1/models` and `GET /v1/models/{id}`: agent targets, then every configured or
//! referenced model ref (with its owner and context window). A caller that sends
//! `anthropic-version` gets Anthropic's shape (`{data: [{type: "model", id, display_name,
//! created_at}], has_more, first_id, last_id}`, paged by `limit`, `after_id`, `before_id`).

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_config::{Config, ModelRef, Origin};
use serde_json::{Value, json};

use crate::auth::speaks_anthropic;
use crate::error::{ApiError, Shape};
use crate::{AppState, json_response, plan};

/// An entry in Anthropic's model shape. hearth knows no release dates: `created_at` is the
/// Unix epoch, as `created` is 0 in OpenAI's shape.
fn anthropic_entry(entry: &Value) -> Value {
    let id = entry["id"].as_str().unwrap_or_default();
    let display = entry
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| entry.get("alias").and_then(Value::as_str))
        .unwrap_or(id);
    json!({"type": "model", "id": id, "display_name": display, "created_at": "1970-01-01T00:00:00Z"})
}

/// Anthropic's list page: `limit` (1–1000, default 20), `after_id` / `before_id`.
fn anthropic_page(all: &[Value], query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let limit = match query.get("limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_param(
                    "limit",
                    format!(
                        "limit must be an integer from 1 to 1000, got `{}`",
                        crate::error::excerpt(l, 40)
                    ),
                ));
            }
        },
    };
    let position = |id: &str| all.iter().position(|e| e["id"].as_str() == Some(id));
    let (from, to) = match (query.get("after_id"), query.get("before_id")) {
        (Some(after), _) => {
            let at = position(after).ok_or_else(|| {
                ApiError::invalid_param(
                    "after_id",
                    format!("no model `{}`", crate::error::excerpt(after, 200)),
                )
            })?;
            (at + 1, (at + 1 + limit).min(all.len()))
        }
        (None, Some(before)) => {
            let at = position(before).ok_or_else(|| {
                ApiError::invalid_param(
                    "before_id",
                    format!("no model `{}`", crate::error::excerpt(before, 200)),
                )
            })?;
            (at.saturating_sub(limit), at)
        }
        (None, None) => (0, limit.min(all.len())),
    };
    let page: Vec<Value> = all[from..to].iter().map(anthropic_entry).collect();
    let has_more = if query.contains_key("before_id") && !query.contains_key("after_id") {
        from > 0
    } else {
        to < all.len()
    };
    Ok(json!({
        "data": page,
        "has_more": has_more,
        "first_id": page.first().map(|e| e["id"].clone()),
        "last_id": page.last().map(|e| e["id"].clone()),
    }))
}

/// Every id `/v1/models` lists, with its entry.
pub fn entries(config: &Config) -> Vec<Value> {
    let mut out = Vec::new();
    let agent = |id: String, name: Option<&str>| json!({"id": id, "object": "model", "created": 0, "owned_by": "hearth", "name": name});
    // OpenClaw's agent targets: the default agent (`hearth`, and `hearth/default`, its stable
    // alias), then `hearth/<agentId>` for every agent, named as sessions name it
    // (`agent:<agentId>:…`); with none configured, OpenClaw's implicit agent `main`.
    let default_id = config.default_agent().map_or("main", |a| a.id.as_str());
    let default_name = format!("default agent ({default_id})");
    out.push(agent("hearth".to_owned(), Some(&default_name)));
    out.push(agent("hearth/default".to_owned(), Some(&default_name)));
    if config.agents.is_empty() {
        out.push(agent("hearth/main".to_owned(), Some("main")));
    }
    for a in config.agents.values() {
        out.push(agent(format!("hearth/{}", a.id), a.name.as_deref()));
    }
    for (model_ref, provider, model) in config.rows() {
        if model.origin == Origin::Builtin
            && provider.origin == Origin::Builtin
            && !config.referenced().contains(&model_ref.to_string())
        {
            continue;
        }
        let mut entry = json!({
            "id": model_ref.to_string(),
            "object": "model",
            "created": 0,
            "owned_by": provider.id,
            "context_window": model.context_tokens.or(model.context_window),
            "max_tokens": model.max_tokens,
        });
        if let Some(alias) = config.alias_of(&model_ref) {
            entry["alias"] = Value::String(alias.to_owned());
        }
        // USD per million tokens, when the catalog prices the model (the chat page's cost).
        if let Some(cost) = &model.cost {
            entry["cost"] = json!({"input": cost.input, "output": cost.output});
        }
        out.push(entry);
    }
    out
}

/// [`entries`], then what the servers of discovering providers serve (a configured provider
/// without `models[]`, or with a `provider/*` key in `agents.defaults.models`), as the probe
/// cache last saw it: a request never waits for a probe (the gateway probes them at start).
fn with_served(app: &AppState, config: &Config) -> Vec<Value> {
    let mut all = entries(config);
    for (provider, served) in served(app, config) {
        let id = format!("{provider}/{}", served.id);
        if all.iter().any(|e| e["id"].as_str() == Some(id.as_str())) {
            continue;
        }
        all.push(json!({
            "id": id,
            "object": "model",
            "created": 0,
            "owned_by": provider,
            "context_window": served.context_window,
            "max_context_window": served.max_context_window,
            "state": served.state.as_str(),
        }));
    }
    all
}

/// What the servers of discovering providers serve (a configured provider without `models[]`,
/// or with a `provider/*` key in `agents.defaults.models`), as the probe cache last saw it, by
/// provider id: for `GET /v1/models` and the WebSocket `models.list`.
pub fn served(
    app: &AppState,
    config: &Config,
) -> Vec<(String, hearth_upstream::probe::ServedModel)> {
    let mut out = Vec::new();
    for provider in config.providers.values() {
        let discovers = provider.models.is_empty()
            || config.model_settings.contains_key(&ModelRef::new(&provider.id, "*"));
        if provider.origin != Origin::Config || !discovers {
            continue;
        }
        let Some(probe) = app.probes.cached(provider) else { continue };
        out.extend(probe.served.iter().map(|m| (provider.id.clone(), m.clone())));
    }
    out
}

pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let config = app.config.load();
    if speaks_anthropic(&headers) {
        let query: HashMap<String, String> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        return match anthropic_page(&with_served(&app, &config), &query) {
            Ok(page) => json_response(StatusCode::OK, &page),
            Err(e) => e.shaped(Shape::Anthropic).into_response(),
        };
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": with_served(&app, &config)}))
}

pub async fn get_one(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut response = one(&app, &id);
    if speaks_anthropic(&headers) {
        response = anthropic_one(response).await;
    }
    response
}

/// An entry or error of [`one`] in Anthropic's shape.
async fn anthropic_one(response: Response) -> Response {
    let status = response.status();
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), 1024 * 1024).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "cannot read the model entry",
        )
        .shaped(Shape::Anthropic)
        .into_response();
    };
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return json_response(status, &anthropic_entry(&value));
    }
    let message = value["error"]["message"].as_str().unwrap_or("no such model");
    ApiError::new(status, "invalid_request_error", message).shaped(Shape::Anthropic).into_response()
}

fn one(app: &AppState, id: &str) -> Response {
    let config = app.config.load();
    let id = id.trim_start_matches('/');
    let all = with_served(app, &config);
    if let Some(entry) = all.iter().find(|e| e["id"].as_str() == Some(id)) {
        return json_response(StatusCode::OK, entry);
    }
    if let Some(target) = plan::agent_target(id) {
        return match target {
            Some(agent) if !config.agents.contains_key(agent) => {
                ApiError::from_ref(&hearth_config::RefError::UnknownAgent(agent.to_owned()))
                    .into_response()
            }
            _ => json_response(
                StatusCode::OK,
                &json!({"id": id, "object": "model", "created": 0, "owned_by": "hearth"}),
            ),
        };
    }
    match config.resolve_ref(id) {
        Ok(resolved) => json_response(
            StatusCode::OK,
            &json!({
                "id": resolved.model_ref.to_string(),
                "object": "model",
                "created": 0,
                "owned_by": resolved.provider.id,
                "context_window": resolved.model.context_tokens.or(resolved.model.context_window),
                "max_tokens": resolved.model.max_tokens,
            }),
        ),
        Err(e) => ApiError::from_ref(&e).into_response(),
    }
}
