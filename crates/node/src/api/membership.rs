//! Who is in a group and in which role, and how far this node's own join has come: the views
//! the web client shows beside the group's detail.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use demls_api::{Change, ErrorBody, JoinProgress, JoinStage, Mode, Role, Roster, RosterMember};
use demls_engine::{GroupView, StewardMode};
use demls_identity::Address;

use super::routes::GroupName;
use super::{ApiError, ApiState};
use crate::runtime::consent::Outside;
use crate::runtime::{CommandError, Runtime};

fn mode(mode: StewardMode) -> Mode {
    match mode {
        StewardMode::Single => Mode::Single,
        StewardMode::Big => Mode::Big,
        StewardMode::Small => Mode::Small,
    }
}

/// The roles of `member` in `view`, most specific first.
fn roles(view: &GroupView, member: &Address) -> Vec<Role> {
    let mut roles = Vec::new();
    match view.committers.iter().position(|c| c == member) {
        Some(0) => roles.push(Role::EpochSteward),
        Some(_) => roles.push(Role::Backup),
        None => {}
    }
    if view.stewards.contains(member) {
        roles.push(Role::Steward);
    }
    roles.push(Role::Member);
    roles
}

/// The engine's view of a group this node is a member of.
fn member_view(rt: &Runtime, name: &str) -> Result<GroupView, CommandError> {
    match rt.group_view(&rt.resolve(name)?) {
        Some(view) => Ok(view),
        // Not a member: the detail says why (still joining, or unknown).
        None => rt
            .group(name)
            .and(Err(CommandError::UnknownGroup(name.to_owned()))),
    }
}

/// The roster of a group, as seen by the node `me`.
pub fn roster(rt: &Runtime, name: &str, me: Address) -> Result<Roster, CommandError> {
    let view = member_view(rt, name)?;
    let mut joined: BTreeMap<Address, u64> = BTreeMap::new();
    for proposal in rt.proposals(name)? {
        let added = match &proposal.change {
            Change::Add { member } => member.parse().ok(),
            _ => None,
        };
        if let (Some(member), Some(epoch)) = (added, proposal.committed_epoch) {
            joined.insert(member, epoch);
        }
    }
    let members = view
        .members
        .iter()
        .map(|m| {
            let is_self = *m == me;
            RosterMember {
                address: m.to_string(),
                roles: roles(&view, m),
                joined_epoch: joined
                    .get(m)
                    .copied()
                    .or(is_self.then_some(view.joined_epoch.0)),
                is_self,
            }
        })
        .collect();
    Ok(Roster {
        group: name.to_owned(),
        epoch: view.epoch.0,
        mode: mode(view.mode),
        stewards: view.stewards.iter().map(ToString::to_string).collect(),
        committers: view.committers.iter().map(ToString::to_string).collect(),
        members,
    })
}

/// How far this node's join of `name` has come: the engine's word while it asks, the
/// node's record once refused.
pub fn join_progress(rt: &Runtime, name: &str) -> Result<JoinProgress, CommandError> {
    let group = rt.resolve(name)?;
    let progress = |stage, steward: Option<String>, since, epoch| JoinProgress {
        group: name.to_owned(),
        stage,
        steward,
        reason: None,
        since,
        epoch,
    };
    if let Some(view) = rt.group_view(&group) {
        return Ok(progress(
            JoinStage::Member,
            None,
            None,
            Some(view.joined_epoch.0),
        ));
    }
    if let Some(stage) = rt.join_stage(&group) {
        return Ok(match stage {
            demls_engine::JoinStage::Requested { stewards, since } => progress(
                JoinStage::Requested,
                stewards.first().map(ToString::to_string),
                Some(since.0),
                None,
            ),
            _ => progress(JoinStage::Looking, None, None, None),
        });
    }
    match rt.outside(&group) {
        Some(Outside::Refused {
            steward,
            reason,
            at,
        }) => Ok(JoinProgress {
            reason: Some(reason.clone()),
            ..progress(
                JoinStage::Refused,
                Some(steward.clone()),
                (*at > 0).then_some(*at),
                None,
            )
        }),
        // Removed, or unknown: the detail says which.
        _ => Err(rt
            .group(name)
            .err()
            .unwrap_or_else(|| CommandError::UnknownGroup(name.to_owned()))),
    }
}

/// Members with their roles this epoch (epoch steward, backup, steward, member) and joined epoch
#[utoipa::path(get, path = "/api/groups/{group}/roster", params(GroupName),
    responses(
        (status = 200, description = "The roster.", body = Roster),
        (status = 404, description = "`unknown_group`.", body = ErrorBody),
        (status = 409, description = "`joining`: this node is not a member yet.", body = ErrorBody)))]
