//! The route handlers: each runs one call on the node's task. Each handler's
//! `#[utoipa::path]` is both its route (`utoipa_axum::routes!` in `super::routes`) and its
//! entry in `docs/openapi.yaml`; its doc comment's first line is the summary there.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use demls_api::{
    Ballot, DisplayName, ErrorBody, EventBody, EventFilter, GroupDetail, GroupSummary, Health,
    JoinRequest, Member, Message, Mode, NewGroup, NewMessage, NewProposal, NodeEvent, NodeInfo,
    Page, Proposal, SignIn, SignedIn, Status, StatusBody, VotePolicy, VotePolicyChange,
};
use demls_engine::{GroupParams, ProposalId, StewardMode};
use demls_identity::Address;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::admission;
use super::{ApiError, ApiState, OPENAPI};
use crate::runtime::{self, CommandError, Runtime};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON request body; one that cannot be read is refused as `invalid` (400) with the
/// reason, like every other bad input.
pub(super) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(body)| Body(body))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The group named in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(names("group"), parameter_in = Path)]
pub(super) struct GroupName(
    /// The group's name: 1 to 64 characters from `a-z 0-9 . _ -`.
    #[param(pattern = "^[a-z0-9._-]{1,64}$")]
    pub String,
);

/// A proposal of the group named in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ProposalPath {
    /// The group's name.
    group: String,
    /// The proposal id, e.g. `0x0a1b2c3d`.
    proposal: String,
}

/// Runs `f` on the node and answers with its result.
pub(super) async fn on_node<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&mut Runtime) -> Result<T, CommandError> + Send + 'static,
) -> ApiResult<T> {
    Ok(Json(state.node.command(f).await?))
}

/// Liveness check (no token needed)
#[utoipa::path(get, path = "/api/health", security(()),
    responses((status = 200, description = "The API answers.", body = StatusBody)))]
pub(super) async fn health_check() -> Json<StatusBody> {
    Json(StatusBody { status: Status::Ok })
}

/// This document
#[utoipa::path(get, path = "/api/openapi.yaml",
    responses((status = 200, description = "OpenAPI in YAML.", content_type = "application/yaml")))]
pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

/// Exchange the one-time code of the printed sign-in link for the token
#[utoipa::path(post, path = "/api/signin", security(()), request_body = SignIn,
    responses(
        (status = 200, description = "The token (the code is used up).", body = SignedIn),
        (status = 401, description = "`bad_code`: wrong, or used already.", body = ErrorBody)))]
pub(super) async fn signin(
    State(state): State<Arc<ApiState>>,
    Body(body): Body<SignIn>,
) -> ApiResult<SignedIn> {
    if state.redeem(&body.code) {
        Ok(Json(SignedIn {
            token: state.token.clone(),
        }))
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_code",
            "this sign-in code is wrong or was used already",
        ))
    }
}

/// The node (address, peer id, listen addresses, peers, vote policy)
#[utoipa::path(get, path = "/api/node",
    responses((status = 200, description = "The node.", body = NodeInfo)))]
pub(super) async fn node(State(state): State<Arc<ApiState>>) -> ApiResult<NodeInfo> {
    on_node(&state, |rt| Ok(rt.info())).await
}

/// Vote automatically (YES if a proposal checks out) or only when told
#[utoipa::path(put, path = "/api/node/vote-policy", request_body = VotePolicyChange,
    responses(
        (status = 200, description = "The node with its new policy (kept across restarts).", body = NodeInfo),
        (status = 400, description = "`invalid`.", body = ErrorBody)))]
pub(super) async fn vote_policy(
    State(state): State<Arc<ApiState>>,
    Body(body): Body<VotePolicyChange>,
) -> ApiResult<NodeInfo> {
    let manual = body.policy == VotePolicy::Manual;
    on_node(&state, move |rt| rt.set_vote_policy(manual)).await
}

/// Groups this node is in, joining, or was refused by
#[utoipa::path(get, path = "/api/groups",
    responses((status = 200, description = "The groups.", body = Vec<GroupSummary>)))]
pub(super) async fn groups(State(state): State<Arc<ApiState>>) -> ApiResult<Vec<GroupSummary>> {
    on_node(&state, |rt| Ok(rt.groups())).await
}

fn steward_mode(mode: Mode) -> StewardMode {
    match mode {
        Mode::Single => StewardMode::Single,
        Mode::Big => StewardMode::Big,
        Mode::Small => StewardMode::Small,
    }
}

