//! The route handlers: each runs one call on the node's task.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use demls_engine::{GroupParams, ProposalId, StewardMode};
use demls_identity::Address;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::admission::{self, NewAdmission};
use super::{ApiError, ApiState, OPENAPI};
use crate::runtime::{CommandError, NodeEvent, Runtime};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs `f` on the node and answers with its JSON result.
async fn on_node<T: serde::Serialize + Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&mut Runtime) -> Result<T, CommandError> + Send + 'static,
) -> ApiResult<T> {
    Ok(Json(state.node.command(f).await?))
}

pub(super) async fn health_check() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    code: String,
}

pub(super) async fn signin(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<SignIn>,
) -> Result<Json<Value>, ApiError> {
    if state.redeem(&body.code) {
        Ok(Json(json!({"token": state.token})))
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_code",
            "this sign-in code is wrong or was used already",
        ))
    }
}

pub(super) async fn node(State(state): State<Arc<ApiState>>) -> ApiResult<Value> {
    on_node(&state, |rt| {
        Ok(serde_json::to_value(rt.info()).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct PolicyBody {
    policy: String,
}

pub(super) async fn vote_policy(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<PolicyBody>,
) -> ApiResult<Value> {
    let manual = match body.policy.as_str() {
        "manual" => true,
        "automatic" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "policy must be automatic or manual, not {other:?}"
            )));
        }
    };
    on_node(&state, move |rt| {
        rt.set_vote_policy(manual)
            .map(|info| serde_json::to_value(info).unwrap_or(Value::Null))
    })
    .await
}

