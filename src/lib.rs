//! baseliner: reconcile namespaces to a declared production baseline.
//!
//! - [`api`]: the `ProductionProfile` types, the source of the CRD.

pub mod api;
