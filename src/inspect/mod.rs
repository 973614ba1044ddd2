//! Read-only views of a live cluster, for `baseliner plan`, `why` and
//! `report`: the cluster read once with paginated LISTs ([`snapshot`]),
//! each namespace's outcome decided by the controller's own plan
//! ([`outcome`]), and from it what a change would do ([`preview`]) and
//! whether each control is in place ([`evidence`]). Nothing here writes.

pub mod evidence;
pub mod outcome;
pub mod preview;
pub mod snapshot;
