//! `GET /v1/models` and `GET /v1/models/{id}`: agent targets, then every configured or
//! referenced model ref (with its owner and context window).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_config::{Config, Origin};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::{AppState, json_response, plan};

/// Every id `/v1/models` lists, with its entry.
pub fn entries(config: &Config) -> Vec<Value> {
    let mut out = Vec::new();
    let agent = |id: String, name: Option<&str>| json!({"id": id, "object": "model", "created": 0, "owned_by": "hearth", "name": name});
    out.push(agent("hearth".to_owned(), Some("default agent")));
    out.push(agent("hearth/default".to_owned(), Some("default agent")));
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
        out.push(entry);
    }
    out
}

pub async fn list(State(app): State<AppState>) -> Response {
    let config = app.config.load();
    json_response(StatusCode::OK, &json!({"object": "list", "data": entries(&config)}))
}

pub async fn get_one(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let config = app.config.load();
    let id = id.trim_start_matches('/');
    let all = entries(&config);
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
