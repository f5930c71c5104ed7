//! What a group session needs from its engine during one call.

use std::collections::VecDeque;

use demls_identity::Wallet;
use prost::Message;

use crate::mls::VerifyingSuite;
use crate::wire::{Envelope, WIRE_VERSION, envelope};
use crate::{
    EngineConfig, EngineError, Event, GroupId, Request, Timestamp, Topic, TopicKind, Transmit,
};

/// Messages and events produced by the engine, waiting for the shell.
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) requests: VecDeque<Request>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
}

/// The engine's shared parts, lent to a group session for one call.
pub(crate) struct Ctx<'a> {
    pub(crate) wallet: &'a Wallet,
    pub(crate) config: &'a EngineConfig,
    /// The engine's ciphersuite provider: every random choice comes from it.
    pub(crate) suite: &'a VerifyingSuite,
    pub(crate) now: Timestamp,
    pub(crate) out: &'a mut Outbox,
}

impl Ctx<'_> {
    /// `len` random bytes from the engine's entropy.
    pub(crate) fn random(&self, len: usize) -> Result<Vec<u8>, EngineError> {
        use mls_rs::CipherSuiteProvider;
        self.suite
            .random_bytes_vec(len)
            .map_err(|e| EngineError::Crypto(format!("random: {e:?}")))
    }

    /// Asks the shell for something.
    pub(crate) fn request(&mut self, request: Request) {
        self.out.requests.push_back(request);
    }

    /// Records an event.
    pub(crate) fn emit(&mut self, event: Event) {
        self.out.events.push_back(event);
    }

    /// Queues an envelope for a group's topic.
    pub(crate) fn send(&mut self, group: &GroupId, kind: TopicKind, body: envelope::Body) {
        let envelope = Envelope {
            version: WIRE_VERSION,
            group_id: group.as_str().to_owned(),
            body: Some(body),
        };
        self.out.transmits.push_back(Transmit {
            topic: Topic {
                group: group.clone(),
                kind,
            },
            payload: envelope.encode_to_vec(),
        });
    }
}
