//! Every scenario, peer and reference by name, in one place: the benches
//! label their results with these names, and `bench-report` reads the
//! results back by them and titles its tables and charts from them. The
//! lists run in the report's order. A new scenario of `benches/locks.rs`
//! needs only its group there and its entry here: the report's table,
//! chart panel and targets follow from [`SCENARIOS`].

/// A criterion group of `benches/locks.rs`.
pub struct Scenario {
    /// The group's id: the criterion folder and the results' key.
    pub id: &'static str,
    /// The column and panel title.
    pub title: &'static str,
    /// What it runs, beside the title in the chart and the results.
    pub about: &'static str,
    /// What the targets ask of lock-manager here.
    pub goal: Goal,
}

/// The bars a scenario sets lock-manager, judged in RESULTS.md's targets
/// table on its median time per operation; one with none is listed there
/// as measured only.
pub struct Goal {
    /// At least this many times faster than the fastest peer.
    pub faster: Option<f64>,
    /// At least this many times faster than the fastest FIFO peer.
    pub faster_fifo: Option<f64>,
    /// At most this many times the floor's time.
    pub floor: Option<f64>,
}

/// No bar: measured only.
pub const NO_GOAL: Goal = Goal {
    faster: None,
    faster_fifo: None,
    floor: None,
};
/// What the single-task scenarios ask.
const SINGLE_TASK_GOAL: Goal = Goal {
    faster: Some(2.0),
    floor: Some(1.3),
    ..NO_GOAL
};

pub const UNCONTENDED: Scenario = Scenario {
    id: "uncontended",
    title: "1. uncontended",
    about: "one task, one key",
    goal: SINGLE_TASK_GOAL,
};
pub const CHURN_U64: Scenario = Scenario {
    id: "churn-u64",
    title: "2. churn u64",
    about: "a new key every cycle",
    goal: SINGLE_TASK_GOAL,
};
pub const CHURN_STRING: Scenario = Scenario {
    id: "churn-string",
    title: "2. churn String",
    about: "a new 29-byte key every cycle",
    goal: SINGLE_TASK_GOAL,
};
pub const CONTENDED: Scenario = Scenario {
    id: "contended",
    title: "3. contended",
    about: "64 tasks, one key",
    goal: Goal {
        faster_fifo: Some(1.5),
        ..NO_GOAL
    },
};
pub const SPREAD: Scenario = Scenario {
    id: "spread",
    title: "4. spread",
    about: "64 tasks, keys over 1,024",
    goal: Goal {
        faster: Some(1.5),
        ..NO_GOAL
    },
};
pub const PAIRS: Scenario = Scenario {
    id: "pairs",
    title: "pairs",
    about: "64 tasks, 2 keys per operation",
    goal: NO_GOAL,
};
pub const PAIRS_16: Scenario = Scenario {
    id: "pairs-16",
    title: "pairs, 16 keys",
    about: "64 tasks, 2 of 16 keys per operation",
    goal: NO_GOAL,
};
pub const HOT: Scenario = Scenario {
    id: "hot",
    title: "5. hot",
    about: "64 tasks, Zipf keys over 10,000",
    goal: Goal {
        faster: Some(1.5),
        ..NO_GOAL
    },
};

/// The scenarios in the order of the results table's columns.
pub const SCENARIOS: &[Scenario] = &[
    UNCONTENDED,
    CHURN_U64,
    CHURN_STRING,
    CONTENDED,
    SPREAD,
    PAIRS,
    PAIRS_16,
    HOT,
];

/// Something the benches time: a keyed peer, this crate in another mode,
/// the floor, or a reference mutex.
pub struct Lock {
    /// The bench id and the results' key.
    pub name: &'static str,
    /// Whether waiters on one key are served strictly first come, first
    /// served (what the "fastest FIFO peer" targets compare against).
    pub fifo: bool,
    /// What it is, for the results' list of peers.
    pub about: &'static str,
}

