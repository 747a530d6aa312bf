//! Rules files: `rules::parse` never panics; a refused file has errors that all point
//! inside the text; a loaded one decides without panics and never "changes" an instance
//! to the plan it is on. See `cloudamqp_autoscaler_fuzz::check_rules`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // A rules file is read as UTF-8 (load_file refuses anything else); a lossy decoding
    // keeps every mutated input useful instead of discarding the non-UTF-8 ones.
    let text = String::from_utf8_lossy(bytes);
    cloudamqp_autoscaler_fuzz::check_rules(&text);
});
