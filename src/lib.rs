//! baseliner: reconcile namespaces to a declared production baseline.
//!
//! - [`api`]: the `ProductionProfile` types, the source of the CRD.
//! - [`render`]: the pure step from a profile and a namespace to the desired
//!   objects, with [`template`] for subject names and [`velero`] for the
//!   Velero Schedule type.

pub mod api;
pub mod render;
pub mod template;
pub mod velero;
