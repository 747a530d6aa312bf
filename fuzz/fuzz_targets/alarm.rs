//! Webhook bodies: `alarm::parse_with_json` never panics; an accepted alarm has a
//! non-empty lower-case type and a finite value, and its redacted journal copy parses back
//! to the same alarm. See `cloudamqp_autoscaler_fuzz::check_alarm`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    cloudamqp_autoscaler_fuzz::check_alarm(body);
});