pub(super) async fn groups(State(state): State<Arc<ApiState>>) -> ApiResult<Value> {
    on_node(&state, |rt| {
        Ok(serde_json::to_value(rt.groups()).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct NewGroup {
    name: String,
    mode: Option<String>,
    sn_min: Option<u16>,
    sn_max: Option<u16>,
    vote_timeout_secs: Option<u32>,
    liveness_yes: Option<bool>,
    max_proposals_per_member: Option<u16>,
    admission: Option<NewAdmission>,
}

fn steward_mode(text: &str) -> Result<StewardMode, ApiError> {
    match text {
        "single" => Ok(StewardMode::Single),
        "big" => Ok(StewardMode::Big),
        "small" => Ok(StewardMode::Small),
        other => Err(ApiError::bad_request(format!(
            "mode must be single, big or small, not {other:?}"
        ))),
    }
}

pub(super) async fn create_group(
    State(state): State<Arc<ApiState>>,
    Json(body): Json<NewGroup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let defaults = GroupParams::default();
    let params = GroupParams {
        mode: body
            .mode
            .as_deref()
            .map_or(Ok(defaults.mode), steward_mode)?,
        sn_min: body.sn_min.unwrap_or(defaults.sn_min),
        sn_max: body.sn_max.unwrap_or(defaults.sn_max),
        vote_timeout_secs: body.vote_timeout_secs.unwrap_or(defaults.vote_timeout_secs),
        liveness_yes: body.liveness_yes.unwrap_or(defaults.liveness_yes),
        membership_vote_timeout_secs: defaults.membership_vote_timeout_secs,
        join_rule: defaults.join_rule,
        max_proposals_per_member: body
            .max_proposals_per_member
            .unwrap_or(defaults.max_proposals_per_member),
        admission: admission::policy(&state.node, body.admission).await?,
    };
    if params.sn_min > params.sn_max {
        return Err(ApiError::bad_request(format!(
            "sn_min ({}) is larger than sn_max ({})",
            params.sn_min, params.sn_max
        )));
    }
    let Json(detail) = on_node(&state, move |rt| {
        rt.create_group(&body.name, params)
            .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

pub(super) async fn group(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> ApiResult<Value> {
    on_node(&state, move |rt| {
        rt.group(&group)
            .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
    })
    .await
}

pub(super) async fn members(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> ApiResult<Value> {
    on_node(&state, move |rt| {
        rt.group(&group)
            .map(|d| serde_json::to_value(d.members).unwrap_or(Value::Null))
    })
    .await
}

pub(super) async fn health(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> ApiResult<Value> {
    on_node(&state, move |rt| {
        rt.group(&group)
            .map(|d| serde_json::to_value(d.health).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize, Default)]
pub(super) struct JoinBody {
    steward: Option<String>,
}

fn address(text: &str) -> Result<Address, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("bad address {text:?}: {e}")))
}

pub(super) async fn join(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
    body: Option<Json<JoinBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let steward = body
        .and_then(|Json(b)| b.steward)
        .map(|s| address(&s))
        .transpose()?;
    let Json(summary) = on_node(&state, move |rt| {
        rt.join(&group, steward)
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(summary)))
}

pub(super) async fn leave(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.node.command(move |rt| rt.leave(&group)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "leaving"}))))
}

pub(super) async fn proposals(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> ApiResult<Value> {
    on_node(&state, move |rt| {
        rt.proposals(&group)
            .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct ProposeBody {
    kind: String,
    member: String,
}

pub(super) async fn propose(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
    Json(body): Json<ProposeBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.kind != "remove" {
        return Err(ApiError::bad_request(
            "only \"remove\" proposals are made by hand; joiners ask to join and stewards propose them",
        ));
    }
    let member = address(&body.member)?;
    state
        .node
        .command(move |rt| rt.propose_remove(&group, member))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "proposed"}))))
}

/// Parses `0x0a1b2c3d` or `0a1b2c3d`.
pub fn proposal_id(text: &str) -> Option<ProposalId> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(digits, 16).ok().map(ProposalId)
}

#[derive(Deserialize)]
pub(super) struct VoteBody {
    yes: bool,
}

pub(super) async fn vote(
    State(state): State<Arc<ApiState>>,
    Path((group, proposal)): Path<(String, String)>,
    Json(body): Json<VoteBody>,
) -> ApiResult<Value> {
    let id = proposal_id(&proposal)
        .ok_or_else(|| ApiError::bad_request(format!("bad proposal id {proposal:?}")))?;
    on_node(&state, move |rt| {
        rt.vote(&group, id, body.yes)
            .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn messages(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Value> {
    let (after, limit) = (page.after.unwrap_or(0), page.limit.unwrap_or(500).min(5000));
    on_node(&state, move |rt| {
        rt.messages(&group, after, limit)
            .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct SendBody {
    text: String,
}

pub(super) async fn send(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = group.clone();
    let sent = state
        .node
        .command(move |rt| rt.send(&name, &body.text))
        .await?;
    // A second call runs after the first one's messages were published: its delivery state
    // is current.
    let seq = sent.seq;
    let current = state
        .node
        .command(move |rt| rt.messages(&group, seq.saturating_sub(1), 1))
        .await?;
    let message = current.into_iter().find(|m| m.seq == seq).unwrap_or(sent);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(message).unwrap_or(Value::Null)),
    ))
}

pub(super) async fn event_log(
    State(state): State<Arc<ApiState>>,
    Query(page): Query<Page>,
) -> ApiResult<Vec<Value>> {
    let (after, limit) = (page.after.unwrap_or(0), page.limit.unwrap_or(500).min(5000));
    on_node(&state, move |rt| rt.recent_events(after, limit)).await
}

pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let text = state.node.metrics().render(&state.node.relay().metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Deserialize)]
pub(super) struct EventFilter {
    group: Option<String>,
}

pub(super) async fn events_socket(
    State(state): State<Arc<ApiState>>,
    Query(filter): Query<EventFilter>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let events = state.node.subscribe();
    upgrade.on_upgrade(move |socket| stream_events(socket, events, filter.group))
}

fn concerns(event: &NodeEvent, group: Option<&str>) -> bool {
    match group {
        None => true,
        Some(g) => event.body.get("group").and_then(Value::as_str) == Some(g),
    }
}

/// Sends every node event (of `group`, if given) as a JSON text message until the client
/// goes away. A client too slow to keep up is told how many events it missed.
async fn stream_events(
    mut socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
    group: Option<String>,
) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let text = match event {
                    Ok(event) if concerns(&event, group.as_deref()) => event.to_json().to_string(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => json!({"type": "lagged", "missed": missed}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
