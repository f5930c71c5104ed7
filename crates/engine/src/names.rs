//! Display names: each member may name itself in a group. A name travels as an MLS
//! application message, so whose name it is comes from the MLS sender, never from the
//! message: no member can name another.

use crate::snapshot::NameRecord;
use std::collections::BTreeMap;

use demls_identity::Address;

use crate::context::Ctx;
use crate::session::GroupSession;
use crate::wire::{DisplayName, app_message};
use crate::{EngineError, Event};

/// The longest display name, in bytes of UTF-8.
pub const MAX_DISPLAY_NAME_BYTES: usize = 64;

/// Checks a display name: at most [`MAX_DISPLAY_NAME_BYTES`] bytes, no control characters.
pub(crate) fn check(name: &str) -> Result<(), EngineError> {
    if name.len() > MAX_DISPLAY_NAME_BYTES {
        return Err(EngineError::InvalidDisplayName(format!(
            "{} bytes, at most {MAX_DISPLAY_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(EngineError::InvalidDisplayName("control characters".into()));
    }
    Ok(())
}

/// A member's latest name and its version (application messages arrive in any order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    /// The sender's version: its clock in ms, raised past its last version.
    pub(crate) version: u64,
    /// The name; empty: the member removed its name.
    pub(crate) name: String,
}

/// The display names of a group's members.
#[derive(Default)]
pub(crate) struct Names {
    /// Each member's latest name, this member included.
    by_member: BTreeMap<Address, Named>,
}

impl Names {
    /// Records `member`'s name if newer than the one known; returns whether the name shown
    /// for it changed.
    pub(crate) fn set(&mut self, member: Address, named: Named) -> bool {
        let known = self.by_member.get(&member);
        if known.is_some_and(|known| known.version >= named.version) {
            return false;
        }
        let shown_before = known.map_or("", |known| known.name.as_str());
        let changed = shown_before != named.name;
        self.by_member.insert(member, named);
        changed
    }

    /// The names, to keep across a restart.
    pub(crate) fn save(&self) -> Vec<NameRecord> {
        self.by_member
            .iter()
            .map(|(member, named)| NameRecord {
                member: member.as_bytes().to_vec(),
                name: named.name.clone(),
                version: named.version,
            })
            .collect()
    }

    /// Takes back the names [`Self::save`] wrote, of members `is_member` says are.
    pub(crate) fn restore(records: &[NameRecord], is_member: impl Fn(&Address) -> bool) -> Self {
        let mut names = Self::default();
        for record in records {
            if let Some(member) = Address::from_slice(&record.member).filter(|m| is_member(m)) {
                let named = Named {
                    version: record.version,
                    name: record.name.clone(),
                };
                names.set(member, named);
            }
        }
        names
    }

    /// The members' names, without the removed ones.
    pub(crate) fn view(&self) -> BTreeMap<Address, String> {
        self.by_member
            .iter()
            .filter(|(_, named)| !named.name.is_empty())
            .map(|(member, named)| (*member, named.name.clone()))
            .collect()
    }
}

impl GroupSession {
    /// Sets this member's display name and tells the group.
    pub(crate) fn set_display_name(
        &mut self,
        name: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        check(name)?;
        let last = self.names.by_member.get(&self.me).map_or(0, |n| n.version);
        let named = Named {
            version: ctx.now.0.max(last.saturating_add(1)),
            name: name.to_owned(),
        };
        self.send_name(&named, ctx)?;
        self.record_name(self.me, named, ctx);
        Ok(())
    }

    /// Records a member's name and tells the shell if the name shown for it changed.
    fn record_name(&mut self, member: Address, named: Named, ctx: &mut Ctx<'_>) {
        let name = (!named.name.is_empty()).then(|| named.name.clone());
        if self.names.set(member, named) {
            ctx.emit(Event::NameChanged {
                group: self.id.clone(),
                member,
                name,
            });
        }
    }

    fn send_name(&mut self, named: &Named, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let message = DisplayName {
            name: named.name.clone(),
            version: named.version,
        };
        self.send_app(app_message::Body::Name(message), ctx)?;
        Ok(())
    }

    /// A member's name, received from it (`sender` is the MLS sender).
    pub(crate) fn receive_name(
        &mut self,
        sender: Address,
        message: DisplayName,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        check(&message.name)?;
        // A late message of an earlier epoch may come from a member since removed.
        if self.state.is_member(&sender) {
            let named = Named {
                version: message.version,
                name: message.name,
            };
            self.record_name(sender, named, ctx);
        }
        Ok(())
    }

    /// After a commit: forgets the names of members that left and, if the commit added
    /// members, sends this member's name again so that they learn it. Once per such epoch
    /// and only by members that set a name: a joiner cannot read messages from before it
    /// joined.
    pub(crate) fn names_after_commit(&mut self, added: bool, ctx: &mut Ctx<'_>) {
        let state = &self.state;
        self.names
            .by_member
            .retain(|member, _| state.is_member(member));
        let Some(named) = self.names.by_member.get(&self.me).cloned() else {
            return;
        };
        if added
            && !named.name.is_empty()
            && let Err(error) = self.send_name(&named, ctx)
        {
            tracing::warn!(group = %self.id, %error, "display name not sent again");
        }
    }
}
