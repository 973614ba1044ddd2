//! baseliner: reconcile namespaces to a declared production baseline.
//!
//! - [`api`]: the `ProductionProfile` types, the source of the CRD.
//! - [`controller`]: watches, the per-namespace reconcile, status and Events.
//! - [`cli`]: the `baseliner` command line (`crd`, `validate`, `render`).
//! - [`run`]: `baseliner run`, the operator process's wiring, with
//!   [`lease`] (leader election), [`http`] (`/metrics`, `/healthz`,
//!   `/readyz`), [`health`] (cache readiness) and [`metrics`].
//! - [`selection`]: which profile owns which namespace.
//! - [`render`]: the pure step from a profile and a namespace to the desired
//!   objects, with [`template`] for subject names and [`velero`] for the
//!   Velero Schedule type.
//! - [`validate`]: offline validation of profile manifests, the CRD's
//!   schema and CEL rules plus checks that need no cluster.
//! - [`required_rights`]: the rights a profile implies for its author (the
//!   rule the admission policy enforces), and [`access_review`], which asks
//!   a cluster about them for `validate --as-user`.

pub mod access_review;
pub mod api;
pub mod cli;
pub mod controller;
pub mod health;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod render;
pub mod required_rights;
pub mod run;
pub mod selection;
pub mod template;
pub mod validate;
pub mod velero;
