//! The durable store against real files in a temporary directory: schema, recovery after
//! a restart or a crash, group commit, failures of the disk, and the rules of a change's
//! phases.

mod store {
    pub mod support;

    mod changes;
    mod crash;
    mod failure;
    mod journal;
    mod open;
}
