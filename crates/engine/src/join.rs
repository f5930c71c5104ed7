//! Joining a group: from its announcement, through a sealed key package, to its Welcome.

use std::collections::{BTreeMap, BTreeSet};

use demls_identity::Address;
use mls_rs::crypto::HpkePublicKey;
use mls_rs::group::ExportedTree;
use mls_rs::{
    CipherSuiteProvider, ExtensionList, KeyPackageStorage, MlsMessage, MlsMessageDescription,
};
use prost::Message;

use crate::change::key_package_of;
use crate::context::Ctx;
use crate::mls::{CIPHER_SUITE, MlsClient, MlsGroup, TreeKeyExt, suite};
use crate::second_welcome::SecondWelcome;
use crate::session::GroupSession;
use crate::snapshot::JoinSnapshot;
use crate::steward::{TREE_NONCE, join_aad, join_info};
use crate::wire::{
    GroupAnnouncement, Invitation, JoinRefused, JoinRequest, SealedJoin, WelcomeBundle,
    check_signed_by, envelope, signing_bytes,
};
use crate::{EngineError, Epoch, Event, GroupId, Timestamp, TopicKind};

/// Most stewards a joiner keeps track of (and seals each request to).
const MOST_STEWARDS: usize = 16;
/// Announcement intervals after which a steward not heard again is no longer asked.
const STALE_AFTER_ANNOUNCEMENTS: u64 = 3;

/// A verified group announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The announcing steward.
    pub steward: Address,
    /// The key join requests are sealed to.
    pub hpke_key: Vec<u8>,
    /// The group's epoch when announced.
    pub epoch: Epoch,
    /// Members when announced.
    pub member_count: u32,
    /// When it was issued (steward's clock).
    pub issued_at: Timestamp,
    /// Who may join.
    pub policy: demls_policy::AdmissionPolicy,
}

impl Announcement {
    /// Checks an announcement's ciphersuite, key and signature.
    pub(crate) fn verify(announcement: &GroupAnnouncement) -> Result<Self, EngineError> {
        if announcement.cipher_suite != u32::from(*CIPHER_SUITE) {
            return Err(EngineError::UnsupportedCipherSuite(
                u16::try_from(announcement.cipher_suite).unwrap_or(u16::MAX),
            ));
        }
        let steward = Address::from_slice(&announcement.steward)
            .ok_or_else(|| EngineError::Malformed("steward is not an address".into()))?;
        check_signed_by(
            announcement,
            &announcement.signature,
            |a| a.signature.clear(),
            steward,
        )?;
        let key = HpkePublicKey::from(announcement.steward_hpke_key.clone());
        suite()
            .kem_public_key_validate(&key)
            .map_err(|e| EngineError::Crypto(format!("steward key: {e:?}")))?;
        Ok(Self {
            steward,
            hpke_key: announcement.steward_hpke_key.clone(),
            epoch: Epoch(announcement.epoch),
            member_count: announcement.member_count,
            issued_at: Timestamp(announcement.issued_at_ms),
            policy: demls_policy::AdmissionPolicy::decode(&announcement.admission_policy)?,
        })
    }
}

/// How far a join has come, as the joiner's engine knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinStage {
    /// No steward of the group heard announcing yet.
    Looking,
    /// Join requests went out, sealed to these stewards; the first at `since`.
    Requested {
        /// The stewards asked, in address order.
        stewards: Vec<Address>,
        /// When the first request went out.
        since: Timestamp,
    },
}

/// This node's attempt to join one group.
pub(crate) struct JoinAttempt {
    group: GroupId,
    steward_filter: Option<Address>,
    /// The stewards heard announcing the group: the latest announcement of each, and when
    /// it was heard. Each request is sealed to every one of them heard lately.
    heard: BTreeMap<Address, (Announcement, Timestamp)>,
    /// The stewards a request was sealed to.
    asked: BTreeSet<Address>,
    /// When the first request went out.
    first_request: Option<Timestamp>,
    key_package: Option<(MlsMessage, Vec<u8>)>,
    next_send: Option<Timestamp>,
    /// The invitation this node was given, sealed into its request.
    invitation: Option<Invitation>,
    /// Application-topic messages that arrived before the Welcome, replayed after it.
    early: Vec<Vec<u8>>,
}