pub(super) async fn roster_route(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> Result<Json<Roster>, ApiError> {
    let me = state.node.address();
    Ok(Json(
        state.node.command(move |rt| roster(rt, &group, me)).await?,
    ))
}

/// How far this node's request to join has come
#[utoipa::path(get, path = "/api/groups/{group}/join", params(GroupName),
    responses(
        (status = 200, description = "The stage of the join (`member` once admitted).", body = JoinProgress),
        (status = 404, description = "`unknown_group`.", body = ErrorBody)))]
pub(super) async fn join_route(
    State(state): State<Arc<ApiState>>,
    Path(GroupName(group)): Path<GroupName>,
) -> Result<Json<JoinProgress>, ApiError> {
    Ok(Json(
        state
            .node
            .command(move |rt| join_progress(rt, &group))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use demls_engine::EngineConfig;
    use demls_storage::Durability;
    use demls_transport::TransportConfig;
    use serde_json::{Value, json};
    use zeroize::Zeroizing;

    use super::*;
    use crate::runtime::admission::ChainAccess;
    use crate::runtime::{self, NodeConfig};

    /// Calls the API at `base` with the token `secret`: status and JSON body (or the text).
    async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (url, method) = (format!("{base}{path}"), method.to_owned());
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut response = match (method.as_str(), body) {
                ("GET", _) => agent
                    .get(&url)
                    .header("Authorization", "Bearer secret")
                    .call(),
                (_, Some(body)) => agent
                    .post(&url)
                    .header("Authorization", "Bearer secret")
                    .send_json(body),
                (_, None) => agent
                    .post(&url)
                    .header("Authorization", "Bearer secret")
                    .send_empty(),
            }
            .expect("the API answers");
            let text = response
                .body_mut()
                .read_to_string()
                .expect("a readable body");
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (response.status().as_u16(), value)
        })
        .await
        .expect("the request task ends")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roster_join_progress_and_the_web_client_are_served() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let node = runtime::start(NodeConfig {
            data_dir: dir.path().to_owned(),
            passphrase: Zeroizing::new("test passphrase".into()),
            key_file: None,
            transport: TransportConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
                ..TransportConfig::default()
            },
            engine: EngineConfig::default(),
            durability: Durability::Relaxed,
            chain: ChainAccess::none(),
            archive: demls_storage::ArchiveLimits::default(),
        })
        .await
        .expect("the node starts");
        let me = node.address().to_string();
        let app = super::super::router(ApiState::new(node.clone(), "secret".into(), None));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let created = json!({"name": "lab", "mode": "big", "sn_min": 1, "sn_max": 3});
        assert_eq!(
            call(&base, "POST", "/api/groups", Some(created)).await.0,
            201
        );
        let (status, roster) = call(&base, "GET", "/api/groups/lab/roster", None).await;
        assert_eq!(status, 200, "{roster}");
        assert_eq!(roster["mode"], "big");
        assert_eq!(roster["committers"], json!([me]));
        assert_eq!(
            roster["members"],
            json!([{"address": me, "roles": ["epoch_steward", "steward", "member"],
                    "is_self": true, "joined_epoch": 0}])
        );
        let (status, progress) = call(&base, "GET", "/api/groups/lab/join", None).await;
        assert_eq!(
            (status, &progress["stage"], &progress["epoch"]),
            (200, &json!("member"), &json!(0))
        );

        assert_eq!(
            call(&base, "POST", "/api/groups/far/join", None).await.0,
            202
        );
        let (status, progress) = call(&base, "GET", "/api/groups/far/join", None).await;
        assert_eq!((status, &progress["stage"]), (200, &json!("looking")));
        let (status, refused) = call(&base, "GET", "/api/groups/far/roster", None).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (409, &json!("joining"))
        );
        let (status, refused) = call(&base, "GET", "/api/groups/none/join", None).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (404, &json!("unknown_group"))
        );

        for bad in [
            json!({"name": "x", "mode": "huge"}),
            json!({"name": "x", "sn_min": 3, "sn_max": 2}),
        ] {
            assert_eq!(call(&base, "POST", "/api/groups", Some(bad)).await.0, 400);
        }

        let (status, page) = call(&base, "GET", "/", None).await;
        assert_eq!(status, 200);
        assert!(
            page.as_str().is_some_and(|p| p.contains("/assets/app.js")),
            "{page}"
        );
        assert_eq!(call(&base, "GET", "/assets/app.css", None).await.0, 200);
        assert_eq!(call(&base, "GET", "/assets/other.js", None).await.0, 404);
        node.shutdown().await.expect("the node stops");
    }
}
