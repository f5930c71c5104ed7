//! The engines a target feeds: the fixture's members and its pending joiner, restored once
//! and reused from input to input, and restored again when an input changed them.

use std::cell::RefCell;

use demls_engine::{Engine, EngineError, GroupId, GroupView, Timestamp};

use crate::fixture::{self, Fixture, drain};

/// Inputs after which the engines are restored even if nothing visible changed (buffers,
/// duplicate filters and ratchets drift otherwise).
const RESTORE_EVERY: u32 = 1_000;

/// Whether `DEMLS_FUZZ_TRACE` asks to print every delivery's outcome (to see how deep the
/// seeds and a corpus reach: run a target binary on single files).
pub fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("DEMLS_FUZZ_TRACE").is_some())
}

/// Which engine gets an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A member: [`fixture::S`] (the steward), [`fixture::A`], [`fixture::B`] or [`fixture::J`].
    Member(usize),
    /// J before its Welcome.
    Joiner,
}

/// The engines of one fuzzing process.
pub struct World {
    /// The fixture they come from.
    pub fx: &'static Fixture,
    /// S, A, B, J.
    pub members: Vec<Engine>,
    /// J before its Welcome.
    pub joiner: Engine,
    baseline: Vec<Option<GroupView>>,
    runs: u32,
    dirty: bool,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn views(members: &[Engine]) -> Vec<Option<GroupView>> {
    members.iter().map(|e| e.group(&fixture::group())).collect()
}

fn pending(engine: &Engine) -> Vec<GroupId> {
    engine.pending_joins().cloned().collect()
}

impl World {
    fn new() -> Self {
        let fx = fixture::get();
        let members: Vec<Engine> = (0..fx.members.len()).map(|i| fx.member(i)).collect();
        let baseline = views(&members);
        assert!(
            baseline.iter().all(Option::is_some),
            "every fixture member is in the group"
        );
        Self {
            fx,
            joiner: fx.joiner(),
            members,
            baseline,
            runs: 0,
            dirty: false,
        }
    }

    /// Runs `f` on this process's world, restoring engines afterwards if needed.
    pub fn with<R>(f: impl FnOnce(&mut World) -> R) -> R {
        WORLD.with(|cell| {
            let mut slot = cell.borrow_mut();
            let world = slot.get_or_insert_with(World::new);
            let result = f(world);
            world.settle();
            result
        })
    }

    /// The time inputs arrive at: when the fixture's states were taken.
    pub fn now(&self) -> Timestamp {
        self.fx.now()
    }

    /// The group's epoch in the fixture.
    pub fn epoch(&self) -> u64 {
        self.baseline[fixture::S].as_ref().map_or(0, |v| v.epoch.0)
    }

    /// The engine of `node`.
    pub fn engine(&mut self, node: Node) -> &mut Engine {
        match node {
            Node::Member(i) => &mut self.members[i],
            Node::Joiner => &mut self.joiner,
        }
    }

    /// Hands `bytes` to `node` as if received from the network now, and checks the engine's
    /// promise: an input it refuses changes nothing (its group view and its pending joins).
    pub fn deliver(&mut self, node: Node, bytes: &[u8]) -> Result<(), EngineError> {
        let now = self.now();
        let engine = self.engine(node);
        let group = fixture::group();
        let before = engine.group(&group);
        let pending_before = pending(engine);
        let result = engine.handle_message(bytes, now);
        if let Err(error) = &result {
            assert_eq!(
                engine.group(&group),
                before,
                "{node:?} refused an input ({error}) but its group changed"
            );
            assert_eq!(
                pending(engine),
                pending_before,
                "{node:?} refused an input ({error}) but its pending joins changed"
            );
        }
        drain(engine);
        if trace() {
            eprintln!("deliver to {node:?}: {result:?}");
        }
        result
    }

    /// Marks the engines for restoring after this input (for targets that change them on
    /// purpose).
    pub fn taint(&mut self) {
        self.dirty = true;
    }

    /// Restores every engine if an input changed one (an accepted message is not a bug, but
    /// the next input should meet the fixture's state), or every [`RESTORE_EVERY`] inputs.
    fn settle(&mut self) {
        self.runs += 1;
        let changed = self.dirty
            || views(&self.members) != self.baseline
            || self.joiner.groups().next().is_some()
            || self.joiner.pending_joins().next().is_none();
        if changed || self.runs >= RESTORE_EVERY {
            let fx = self.fx;
            self.members = (0..fx.members.len()).map(|i| fx.member(i)).collect();
            self.joiner = fx.joiner();
            self.runs = 0;
            self.dirty = false;
        }
    }
}
