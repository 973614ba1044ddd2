//! Property tests of validation and rendering (bounded, so `cargo test`
//! stays quick; `make fuzz` runs the same properties for longer, with
//! cargo-fuzz): whatever the input, validation never panics, and a profile it
//! accepts renders, without panicking, only objects the API server accepts.
//!
//! `PROPTEST_CASES` raises the number of cases.

#[path = "support/fuzzing.rs"]
mod fuzzing;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// YAML-looking text: fragments of profiles, separators and junk.
fn yaml_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("apiVersion: baseliner.dev/v1alpha1\n".to_owned()),
        Just("kind: ProductionProfile\n".to_owned()),
        Just("metadata: {name: shop}\n".to_owned()),
        Just("spec:\n  namespaces: {selector: {}}\n".to_owned()),
        Just("  backup: {schedule: '0 0 31 2 *'}\n".to_owned()),
        Just("  resourceQuota: {hard: {pods: .}}\n".to_owned()),
        Just("---\n".to_owned()),
        Just("- [a, {b: *c}]\n".to_owned()),
        Just("&a [*a]\n".to_owned()),
        Just("? complex\n: key\n".to_owned()),
        Just("\u{feff}".to_owned()),
        "[ -~\\t\\n]{0,40}",
        any::<String>(),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn validating_any_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::check_yaml_bytes(&data);
    }

    #[test]
    fn validating_yaml_like_text_never_panics(text in yaml_text()) {
        fuzzing::check_yaml_bytes(text.as_bytes());
    }

    #[test]
    fn accepted_profiles_render_valid_objects(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::check_profile_bytes(&data);
    }
}

/// The generator must get a fair share of profiles past validation, or the
/// rendering property checks little.
#[test]
fn generated_profiles_often_pass_validation() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(any::<u8>(), 0..2048);
    let total = 200;
    let valid = (0..total)
        .filter(|_| {
            let data = strategy.new_tree(&mut runner).expect("a value").current();
            fuzzing::check_profile_bytes(&data)
        })
        .count();
    assert!(
        valid * 10 >= total,
        "only {valid} of {total} generated profiles were valid"
    );
}
