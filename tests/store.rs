//! The durable store on both backends, through the same `Store` API: SQLite in a
//! temporary directory and PostgreSQL in a database of each test's own. Schema, recovery
//! after a restart or a crash, group commit, failures of the disk, and the rules of a
//! change's phases.

mod store {
    #[macro_use]
    pub mod support;

    mod changes;
    mod crash;
    mod failure;
    mod journal;
    mod open;
}