pub const OURS: Lock = Lock {
    name: "lock-manager",
    fifo: true,
    about: "this crate",
};
/// Only the pairs scenarios run it, and no "fastest peer" counts it.
pub const OURS_ONE_BY_ONE: Lock = Lock {
    name: "lock-manager, 1 by 1",
    fifo: true,
    about: "this crate, a pair's keys with two `acquire`s, smaller key first (pairs only)",
};
/// Only the scaling bench runs it.
pub const OURS_ONE_SHARD: Lock = Lock {
    name: "lock-manager, 1 shard",
    fifo: true,
    about: "this crate with its state in a single shard (scaling only)",
};
pub const TOKIO_RECIPE: Lock = Lock {
    name: "tokio-recipe",
    fifo: true,
    about: "map of `Arc<tokio::sync::Mutex<()>>`, entry removed on last drop (FIFO)",
};
pub const ASYNC_LOCK_RECIPE: Lock = Lock {
    name: "async-lock-recipe",
    fifo: false,
    about: "same with `async_lock::Mutex` (not strictly FIFO)",
};
pub const FUTURES_LOCK_RECIPE: Lock = Lock {
    name: "futures-lock-recipe",
    fifo: false,
    about: "same with `futures::lock::Mutex` (no FIFO, barging)",
};
pub const LOCKABLE: Lock = Lock {
    name: "lockable",
    fifo: true,
    about: "`lockable::LockableHashMap<K, ()>` 0.2, `async_lock(key, no_limit)` (FIFO)",
};
pub const KEYED_LOCK: Lock = Lock {
    name: "keyed-lock",
    fifo: true,
    about: "`keyed_lock::async::KeyedLock` 0.2 (FIFO)",
};
pub const KEY_MUTEX: Lock = Lock {
    name: "key-mutex",
    fifo: true,
    about: "`key_mutex::tokio::KeyMutex<K, ()>` 0.1, DashMap-based (FIFO)",
};
pub const FLOOR: Lock = Lock {
    name: "floor",
    fifo: false,
    about: "`parking_lot::Mutex<HashMap<K, ()>>` insert/remove: not a lock",
};
/// Only the scaling bench runs it.
pub const SHARDED_FLOOR: Lock = Lock {
    name: "sharded floor",
    fifo: false,
    about: "the floor split into as many shards as lock-manager's (scaling only)",
};

/// Every keyed peer (this crate, the peers, the floor) in the order of
/// `for_each_peer!` and of the results' rows.
pub const PEERS: [Lock; 8] = [
    OURS,
    TOKIO_RECIPE,
    ASYNC_LOCK_RECIPE,
    FUTURES_LOCK_RECIPE,
    LOCKABLE,
    KEYED_LOCK,
    KEY_MUTEX,
    FLOOR,
];

// References, not peers: one mutex every task locks, the key ignored. The
// names start with `ref-` so that no table takes them for peers.
pub const REF_TOKIO_MUTEX: Lock = Lock {
    name: "ref-tokio-mutex",
    fifo: true,
    about: "one `tokio::sync::Mutex<()>` (FIFO)",
};
pub const REF_ASYNC_LOCK_MUTEX: Lock = Lock {
    name: "ref-async-lock-mutex",
    fifo: false,
    about: "one `async_lock::Mutex<()>` (not strictly FIFO)",
};
pub const REF_FUTURES_MUTEX: Lock = Lock {
    name: "ref-futures-mutex",
    fifo: false,
    about: "one `futures::lock::Mutex<()>` (barging)",
};

/// The references in the order the benches run them.
pub const REFERENCES: [Lock; 3] = [REF_TOKIO_MUTEX, REF_ASYNC_LOCK_MUTEX, REF_FUTURES_MUTEX];

/// Building the String key alone (churn String and the memory bench).
pub const KEY_ONLY: &str = "key-only";

/// The `kind` column of the fairness bench's results: a keyed peer or a
/// reference.
pub const KIND_PEER: &str = "peer";
pub const KIND_REFERENCE: &str = "reference";
