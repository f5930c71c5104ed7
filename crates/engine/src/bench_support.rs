//! Benchmark support: batch commits outside the vote, and groups formed in one commit.
//!
//! The protocol admits members one vote at a time, a handful per steward and
//! epoch (`max_proposals_per_member`, and the consensus caps on open
//! proposals). Measuring what one commit adding thousands of members costs, or
//! starting a network benchmark from a group of a thousand, needs a way
//! around the vote. These helpers are that way, and nothing else: every
//! cryptographic step is the engine's own code on real mls-rs state.
//!
//! - [`Engine::batch_commit`] is the steward's commit code
//!   (`prepare_commit`: mls-rs with demls's rules, encrypted handshake,
//!   the ratchet tree sealed once beside the Welcome) with an empty vote
//!   manifest, and [`Engine::adopt_batch`] applies it at the steward as
//!   after any commit; [`Engine::removal_commit`] is the same for a commit
//!   removing one member.
//! - [`Engine::apply_batch_commit`] is what a member does with a commit —
//!   mls-rs processing, reading its effects (each added credential's wallet
//!   binding verified), applying it, writing state — minus the checks
//!   against the vote (the manifest carries none).
//! - [`Engine::awaiting_welcome`] is a joiner after its join request; the
//!   Welcome then goes through [`Engine::handle_message`] unchanged.
//! - [`form_group_at_once`] builds a group of N members from these: one
//!   batch commit (with the steward election every member would compute),
//!   and N-1 joiners each joining from its Welcome.
//!
//! Not for production: a member fed [`Engine::apply_batch_commit`] accepts a
//! commit nobody voted for.

use demls_identity::{Address, Wallet};
use mls_rs::MlsMessage;
use mls_rs::group::ReceivedMessage;
use prost::Message;

use crate::change::Change;
use crate::commit::{Rank, ValidCommit, effects, elected_params};
use crate::epoch::SeenCommit;
use crate::mls::GroupParamsExt;
use crate::snapshot::{EngineSnapshot, JoinSnapshot, SNAPSHOT_VERSION};
use crate::steward::{PreparedCommit, StewardDuty};
use crate::wire::{Envelope, envelope};
use crate::{
    Engine, EngineConfig, EngineError, GroupId, GroupParams, MlsSigner, MlsStore, StewardMode,
    Timestamp, Transmit, roles,
};

/// Key packages decoded and checked (ciphersuite, wallet binding) as a
/// steward does when it takes in join requests, ready to commit.
#[derive(Clone)]
pub struct BatchAdds(Vec<Change>);

impl BatchAdds {
    /// Decodes MLS KeyPackage messages (as made by [`Engine::key_package`]).
    pub fn decode(key_packages: &[Vec<u8>]) -> Result<Self, EngineError> {
        key_packages
            .iter()
            .map(|bytes| Change::add_from_bytes(bytes))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// How many members the batch adds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the batch adds nobody.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The addresses the batch adds, in order.
    pub fn addresses(&self) -> Vec<Address> {
        self.0
            .iter()
            .map(|change| change.subject(Address::default()))
            .collect()
    }
}

/// A batch commit made by a steward and not yet applied by it.
pub struct BatchCommit {
    prepared: PreparedCommit,
    /// The commit's envelope, for the application topic.
    pub commit: Transmit,
    /// The Welcome envelopes (one for the whole batch), for the welcome topic.
    pub welcomes: Vec<Transmit>,
}

impl Engine {
    /// Builds, as the steward of `group`, one commit adding every member of
    /// `adds`, and its Welcome, with the steward's commit code and an empty
    /// vote manifest. The steward's state does not change until
    /// [`Engine::adopt_batch`]. Transmits queued before are discarded.
    pub fn batch_commit(
        &mut self,
        group: &GroupId,
        adds: BatchAdds,
        now: Timestamp,
    ) -> Result<BatchCommit, EngineError> {
        self.batch_commit_with(group, adds.0, None, now)
    }

    /// Builds, as a member of `group`, one commit removing the member
    /// `target` (with the UpdatePath MLS requires), with the steward's commit
    /// code and an empty vote manifest, like [`Engine::batch_commit`]. The
    /// committer's state does not change until [`Engine::adopt_batch`].
    pub fn removal_commit(
        &mut self,
        group: &GroupId,
        target: Address,
        now: Timestamp,
    ) -> Result<BatchCommit, EngineError> {
        self.batch_commit_with(group, vec![Change::Remove { target }], None, now)
    }

