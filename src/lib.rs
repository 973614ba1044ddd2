//! baseliner: reconcile namespaces to a declared production baseline.
//!
//! - [`api`]: the `ProductionProfile` types, the source of the CRD.
//! - [`velero`]: the Velero Schedule type baseliner writes.

pub mod api;
pub mod velero;
