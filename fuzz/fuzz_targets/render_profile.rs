//! Bytes choose a profile (valid and hostile values, field by field) and a
//! namespace: validation never panics, and an accepted profile renders,
//! without panicking, only objects the API server accepts.
#![no_main]

#[path = "../../tests/support/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::check_profile_bytes(data);
});