/// Create a group with this node as its steward
#[utoipa::path(post, path = "/api/groups", request_body = NewGroup,
    responses(
        (status = 201, description = "The new group (epoch 0, this node its only member and steward).", body = GroupDetail),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 409, description = "`group_exists`, `joining`, or `no_eth_rpc`: a gated group needs this node to run with `--eth-rpc` (its steward checks every joiner against the chain).", body = ErrorBody),
        (status = 503, description = "`eth_rpc_unavailable`: a gated group names the endpoint's chain, and the endpoint cannot be read now.", body = ErrorBody)))]
pub(super) async fn create_group(
    State(state): State<Arc<ApiState>>,
    Body(body): Body<NewGroup>,
) -> Result<(StatusCode, Json<GroupDetail>), ApiError> {
    let defaults = GroupParams::default();
    let params = GroupParams {
        mode: body.mode.map_or(defaults.mode, steward_mode),
        sn_min: body.sn_min.unwrap_or(defaults.sn_min),
        sn_max: body.sn_max.unwrap_or(defaults.sn_max),
        vote_timeout_secs: body.vote_timeout_secs.unwrap_or(defaults.vote_timeout_secs),
        liveness_yes: body.liveness_yes.unwrap_or(defaults.liveness_yes),
        membership_vote_timeout_secs: body
            .membership_vote_timeout_secs
            .unwrap_or(defaults.membership_vote_timeout_secs),
        join_rule: match body.join_rule.unwrap_or_default() {
            demls_api::JoinRule::Invite => demls_engine::JoinRule::Invite,
            demls_api::JoinRule::Open => demls_engine::JoinRule::Open,
        },
        max_proposals_per_member: body
            .max_proposals_per_member
            .unwrap_or(defaults.max_proposals_per_member),
        admission: admission::policy(&state.node, body.admission).await?,
        rotation: demls_engine::RotationRule {
            after_secs: body
                .rotate_after_secs
                .unwrap_or(defaults.rotation.after_secs),
            after_messages: body
                .rotate_after_messages
                .unwrap_or(defaults.rotation.after_messages),
        },
    };
    if params.sn_min > params.sn_max {
        return Err(ApiError::bad_request(format!(
            "sn_min ({}) is larger than sn_max ({})",
            params.sn_min, params.sn_max
        )));
    }
    let Json(detail) = on_node(&state, move |rt| rt.create_group(&body.name, params)).await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// A group in detail (members with roles, stewards, epoch, admission policy, health)
#[utoipa::path(get, path = "/api/groups/{group}", params(GroupName),
    responses(
        (status = 200, description = "The group.", body = GroupDetail),
        (status = 403, description = "`join_refused`: a steward refused this node's request to join; the message says why.", body = ErrorBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody),
        (status = 409, description = "`joining`: this node is not a member yet.", body = ErrorBody)))]
pub(super) async fn group(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> ApiResult<GroupDetail> {
    on_node(&state, move |rt| rt.group(&group)).await
}

/// Members and their roles
#[utoipa::path(get, path = "/api/groups/{group}/members", params(GroupName),
    responses(
        (status = 200, description = "The members.", body = Vec<Member>),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn members(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> ApiResult<Vec<Member>> {
    on_node(&state, move |rt| rt.group(&group).map(|d| d.members)).await
}

/// Epoch, stewards, peers, dropped messages by reason, queue
#[utoipa::path(get, path = "/api/groups/{group}/health", params(GroupName),
    responses(
        (status = 200, description = "The group's health.", body = Health),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn health(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> ApiResult<Health> {
    on_node(&state, move |rt| rt.group(&group).map(|d| d.health)).await
}

pub(super) fn address(text: &str) -> Result<Address, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("bad address {text:?}: {e}")))
}

/// Ask to join a group
///
/// The node listens on the group's welcome topic, waits for a steward's announcement (only
/// from `steward` if given), and sends its key package sealed to that steward. The members
/// vote; `joined` arrives on the event stream when the Welcome is processed.
#[utoipa::path(post, path = "/api/groups/{group}/join", params(GroupName),
    request_body(content = Option<JoinRequest>, description = "Optional."),
    responses(
        (status = 202, description = "The join is under way.", body = GroupSummary),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 409, description = "`joining` or `group_exists`.", body = ErrorBody)))]