impl JoinAttempt {
    /// Starts an attempt; `steward` restricts which announcer to trust.
    pub(crate) fn new(group: GroupId, steward: Option<Address>) -> Self {
        Self {
            group,
            steward_filter: steward,
            heard: BTreeMap::new(),
            asked: BTreeSet::new(),
            first_request: None,
            key_package: None,
            next_send: None,
            invitation: None,
            early: Vec::new(),
        }
    }

    /// The same attempt, presenting `invitation` to the steward.
    pub(crate) fn with_invitation(self, invitation: Option<Invitation>) -> Self {
        Self { invitation, ..self }
    }

    /// A steward refused this node: checks the refusal comes from a steward it asked.
    pub(crate) fn refused(
        &mut self,
        refusal: JoinRefused,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        let steward = Address::from_slice(&refusal.steward)
            .ok_or_else(|| EngineError::Malformed("steward is not an address".into()))?;
        if refusal.joiner.as_slice() != me.as_bytes() || !self.heard.contains_key(&steward) {
            return Err(EngineError::NotForUs);
        }
        check_signed_by(
            &refusal,
            &refusal.signature,
            |r| r.signature.clear(),
            steward,
        )?;
        ctx.emit(Event::JoinRefused {
            group: self.group.clone(),
            steward,
            reason: refusal.reason,
        });
        Ok(())
    }

    /// How far this attempt has come.
    pub(crate) fn stage(&self) -> JoinStage {
        match self.first_request {
            Some(since) => JoinStage::Requested {
                stewards: self.asked.iter().copied().collect(),
                since,
            },
            None => JoinStage::Looking,
        }
    }

    /// The group this attempt is for.
    pub(crate) fn group(&self) -> &GroupId {
        &self.group
    }

    /// The state to persist.
    pub(crate) fn snapshot(&self) -> Result<JoinSnapshot, EngineError> {
        Ok(JoinSnapshot {
            group_id: self.group.as_str().to_owned(),
            steward_filter: self
                .steward_filter
                .map(|a| a.as_bytes().to_vec())
                .unwrap_or_default(),
            key_package: match &self.key_package {
                Some((message, _)) => message.to_bytes()?,
                None => Vec::new(),
            },
            invitation: self.invitation.clone(),
        })
    }

    /// An attempt resuming from persisted state; it sends again at the next announcement.
    pub(crate) fn restore(snapshot: JoinSnapshot) -> Result<Self, EngineError> {
        let group = GroupId::new(&snapshot.group_id)?;
        let steward = match snapshot.steward_filter.as_slice() {
            [] => None,
            bytes => Some(
                Address::from_slice(bytes)
                    .ok_or_else(|| EngineError::Malformed("snapshot: steward".into()))?,
            ),
        };
        let mut attempt = Self::new(group, steward).with_invitation(snapshot.invitation);
        if !snapshot.key_package.is_empty() {
            let message = MlsMessage::from_bytes(&snapshot.key_package)?;
            let reference = key_package_of(&message)?.to_reference(&suite())?.to_vec();
            attempt.key_package = Some((message, reference));
        }
        Ok(attempt)
    }

    /// Keeps a group message that may turn out to be for this node's first epoch:
    /// the Welcome and the first proposals of the new epoch race each other.
    pub(crate) fn keep_early(
        &mut self,
        message: Vec<u8>,
        ctx: &Ctx<'_>,
    ) -> Result<(), EngineError> {
        if self.early.len() >= ctx.config.max_buffered_messages {
            return Err(EngineError::BufferFull);
        }
        self.early.push(message);
        Ok(())
    }