    fn batch_commit_with(
        &mut self,
        group: &GroupId,
        changes: Vec<Change>,
        params: Option<GroupParamsExt>,
        now: Timestamp,
    ) -> Result<BatchCommit, EngineError> {
        while self.poll_transmit().is_some() {}
        let (mut ctx, session) = self.session(group, now)?;
        let prepared = session.prepare_commit(changes, params, Vec::new(), &ctx)?;
        session.publish(&prepared, &mut ctx);
        let mut transmits = std::iter::from_fn(|| self.poll_transmit());
        let commit = transmits
            .next()
            .ok_or_else(|| EngineError::Mls("the commit was not published".into()))?;
        let welcomes = transmits.collect();
        Ok(BatchCommit {
            prepared,
            commit,
            welcomes,
        })
    }

    /// Applies a batch commit at the steward that made it, as after any of its commits.
    pub fn adopt_batch(
        &mut self,
        group: &GroupId,
        batch: BatchCommit,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.adopt(batch.prepared.commit, &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Processes and applies, as a member of `group`, a batch commit's
    /// envelope: mls-rs processing on a copy of the state, the commit's
    /// effects (every added credential's binding verified), then applying it
    /// and writing state as after any commit. What it skips is checking the
    /// commit against the vote: a batch commit carries no votes.
    pub fn apply_batch_commit(
        &mut self,
        group: &GroupId,
        envelope: &[u8],
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Some(envelope::Body::MlsMessage(bytes)) = Envelope::decode(envelope)?.body else {
            return Err(EngineError::Malformed("not an MLS message envelope".into()));
        };
        let (mut ctx, session) = self.session(group, now)?;
        let message = MlsMessage::from_bytes(&bytes)?;
        let mut candidate = session.state.mls.clone();
        let ReceivedMessage::Commit(description) =
            candidate.process_incoming_message_with_time(message, now.mls_time())?
        else {
            return Err(EngineError::Malformed("expected a commit".into()));
        };
        let committer = session
            .state
            .address_at(description.committer)
            .ok_or_else(|| EngineError::InvalidCommit("committer is not a member".into()))?;
        let applied = effects(&session.state, &description, &candidate)
            .map_err(EngineError::InvalidCommit)?;
        let rank = Rank::new(0, true, committer, &bytes);
        let seen = SeenCommit {
            committer,
            bytes,
            applied: applied.changes,
            seen_at: now,
        };
        let valid = ValidCommit {
            candidate,
            description,
            seen,
            rank,
            committed: Vec::new(),
        };
        session.adopt(valid, &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Checks a key package as a steward does when it takes in a join
    /// request: decoded, its ciphersuite and wallet binding checked, then
    /// validated by mls-rs for `group` (signatures, lifetime, capabilities,
    /// the credential through the identity provider).
    pub fn check_key_package(
        &mut self,
        group: &GroupId,
        key_package: &[u8],
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Change::Add { key_package, .. } = Change::add_from_bytes(key_package)? else {
            return Err(EngineError::Malformed("not a key package".into()));
        };
        let (_, session) = self.session(group, now)?;
        match session
            .state
            .mls
            .process_incoming_message_with_time(*key_package, now.mls_time())?
        {
            ReceivedMessage::KeyPackage(_) => Ok(()),
            _ => Err(EngineError::Malformed("not a key package".into())),
        }
    }

    /// An engine that sent a join request for `group` with `key_package`
    /// (made by [`Engine::key_package`] on an engine over the same `store`)
    /// and now waits for its Welcome, which [`Engine::handle_message`] takes.
    pub fn awaiting_welcome(
        wallet: Wallet,
        signer: &MlsSigner,
        config: EngineConfig,
        store: MlsStore,
        group: &GroupId,
        key_package: &[u8],
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let snapshot = EngineSnapshot {
            version: SNAPSHOT_VERSION,
            groups: Vec::new(),
            joins: vec![JoinSnapshot {
                group_id: group.as_str().to_owned(),
                steward_filter: Vec::new(),
                key_package: key_package.to_vec(),
                invitation: None,
            }],
        };
        Self::restore(
            wallet,
            signer,
            config,
            store,
            &snapshot.encode_to_vec(),
            now,
        )
    }
}

/// One member-to-be of [`form_group_at_once`].
pub struct Founder {
    /// Its wallet.
    pub wallet: Wallet,
    /// Its MLS signature key.
    pub signer: MlsSigner,
    /// Where its engine keeps MLS state.
    pub store: MlsStore,
}

impl Founder {
    /// A founder with a new wallet and key and an in-memory store without journal.
    pub fn generate(config: &EngineConfig) -> Result<Self, EngineError> {
        Ok(Self {
            wallet: Wallet::generate(),
            signer: MlsSigner::generate()?,
            store: MlsStore::in_memory(config.epoch_retention),
        })
    }

    /// A new founder's engine, with its in-memory store.
    pub fn generate_engine(config: &EngineConfig) -> Result<Engine, EngineError> {
        Ok(Self::generate(config)?.into_engine(config))
    }

    /// The founder's engine.
    pub fn into_engine(self, config: &EngineConfig) -> Engine {
        Engine::new(self.wallet, &self.signer, config.clone(), self.store)
    }
}

/// Forms `group` with every founder as a member, in one commit and without
/// votes, for benchmarks. The first founder creates the group with `params`
/// and commits adding all the others at once (for multi-steward modes the
/// same commit installs the steward list every member computes with the
/// election rule over all founders, as an election would); each other
/// founder joins from the Welcome through [`Engine::handle_message`]; the
/// listed stewards take up their duties. The engines are returned in
/// founder order, at epoch 1, with their setup transmits discarded and
/// their events (subscriptions included) still to be polled.
pub fn form_group_at_once(
    group: &GroupId,
    params: GroupParams,
    founders: Vec<Founder>,
    config: &EngineConfig,
    now: Timestamp,
) -> Result<Vec<Engine>, EngineError> {
    let mut founders = founders.into_iter();
    let first = founders
        .next()
        .ok_or_else(|| EngineError::InvalidProposal("a group needs a founder".into()))?;
    let mode = params.mode;
    let mut creator = first.into_engine(config);
    creator.create_group(group.clone(), params, now)?;
    let mut joiners = Vec::new();
    let mut key_packages = Vec::new();
    for founder in founders {
        let mut engine = Engine::new(
            founder.wallet.clone(),
            &founder.signer,
            config.clone(),
            founder.store.clone(),
        );
        key_packages.push(engine.key_package(now)?);
        joiners.push(founder);
    }
    let adds = BatchAdds::decode(&key_packages)?;
    let stewards = (mode != StewardMode::Single).then(|| {
        let mut everyone = adds.addresses();
        everyone.push(creator.address());
        let session = &creator.groups[group];
        let current = &session.state.params;
        let list = roles::elect(
            session.state.epoch(),
            0,
            &everyone,
            group.as_bytes(),
            current.sn_min,
            current.sn_max,
        );
        elected_params(current, session.state.epoch(), 0, &list)
    });
    let batch = creator.batch_commit_with(group, adds.0, stewards, now)?;
    let welcome = batch
        .welcomes
        .first()
        .map(|t| t.payload.clone())
        .ok_or_else(|| EngineError::Mls("the batch commit has no Welcome".into()))?;
    creator.adopt_batch(group, batch, now)?;
    let mut engines = vec![creator];
    engines.extend(join_all(
        joiners,
        &key_packages,
        &welcome,
        group,
        config,
        now,
    )?);
    for engine in &mut engines {
        let me = engine.address();
        let session = engine
            .groups
            .get_mut(group)
            .ok_or_else(|| EngineError::UnknownGroup(group.clone()))?;
        let listed = session.state.stewards_in_office().contains(&me);
        match (listed, session.steward.is_some()) {
            (true, false) => session.steward = Some(StewardDuty::new(&engine.suite, now)?),
            (false, true) if mode != StewardMode::Single => session.steward = None,
            _ => {}
        }
        while engine.poll_transmit().is_some() {}
    }
    Ok(engines)
}

/// Each joiner joins from `welcome`, the joiners split over every core.
fn join_all(
    joiners: Vec<Founder>,
    key_packages: &[Vec<u8>],
    welcome: &[u8],
    group: &GroupId,
    config: &EngineConfig,
    now: Timestamp,
) -> Result<Vec<Engine>, EngineError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = joiners.len().div_ceil(threads).max(1);
    let mut work: Vec<Vec<(Founder, &Vec<u8>)>> = Vec::new();
    for (i, pair) in joiners.into_iter().zip(key_packages).enumerate() {
        if i % per_thread == 0 {
            work.push(Vec::new());
        }
        if let Some(chunk) = work.last_mut() {
            chunk.push(pair);
        }
    }
    let join = |(founder, key_package): (Founder, &Vec<u8>)| {
        let mut engine = Engine::awaiting_welcome(
            founder.wallet,
            &founder.signer,
            config.clone(),
            founder.store,
            group,
            key_package,
            now,
        )?;
        engine.handle_message(welcome, now)?;
        Ok(engine)
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = work
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(join).collect::<Vec<_>>()))
            .collect();
        let mut engines = Vec::new();
        for worker in workers {
            let joined = worker
                .join()
                .map_err(|_| EngineError::Mls("a joining thread panicked".into()))?;
            engines.extend(joined);
        }
        engines.into_iter().collect()
    })
}