pub(super) async fn join(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    body: Option<Json<JoinRequest>>,
) -> Result<(StatusCode, Json<GroupSummary>), ApiError> {
    let steward = body
        .and_then(|Json(b)| b.steward)
        .map(|s| address(&s))
        .transpose()?;
    let Json(summary) = on_node(&state, move |rt| rt.join(&group, steward)).await?;
    Ok((StatusCode::ACCEPTED, Json(summary)))
}

/// Leave a group (a self-removal that needs no vote)
#[utoipa::path(post, path = "/api/groups/{group}/leave", params(GroupName),
    responses(
        (status = 202, description = "The leave is proposed; `removed` follows on the event stream after the commit.", body = StatusBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody),
        (status = 422, description = "The engine refused.", body = ErrorBody)))]
pub(super) async fn leave(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> Result<(StatusCode, Json<StatusBody>), ApiError> {
    state.node.command(move |rt| rt.leave(&group)).await?;
    Ok(accepted(Status::Leaving))
}

/// A 202 answer with `status`.
fn accepted(status: Status) -> (StatusCode, Json<StatusBody>) {
    (StatusCode::ACCEPTED, Json(StatusBody { status }))
}

/// Replace this node's leaf keys in a group now (an MLS self-update that needs no vote)
#[utoipa::path(post, path = "/api/groups/{group}/rotate", params(GroupName),
    responses(
        (status = 202, description = "The update is proposed; an `epoch_changed` follows on the event stream after its commit (within about 30 s).", body = StatusBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody),
        (status = 422, description = "The engine refused.", body = ErrorBody)))]
pub(super) async fn rotate(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> Result<(StatusCode, Json<StatusBody>), ApiError> {
    state.node.command(move |rt| rt.rotate(&group)).await?;
    Ok(accepted(Status::Rotating))
}

/// Set this node's display name in a group (members see it next to its address)
#[utoipa::path(put, path = "/api/groups/{group}/name", params(GroupName),
    request_body = DisplayName,
    responses(
        (status = 200, description = "The group, with the name; the members learn it from an MLS application message.", body = GroupDetail),
        (status = 400, description = "`invalid`: over 64 bytes or with control characters.", body = ErrorBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn set_name(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    Body(body): Body<DisplayName>,
) -> ApiResult<GroupDetail> {
    on_node(&state, move |rt| {
        rt.set_display_name(&group, &body.name)?;
        rt.group(&group)
    })
    .await
}

/// Proposals with their live tally, deadline and decision
#[utoipa::path(get, path = "/api/groups/{group}/proposals", params(GroupName),
    responses(
        (status = 200, description = "Proposals, oldest first.", body = Vec<Proposal>),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn proposals(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> ApiResult<Vec<Proposal>> {
    on_node(&state, move |rt| rt.proposals(&group)).await
}

/// Propose removing a member
#[utoipa::path(post, path = "/api/groups/{group}/proposals", params(GroupName),
    request_body = NewProposal,
    responses(
        (status = 202, description = "The proposal is open; `proposal_opened` follows on the event stream.", body = StatusBody),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 422, description = "The engine refused.", body = ErrorBody)))]
pub(super) async fn propose(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    Body(body): Body<NewProposal>,
) -> Result<(StatusCode, Json<StatusBody>), ApiError> {
    let NewProposal::Remove { member } = body;
    let member = address(&member)?;
    state
        .node
        .command(move |rt| rt.propose_remove(&group, member))
        .await?;
    Ok(accepted(Status::Proposed))
}

/// Parses `0x0a1b2c3d` or `0a1b2c3d`.
pub fn proposal_id(text: &str) -> Option<ProposalId> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(digits, 16).ok().map(ProposalId)
}

/// Vote on an open proposal of the current epoch
#[utoipa::path(post, path = "/api/groups/{group}/proposals/{proposal}/votes",
    params(ProposalPath), request_body = Ballot,
    responses(
        (status = 200, description = "The proposal with the vote counted.", body = Proposal),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 404, description = "`unknown_group` or `unknown_proposal`.", body = ErrorBody),
        (status = 409, description = "`proposal_closed`: decided, or closed by an epoch change.", body = ErrorBody),
        (status = 422, description = "The engine refused.", body = ErrorBody)))]
pub(super) async fn vote(
    State(state): State<Arc<ApiState>>,
    Path(ProposalPath { group, proposal }): Path<ProposalPath>,
    Body(body): Body<Ballot>,
) -> ApiResult<Proposal> {
    let id = proposal_id(&proposal)
        .ok_or_else(|| ApiError::bad_request(format!("bad proposal id {proposal:?}")))?;
    on_node(&state, move |rt| rt.vote(&group, id, body.yes)).await
}