    /// Takes an announcement into account: the first usable one triggers the request, and
    /// a steward heard for the first time is sent one at once.
    pub(crate) fn on_announcement(
        &mut self,
        announcement: Announcement,
        client: &MlsClient,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        if self
            .steward_filter
            .is_some_and(|s| s != announcement.steward)
        {
            return Err(EngineError::NotForUs);
        }
        let steward = announcement.steward;
        if self.heard.is_empty() {
            ctx.emit(Event::AnnouncementSeen {
                group: self.group.clone(),
                steward,
                epoch: announcement.epoch,
            });
        }
        let new = !self.heard.contains_key(&steward);
        if new && self.heard.len() >= MOST_STEWARDS {
            // The one heard least lately makes room: before it joins, a joiner cannot tell a
            // steward from anyone else announcing the group, and stewards announce often.
            let oldest = self
                .heard
                .iter()
                .min_by_key(|(_, (_, heard))| *heard)
                .map(|(steward, _)| *steward);
            if let Some(oldest) = oldest {
                self.heard.remove(&oldest);
            }
        }
        self.heard.insert(steward, (announcement, ctx.now));
        if new {
            // Every steward gets the request: the first of this node's take-up order proposes
            // it at once and the others only if nobody has by their turn, so one that is
            // silent or censoring does not strand this node, and no second vote is opened on it.
            self.send(client, ctx, Some(steward))?;
        }
        Ok(())
    }

    /// Seals this node's key package to the stewards heard lately (or only to `steward`)
    /// and sends the requests.
    fn send(
        &mut self,
        client: &MlsClient,
        ctx: &mut Ctx<'_>,
        steward: Option<Address>,
    ) -> Result<(), EngineError> {
        let stale_ms = ctx
            .config
            .announce_interval_ms
            .saturating_mul(STALE_AFTER_ANNOUNCEMENTS)
            .max(ctx.config.join_retry_ms);
        let mut asked: Vec<Announcement> = self
            .heard
            .iter()
            .filter(|(s, (_, heard))| {
                steward.is_none_or(|only| only == **s) && heard.plus_ms(stale_ms) > ctx.now
            })
            .map(|(_, (a, _))| a.clone())
            .collect();
        if asked.is_empty() {
            // None heard lately: the one heard last may be back.
            asked.extend(
                self.heard
                    .values()
                    .max_by_key(|(_, heard)| *heard)
                    .map(|(a, _)| a.clone()),
            );
        }
        if asked.is_empty() {
            return Ok(());
        }
        if steward.is_none() || self.next_send.is_none() {
            // Set first: a failed attempt is retried later, not in a tight loop.
            self.next_send = Some(ctx.now.plus_ms(ctx.config.join_retry_ms));
        }
        if self.key_package.is_none() {
            let message = client.generate_key_package_message(
                ExtensionList::new(),
                ExtensionList::new(),
                Some(ctx.now.mls_time()),
            )?;
            let reference = key_package_of(&message)?.to_reference(&suite())?.to_vec();
            self.key_package = Some((message, reference));
        }
        let Some((key_package, _)) = &self.key_package else {
            return Ok(());
        };
        for announcement in &asked {
            send_join_request(
                &self.group,
                key_package,
                self.invitation.clone(),
                announcement,
                ctx,
            )?;
            self.asked.insert(announcement.steward);
            self.first_request.get_or_insert(ctx.now);
        }
        Ok(())
    }

    /// Re-sends the request when its retry time has come.
    pub(crate) fn handle_timeout(
        &mut self,
        client: &MlsClient,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        if self.next_send.is_some_and(|t| t <= ctx.now) {
            self.send(client, ctx, None)?;
        }
        Ok(())
    }

