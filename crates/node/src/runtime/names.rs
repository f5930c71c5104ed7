//! What people call their groups, apart from what the network sees.
//!
//! A group's identifier is on the wire (its content topics, every envelope), so an
//! invite-only group gets a random one: an observer of the network learns nothing from it.
//! Its name (`lab`) stays on this node, in the invitations its members hand out, and in the
//! nodes of those who join with one. An open group, and a gated one (whoever passes the gate
//! may join), is public by choice: its identifier is its name, so that anyone can ask to join
//! it by name. Every command takes a name or an identifier.

use std::collections::BTreeMap;

use demls_engine::GroupId;
use demls_storage::{StorageError, Store};

use super::CommandError;

/// The setting that holds the names, as a JSON object from identifier to name.
const NAMES: &str = "group_names";
/// Random bytes in a private group's identifier (hex-encoded after a `g`).
const ID_BYTES: usize = 12;

/// The names of this node's groups, by identifier.
#[derive(Debug, Default)]
pub struct GroupNames(BTreeMap<GroupId, String>);

impl GroupNames {
    /// The names kept in `store` (none if the setting is damaged: identifiers still work).
    pub fn load(store: &Store) -> Result<GroupNames, StorageError> {
        let kept: BTreeMap<String, String> = store
            .setting(NAMES)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        Ok(GroupNames(
            kept.into_iter()
                .filter_map(|(id, name)| Some((GroupId::new(&id).ok()?, name)))
                .collect(),
        ))
    }

    fn save(&self, store: &mut Store) -> Result<(), StorageError> {
        let kept: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(id, name)| (id.as_str(), name.as_str()))
            .collect();
        let json = serde_json::to_string(&kept).unwrap_or_default();
        store.put_setting(NAMES, &json)
    }

    /// What people call `group`: its name, or its identifier if it has none here.
    pub fn name_of(&self, group: &GroupId) -> String {
        self.0
            .get(group)
            .cloned()
            .unwrap_or_else(|| group.to_string())
    }

    /// The group `text` names: a name of this node's groups, or else an identifier.
    pub fn resolve(&self, text: &str) -> Result<GroupId, CommandError> {
        if let Some((id, _)) = self.0.iter().find(|(_, name)| *name == text) {
            return Ok(id.clone());
        }
        super::group_id(text)
    }

    /// Whether `name` is taken here, as a name or as an identifier.
    pub fn taken(&self, name: &str, ids: impl IntoIterator<Item = GroupId>) -> bool {
        self.0.values().any(|n| n == name) || ids.into_iter().any(|id| id.as_str() == name)
    }

    /// A fresh random identifier for a private group.
    pub fn fresh_id() -> Result<GroupId, CommandError> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| CommandError::Invalid(format!("random source: {e}")))?;
        super::group_id(&format!("g{}", hex::encode(bytes)))
    }

    /// Names `group`, and keeps the name in `store`. A name another group has here already
    /// gets the start of the identifier added, so that names stay unique.
    pub fn name(
        &mut self,
        store: &mut Store,
        group: &GroupId,
        name: &str,
    ) -> Result<String, StorageError> {
        let clash = self.0.iter().any(|(id, n)| n == name && id != group);
        let name = if clash {
            format!(
                "{name} ({})",
                &group.as_str()[..group.as_str().len().min(8)]
            )
        } else {
            name.to_owned()
        };
        if self.0.get(group) != Some(&name) {
            self.0.insert(group.clone(), name.clone());
            self.save(store)?;
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_fresh_ids_are_valid_and_distinct() {
        let a = GroupNames::fresh_id().unwrap();
        let b = GroupNames::fresh_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 1 + 2 * ID_BYTES);
        let mut names = GroupNames::default();
        names.0.insert(a.clone(), "lab".into());
        assert_eq!(names.resolve("lab").unwrap(), a);
        assert_eq!(names.resolve(a.as_str()).unwrap(), a);
        assert_eq!(names.resolve("open-group").unwrap().as_str(), "open-group");
        assert_eq!(names.name_of(&a), "lab");
        assert_eq!(names.name_of(&b), b.as_str());
        assert!(names.taken("lab", []));
        assert!(names.taken(b.as_str(), [b.clone()]));
        assert!(!names.taken("other", [b]));
    }
}