/// The query's page: from `after`, at most `limit` (500 unless given, 5000 at most).
fn page(page: Page) -> (u64, usize) {
    (page.after.unwrap_or(0), page.limit.unwrap_or(500).min(5000))
}

/// The group's history (also after leaving it)
#[utoipa::path(get, path = "/api/groups/{group}/messages", params(GroupName, Page),
    responses(
        (status = 200, description = "Messages, oldest first.", body = Vec<Message>),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn messages(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    Query(query): Query<Page>,
) -> ApiResult<Vec<Message>> {
    let (after, limit) = page(query);
    on_node(&state, move |rt| rt.messages(&group, after, limit)).await
}

/// Send a message
#[utoipa::path(post, path = "/api/groups/{group}/messages", params(GroupName),
    request_body = NewMessage,
    responses(
        (status = 201, description = "The message as stored (its delivery is `sent`, or `queued` while no peer is connected).", body = Message),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn send(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    Body(body): Body<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(message)))
}

/// The logged events (the newest 10 000 are kept)
#[utoipa::path(get, path = "/api/events/log", params(Page),
    responses((status = 200, description = "Events, oldest first, as on the WebSocket.", body = Vec<NodeEvent>)))]
pub(super) async fn event_log(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<Page>,
) -> ApiResult<Vec<NodeEvent>> {
    let (after, limit) = page(query);
    on_node(&state, move |rt| rt.recent_events(after, limit)).await
}

/// Prometheus metrics (text format 0.0.4)
///
/// `demls_peers`, `demls_peers_rejected_total`, `demls_peers_banned_total`,
/// `demls_relay_messages_total{direction}`,
/// `demls_messages_dropped_total{layer="relay"|"engine",reason}`,
/// `demls_messages_ignored_total{reason}`, `demls_messages_handled_total{topic}`,
/// `demls_published_total{kind}`, `demls_publish_failures_total{reason}`,
/// `demls_chat_messages_total{direction}`, `demls_group_epoch{group}`,
/// `demls_group_members{group}`, `demls_proposals_opened_total`,
/// `demls_proposals_decided_total{outcome}`, `demls_commits_rejected_total`, and the
/// histograms `demls_consensus_latency_seconds` and `demls_commit_latency_seconds`.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "The metrics.", content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let text = state.node.metrics().render(&state.node.relay().metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// WebSocket stream of node events (JSON text messages)
///
/// Every event as one JSON object, a `NodeEvent`: `type`, `seq`, `at` and the fields of its
/// type. The browser passes the token as `access_token` (browsers cannot set headers on
/// WebSockets).
#[utoipa::path(get, path = "/api/events",
    params(EventFilter, ("access_token" = Option<String>, Query, description = "The token, for browsers.")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then one `NodeEvent` per text message.", body = NodeEvent),
        (status = 401, description = "`no_token` or `bad_token`.", body = ErrorBody)))]
pub(super) async fn events_socket(
    State(state): State<Arc<ApiState>>,
    Query(filter): Query<EventFilter>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let events = state.node.subscribe();
    // Events name groups by identifier; the filter may be a name.
    let group = match filter.group {
        Some(name) => {
            let asked = name.clone();
            match state.node.call(move |rt| rt.resolve(&asked)).await {
                Ok(Ok(id)) => Some(id.to_string()),
                _ => Some(name),
            }
        }
        None => None,
    };
    upgrade.on_upgrade(move |socket| stream_events(socket, events, group))
}

/// Whether a client that asked for `group`'s events gets `event`: every event without a
/// filter; with one, that group's, and `lagged`.
fn concerns(event: &NodeEvent, group: Option<&str>) -> bool {
    match (group, &event.body) {
        (None, _) | (_, EventBody::Lagged { .. }) => true,
        (Some(wanted), body) => body.group() == Some(wanted),
    }
}

/// Sends every node event (of `group`, if given) as a JSON text message until the client
/// goes away. A client too slow to keep up is told how many events it missed.
async fn stream_events(
    mut socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<runtime::NodeEvent>,
    group: Option<String>,
) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event.api,
                    Err(RecvError::Lagged(missed)) => NodeEvent {
                        seq: None,
                        at: runtime::now().0,
                        body: EventBody::Lagged { missed },
                    },
                    Err(RecvError::Closed) => break,
                };
                if !concerns(&event, group.as_deref()) {
                    continue;
                }
                let text = runtime::json::to_text(&event);
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
