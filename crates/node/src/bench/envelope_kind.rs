//! What kind of envelope a published payload is, read from its clear parts only (the
//! envelope's body and an MLS PrivateMessage's content type), for traffic breakdowns.

use std::collections::BTreeMap;

use demls_engine::wire::{Envelope, envelope};
use prost::Message;
use serde_json::{Value, json};

/// What a published envelope is, for the traffic breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Announcement,
    JoinRequest,
    Welcome,
    Commit,
    /// MLS application messages: proposals, votes, chat and chat syncs (one content type
    /// on the wire: what they are is encrypted).
    Application,
    Sync,
    Other,
}

impl Kind {
    pub(super) fn of(payload: &[u8]) -> Self {
        match Envelope::decode(payload).ok().and_then(|e| e.body) {
            Some(envelope::Body::Announcement(_)) => Self::Announcement,
            Some(envelope::Body::JoinRequest(_)) => Self::JoinRequest,
            Some(envelope::Body::Welcome(_)) => Self::Welcome,
            Some(envelope::Body::SyncRequest(_)) => Self::Sync,
            Some(envelope::Body::MlsMessage(bytes)) => match private_content_type(&bytes) {
                Some(3) => Self::Commit,
                Some(1) => Self::Application,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Announcement => "announcement",
            Self::JoinRequest => "join_request",
            Self::Welcome => "welcome",
            Self::Commit => "commit",
            Self::Application => "proposal_or_vote",
            Self::Sync => "sync_request",
            Self::Other => "other",
        }
    }
}

/// The content type of an MLS PrivateMessage (1 application, 2 proposal, 3
/// commit): it travels in the clear after the version, the wire format, the
/// group id and the epoch (RFC 9420, section 6.3).
fn private_content_type(message: &[u8]) -> Option<u8> {
    const PRIVATE_MESSAGE: [u8; 2] = [0, 2];
    if message.get(2..4)? != PRIVATE_MESSAGE {
        return None;
    }
    let rest = message.get(4..)?;
    let first = *rest.first()?;
    let (prefix, len) = match first >> 6 {
        0 => (1, usize::from(first & 0x3f)),
        1 => (
            2,
            usize::from(u16::from_be_bytes([first & 0x3f, *rest.get(1)?])),
        ),
        2 => {
            let b = rest.get(..4)?;
            (
                4,
                u32::from_be_bytes([b[0] & 0x3f, b[1], b[2], b[3]]) as usize,
            )
        }
        _ => return None,
    };
    rest.get(prefix + len + 8).copied()
}

/// Messages and bytes published, per kind.
#[derive(Debug, Default)]
pub(super) struct KindCounts(BTreeMap<Kind, (u64, u64)>);

impl KindCounts {
    /// Counts one published payload; returns its kind.
    pub(super) fn add(&mut self, payload: &[u8]) -> Kind {
        let kind = Kind::of(payload);
        let entry = self.0.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += payload.len() as u64;
        kind
    }

    /// `{kind: {messages, bytes}}`.
    pub(super) fn report(&self) -> Value {
        self.0
            .iter()
            .map(|(kind, (messages, bytes))| {
                (
                    kind.name().to_owned(),
                    json!({ "messages": messages, "bytes": bytes }),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}
