//! The files generated from this crate's types: the web client's TypeScript types, and the
//! check that a committed generated file is current.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ts_rs::{Config, TS, TypeVisitor};

use crate::{
    Admission, Ballot, DisplayName, ErrorBody, GroupDetail, GroupSummary, Health, Invitation,
    JoinProgress, JoinRequest, JoinTicket, Message, NewGroup, NewInvitation, NewMessage,
    NewProposal, NodeEvent, NodeInfo, PendingRequest, Proposal, RequestDecision, Roster, SignIn,
    SignedIn, StatusBody, VotePolicyChange,
};

/// Collects the declarations of the visited types and, recursively, of the types they use.
#[derive(Default)]
struct Declarations {
    seen: BTreeSet<TypeId>,
    /// By name, so that the file's order does not depend on the visit's.
    found: BTreeMap<String, String>,
    config: Config,
}

impl TypeVisitor for Declarations {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        // Primitives and std types have no declaration of their own.
        if T::output_path().is_none() || !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        let docs = T::docs().unwrap_or_default();
        let decl = T::decl(&self.config);
        self.found
            .insert(T::ident(&self.config), format!("{docs}export {decl}\n"));
        T::visit_dependencies(self);
    }
}

/// `web/src/api-types.ts`: every type of the API, in TypeScript, sorted by name.
pub fn typescript() -> String {
    let mut all = Declarations {
        config: Config::new().with_large_int("number"),
        ..Declarations::default()
    };
    // The bodies of requests, responses and events; the types they use follow.
    all.visit::<NodeInfo>();
    all.visit::<VotePolicyChange>();
    all.visit::<SignIn>();
    all.visit::<SignedIn>();
    all.visit::<StatusBody>();
    all.visit::<ErrorBody>();
    all.visit::<GroupSummary>();
    all.visit::<GroupDetail>();
    all.visit::<Health>();
    all.visit::<Roster>();
    all.visit::<JoinProgress>();
    all.visit::<JoinRequest>();
    all.visit::<NewGroup>();
    all.visit::<NewInvitation>();
    all.visit::<Invitation>();
    all.visit::<JoinTicket>();
    all.visit::<PendingRequest>();
    all.visit::<RequestDecision>();
    all.visit::<Admission>();
    all.visit::<Proposal>();
    all.visit::<NewProposal>();
    all.visit::<Ballot>();
    all.visit::<Message>();
    all.visit::<NewMessage>();
    all.visit::<DisplayName>();
    all.visit::<NodeEvent>();
    let mut out = String::from(
        "// Generated from the node's API types (crates/api): do not edit. See docs/web.md.\n",
    );
    for decl in all.found.values() {
        out.push('\n');
        out.push_str(decl);
    }
    out
}

/// The environment variable that makes [`check_generated`] write the files.
pub const REGENERATE: &str = "DEMLS_REGENERATE";

/// Compares `generated` with the committed file at `path` (relative to the repository
/// root); with `DEMLS_REGENERATE=1` in the environment, writes the file instead. The error
/// says which file is stale and how to regenerate it.
pub fn check_generated(path: &str, generated: &str) -> Result<(), String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    if std::env::var_os(REGENERATE).is_some_and(|v| v == "1") {
        return std::fs::write(&file, generated).map_err(|e| format!("{path}: {e}"));
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed == generated {
        return Ok(());
    }
    Err(format!(
        "{path} is stale: it is generated from the API's types (crates/api) and the node's \
         routes. Regenerate it with `{REGENERATE}=1 cargo test -p demls-api -p demls \
         --lib --bins generated` and commit it"
    ))
}
