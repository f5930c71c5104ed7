//! Membership with consent: invitations, joining by ticket, and the join requests waiting
//! for the members, with approve and deny.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use demls_api::{
    ErrorBody, GroupSummary, Invitation, JoinTicket, NewInvitation, PendingRequest, Proposal,
    RequestDecision,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::routes::{Body, GroupName, address, on_node};
use super::{ApiError, ApiState};
use crate::runtime::consent::DEFAULT_INVITATION_SECS;

/// A join request of the group named in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct RequestPath {
    /// The group's name.
    group: String,
    /// Who asks to join.
    address: String,
}

/// Invite an address: this member's YES on admitting it, signed ahead
///
/// The invitation is told to the group (automatic voters then say YES to the invitee's
/// request) and returned as a ticket for the invitee (`POST /api/join`).
#[utoipa::path(post, path = "/api/groups/{group}/invitations", params(GroupName),
    request_body = NewInvitation,
    responses(
        (status = 201, description = "The invitation and its ticket.", body = Invitation),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 404, description = "`unknown_group`.", body = ErrorBody),
        (status = 422, description = "The engine refused (e.g. `already_member`).", body = ErrorBody)))]
pub(super) async fn invite(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
    Body(body): Body<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let invitee = address(&body.address)?;
    let ttl = body.expires_in_secs.unwrap_or(DEFAULT_INVITATION_SECS);
    let Json(invitation) = on_node(&state, move |rt| rt.invite(&group, invitee, ttl)).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// Ask to join the group a ticket names (presenting its invitation)
#[utoipa::path(post, path = "/api/join", request_body = JoinTicket,
    responses(
        (status = 202, description = "The join is under way.", body = GroupSummary),
        (status = 400, description = "`invalid`: not a ticket.", body = ErrorBody),
        (status = 409, description = "`joining` or `group_exists`.", body = ErrorBody),
        (status = 422, description = "`invalid_invitation`: for another address, expired, or forged.", body = ErrorBody)))]
pub(super) async fn join_ticket(
    State(state): State<Arc<ApiState>>,
    Body(body): Body<JoinTicket>,
) -> Result<(StatusCode, Json<GroupSummary>), ApiError> {
    let Json(summary) = on_node(&state, move |rt| rt.join_ticket(&body.ticket)).await?;
    Ok((StatusCode::ACCEPTED, Json(summary)))
}

/// Join requests waiting for the members' votes
#[utoipa::path(get, path = "/api/groups/{group}/requests", params(GroupName),
    responses(
        (status = 200, description = "Who asks, since when, who said YES or NO, oldest first.", body = Vec<PendingRequest>),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn requests(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> Result<Json<Vec<PendingRequest>>, ApiError> {
    on_node(&state, move |rt| rt.requests(&group)).await
}

/// Approve or deny a waiting join request
///
/// This node's person's YES (or NO): cast now, and again on the request's later votes
/// (votes are per epoch) until it is decided.
#[utoipa::path(post, path = "/api/groups/{group}/requests/{address}", params(RequestPath),
    request_body = RequestDecision,
    responses(
        (status = 200, description = "The request's proposal with the vote counted.", body = Proposal),
        (status = 400, description = "`invalid`.", body = ErrorBody),
        (status = 404, description = "`unknown_group`, or `no_such_request`: nobody with that address waits.", body = ErrorBody)))]
pub(super) async fn decide(
    State(state): State<Arc<ApiState>>,
    Path(RequestPath {
        group,
        address: who,
    }): Path<RequestPath>,
    Body(body): Body<RequestDecision>,
) -> Result<Json<Proposal>, ApiError> {
    let joiner = address(&who)?;
    on_node(&state, move |rt| {
        rt.decide_request(&group, joiner, body.approve)
    })
    .await
}
