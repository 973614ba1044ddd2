//! Reliability under faults: the control plane or the operator fails
//! midway, and afterwards nothing is lost, nothing is duplicated and nothing
//! is left behind. Every test ends by listing what the API server
//! holds and comparing it with what the profiles ask for, and prints one
//! summary line (time to recover, objects checked), also appended to
//! `target/faults-summary.txt`.
//!
//! The faults are real: kube-apiserver killed and started again, etcd
//! restarted after the apiserver compacted its history, an elected leader
//! killed with SIGKILL, namespaces and profiles deleted mid-reconcile, and
//! API Priority and Fairness rejecting the operator's requests with 429.
//!
//! They disturb the whole plane, so they run on a plane of their own and
//! one at a time. `make test-faults` (`hack/test-faults.sh`) starts that
//! plane in `target/faults-cluster` (with a 10 s etcd compaction interval),
//! runs this binary with `--ignored` and stops the plane. The tests are
//! `#[ignore]`d so that `cargo test` of the whole suite on the shared plane
//! leaves them out, and they refuse to run unless `BASELINER_CLUSTER_DIR`
//! names the plane the harness is connected to.

mod apiserver;
mod author_rights;
mod deletion;
mod etcd;
mod leader;
mod support;
mod throttling;
