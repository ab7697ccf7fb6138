//! The JSON API: each handler calls the function the matching command
//! prints, so the page and the command line agree by construction.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::server::Shared;
use crate::Status;
use crate::cli::CliError;
use crate::cli::status::Overview;
use crate::cli::tasks::{Detail, Filter, list_json};
use crate::cli::{answer as answering, cancel as cancelling, retry as retrying};

/// Most events `GET /api/history` returns.
const HISTORY_MAX: usize = 10_000;

/// A command's error as an HTTP answer: its message and help as JSON,
/// with a status by kind (bad input 400, no such task 404, refused by the
/// town's state 409, anything else 500).
pub struct ApiError(CliError);

impl From<CliError> for ApiError {
    fn from(e: CliError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            CliError::Usage { .. } => StatusCode::BAD_REQUEST,
            CliError::UnknownTask { .. } => StatusCode::NOT_FOUND,
            CliError::Refused { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let help = miette::Diagnostic::help(&self.0).map(|h| h.to_string());
        (
            status,
            Json(json!({ "error": self.0.to_string(), "help": help })),
        )
            .into_response()
    }
}

/// A bad request the API itself refuses (a body that is no JSON, …).
fn usage(message: String, help: &str) -> ApiError {
    ApiError(CliError::Usage {
        message,
        help: help.into(),
    })
}

type ApiResult = Result<Json<Value>, ApiError>;

/// `GET /api/town`: what `tt status --json` prints.
pub async fn town(State(s): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(Overview::read(&s.store).await?.json()))
}

#[derive(serde::Deserialize)]
pub struct TasksQuery {
    status: Option<String>,
    agent: Option<String>,
    tag: Option<String>,
}

/// `GET /api/tasks[?status=&agent=&tag=]`: what `tt tasks --json` prints.
pub async fn tasks(State(s): State<Arc<Shared>>, Query(q): Query<TasksQuery>) -> ApiResult {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            usage(
                format!("`{text}` is not a status"),
                "use one of: pending, assigned, running, completed, failed, cancelled",
            )
        })?),
    };
    let filter = Filter {
        status,
        agent: q.agent.filter(|a| !a.is_empty()),
        tag: q.tag.filter(|t| !t.is_empty()),
    };
    Ok(Json(list_json(&s.store, &filter).await?))
}

/// `GET /api/tasks/<id>`: what `tt task <id> --json` prints.
pub async fn task(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(Detail::read(&s.ctx, &s.store, &id).await?.json()))
}

/// `POST /api/tasks/<id>/retry`: `tt retry <id> --json`.
pub async fn retry(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let done = retrying::retry(&s.store, &id).await?;
    Ok(Json(retrying::retried_json(&done)))
}

/// A JSON object body, or `{}` when there is none.
fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(usage(
            "the request body is not a JSON object".into(),
            "send an object such as {\"reason\": \"…\"}",
        )),
        Err(e) => Err(usage(
            format!("the request body is not JSON: {e}"),
            "send an object such as {\"reason\": \"…\"}",
        )),
    }
}

/// `POST /api/tasks/<id>/cancel` with `{"reason": "…"}` (optional):
/// `tt cancel <id> --json`.
pub async fn cancel(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_object(&body)?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("cancelled from the dashboard");
    let done = cancelling::cancel(&s.store, &id, reason).await?;
    Ok(Json(json!(done.done)))
}

/// `POST /api/tasks/<id>/answer` with `{"text": "…"}` or `{"choice": N}`
/// (from 1): `tt answer`.
pub async fn answer(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_object(&body)?;
    let text = body.get("text").and_then(Value::as_str);
    let choice = match body.get("choice") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    usage(
                        format!("`choice` must be a number from 1, not {v}"),
                        "send {\"choice\": 1} for the first choice",
                    )
                })?,
        ),
    };
    if text.is_none() && choice.is_none() {
        return Err(usage(
            "no answer given".into(),
            "send {\"text\": \"…\"} or {\"choice\": N}",
        ));
    }
    let by = format!("dashboard@{}", crate::os::hostname());
    let done = answering::answer(&s.store, &id, text, choice, &by).await?;
    Ok(Json(json!(done)))
}

#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    limit: Option<usize>,
}

/// `GET /api/history[?limit=N]`: the newest N events (default 1000),
/// oldest first, as `tt history --json` prints them, and the stream id to
/// follow `/api/events` from.
pub async fn history(State(s): State<Arc<Shared>>, Query(q): Query<HistoryQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(1000).min(HISTORY_MAX);
    let (events, last) = s.store.recent_events(limit, None).await?;
    Ok(Json(json!({
        "events": events.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "last_event_id": last,
    })))
}
