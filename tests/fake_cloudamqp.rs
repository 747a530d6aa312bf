//! Black-box tests of the fake CloudAMQP over HTTP: a fake on `127.0.0.1:0`, a reqwest
//! client, and assertions on status codes, headers, bodies and the fake's request log.
//!
//! The fake stands in for production in every other test, so these tests pin it to what
//! `cloudamqp-api.md` says production does.

mod fake_cloudamqp {
    pub mod support;

    mod alarms;
    mod auth;
    mod disk;
    mod endpoints;
    mod faults;
    mod management;
    mod plan_change;
    mod timeline;
}
