//! Arbitrary bytes as a YAML stream: `validate_documents` never panics.
#![no_main]

#[path = "../../tests/support/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::check_yaml_bytes(data);
});
