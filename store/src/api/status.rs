//! Loki's operational endpoints: `GET /config` (the effective
//! configuration, secrets hidden; `?mode=defaults|diff`), `GET
//! /runtime_config` (the overrides of the runtime file in force) and
//! `GET /services` (`name => State` per role). All plain text, as Loki
//! answers them.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, LokiParams};
use crate::config::Config;
use crate::config_view::{ConfigView, Mode};
use crate::server::AppState;

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// `GET /config`.
pub async fn config(
    State(app): State<AppState>,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let mode = Mode::parse(p.get("mode")).map_err(ApiError::bad_request)?;
    let view = match &app.config_view {
        Some(v) => v.as_ref().clone(),
        None => ConfigView::new(app.config.as_ref(), &Config::default()).map_err(internal)?,
    };
    Ok(text(view.render(mode).map_err(internal)?))
}

/// `GET /runtime_config`: the runtime file's overrides in force, in the
/// file's own shape.
pub async fn runtime_config(State(app): State<AppState>) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    struct Shape {
        overrides: std::collections::BTreeMap<String, crate::config::LimitsOverride>,
    }
    let shape = Shape {
        overrides: app.config.runtime.get().as_ref().clone(),
    };
    let view = ConfigView::new(&shape, &shape).map_err(internal)?;
    Ok(text(view.render(Mode::Current).map_err(internal)?))
}

/// `GET /services`.
pub async fn services(State(app): State<AppState>) -> Response {
    text(app.services.render())
}