    /// When this attempt next needs the clock.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_send
    }

    /// Joins from a Welcome addressed to this node's key package.
    pub(crate) fn handle_welcome(
        &mut self,
        bundle: WelcomeBundle,
        client: &MlsClient,
        ctx: &mut Ctx<'_>,
    ) -> Result<GroupSession, EngineError> {
        let Some((_, reference)) = &self.key_package else {
            return Err(EngineError::NotForUs);
        };
        let (mut group, _) = open_welcome(&bundle, reference, client, ctx.now)?;
        // Kept before writing the group state, which deletes it: another Welcome for the same
        // key package (a competing commit that added this node too) may be the one that lasts.
        let key_package = client
            .key_package_store()
            .get(reference)
            .map_err(|e| EngineError::Mls(format!("key package store: {e}")))?;
        let reference = reference.clone();
        group.write_to_storage()?;
        let mut session = GroupSession::new(
            self.group.clone(),
            ctx.wallet.address(),
            group,
            None,
            ctx.now,
        )?;
        if let Some(key_package) = key_package {
            session.second_welcome = Some(SecondWelcome::new(reference, key_package));
        }
        ctx.emit(Event::Joined {
            group: self.group.clone(),
            epoch: session.epoch(),
            members: session.members(),
        });
        for message in std::mem::take(&mut self.early) {
            // Most early messages belong to epochs before this node joined; those fail here.
            if let Err(error) = session.receive_mls(&message, ctx) {
                tracing::debug!(group = %self.group, %error, "early message dropped");
            }
        }
        session.arrivals.keep_welcome(bundle);
        Ok(session)
    }
}

/// The group `bundle` welcomes this node into with its key package `reference` (not yet
/// written to the store), and the leaf of the member that made the Welcome (its committer).
pub(crate) fn open_welcome(
    bundle: &WelcomeBundle,
    reference: &[u8],
    client: &MlsClient,
    now: Timestamp,
) -> Result<(MlsGroup, u32), EngineError> {
    let welcome = MlsMessage::from_bytes(&bundle.welcome)
        .map_err(|e| EngineError::Malformed(format!("welcome: {e}")))?;
    match welcome.description() {
        MlsMessageDescription::Welcome {
            key_package_refs, ..
        } => {
            if !key_package_refs.iter().any(|r| r.to_vec() == reference) {
                return Err(EngineError::NotForUs);
            }
        }
        _ => return Err(EngineError::Malformed("not a Welcome".into())),
    }
    let group_info = client.examine_welcome_message(&welcome)?;
    let tree_key = group_info
        .extensions()
        .get_as::<TreeKeyExt>()
        .map_err(|e| EngineError::Malformed(format!("tree key: {e}")))?
        .ok_or_else(|| EngineError::Malformed("Welcome has no tree key".into()))?;
    let tree = suite()
        .aead_open(&tree_key.key, &bundle.encrypted_tree, None, &TREE_NONCE)
        .map_err(|e| EngineError::Crypto(format!("tree does not open: {e:?}")))?;
    let tree = ExportedTree::from_bytes(&tree)?;
    let (group, _) = client.join_group(Some(tree), &welcome, Some(now.mls_time()))?;
    Ok((group, group_info.sender()))
}

/// Seals `key_package` to the announcing steward and publishes it on the welcome topic.
pub(crate) fn send_join_request(
    group: &GroupId,
    key_package: &MlsMessage,
    invitation: Option<Invitation>,
    announcement: &Announcement,
    ctx: &mut Ctx<'_>,
) -> Result<(), EngineError> {
    let me = ctx.wallet.address();
    let plaintext = SealedJoin {
        key_package: key_package.to_bytes()?,
        invitation,
    }
    .encode_to_vec();
    let sealed = ctx
        .suite
        .hpke_seal(
            &HpkePublicKey::from(announcement.hpke_key.clone()),
            &join_info(group),
            Some(&join_aad(me, announcement.steward)),
            &plaintext,
        )
        .map_err(|e| EngineError::Crypto(format!("hpke seal: {e:?}")))?;
    let mut request = JoinRequest {
        steward: announcement.steward.as_bytes().to_vec(),
        joiner: me.as_bytes().to_vec(),
        kem_output: sealed.kem_output,
        ciphertext: sealed.ciphertext,
        sent_at_ms: ctx.now.0,
        signature: Vec::new(),
    };
    let signed = signing_bytes(&request, |r| r.signature.clear());
    request.signature = ctx.wallet.sign_personal(&signed).as_bytes().to_vec();
    ctx.send(
        group,
        TopicKind::Welcome,
        envelope::Body::JoinRequest(request),
    );
    ctx.emit(Event::JoinRequestSent {
        group: group.clone(),
        steward: announcement.steward,
    });
    Ok(())
}
