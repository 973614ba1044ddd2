//! Bad input, table-driven, through the API server with kubectl as a user
//! would: malformed and hostile profiles are either refused by the API
//! server with a message naming the field (and the offline validator
//! agrees: same verdict, same field), or accepted and reported in status
//! with a clear reason. None stops the operator, none disturbs another
//! profile.
//!
//! The table's rows are the fixtures of `tests/fixtures/invalid/`
//! (`fixtures.rs`) and hostile profiles, one file per part of the profile:
//! roles off the allow list and templates expanding to names Kubernetes
//! refuses or to `system:` identities (`role_bindings.rs`), crons that never
//! fire or do not parse (`backup.rs`), values the target objects' own
//! validation refuses (`network_policy.rs`, `limits_and_quota.rs`,
//! `pod_security.rs`), a spec or selector of the wrong shape (`spec.rs`,
//! `selector.rs`), names at their maximum lengths and lists at their
//! maximum sizes (`sizes.rs`). `refused_or_reported.rs` runs every row in
//! one test; `selector.rs` also shows that `selector: {}` never touches a
//! system namespace.
//!
//! Each case gets its own namespace labelled with a random `e2e-case`, and
//! its profile selects only that label (fixtures that are about the selector
//! itself keep theirs: those select nothing anywhere).

use std::time::Duration;

use table::{Accepted, Refused};

mod backup;
mod checks;
mod fixtures;
mod limits_and_quota;
mod network_policy;
mod pod_security;
mod refused_or_reported;
mod role_bindings;
mod selector;
mod sizes;
mod spec;
mod table;

/// Time for every case's status to say what it should.
const SETTLE: Duration = Duration::from_secs(90);

/// Hostile profiles the API server accepts and the operator must handle,
/// from every part of the profile.
fn hostile_accepted() -> Vec<Accepted> {
    [
        role_bindings::accepted_cases(),
        backup::accepted_cases(),
        limits_and_quota::accepted_cases(),
        pod_security::accepted_cases(),
        network_policy::accepted_cases(),
        sizes::accepted_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Hostile profiles the API server must refuse, with the field it names,
/// from every part of the profile.
fn hostile_refused() -> Vec<Refused> {
    [
        network_policy::refused_cases(),
        limits_and_quota::refused_cases(),
        spec::refused_cases(),
        selector::refused_cases(),
        role_bindings::refused_cases(),
        backup::refused_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
