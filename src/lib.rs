//! baseliner: reconcile namespaces to a declared production baseline.
//!
//! The vocabulary, which everything else points down at:
//! - [`api`]: the `ProductionProfile` types, the source of the CRD, and the
//!   label and annotation keys baseliner writes.
//! - [`kind`]: the kinds of object baseliner manages; [`reason`]: the
//!   reasons it gives in status and Events.
//! - [`namespace`]: the view of a namespace that rendering and selection
//!   take; [`syntax`]: Kubernetes syntax (names, labels, selectors, CIDRs,
//!   quantities, durations); [`cron`]: Velero's cron; [`template`]: subject
//!   name templates; [`velero`]: the Velero Schedule type.
//!
//! The pure steps:
//! - [`selection`]: which profile owns which namespace.
//! - [`render`]: from a profile and a namespace to the desired objects.
//! - [`validate`]: offline validation of profile manifests, the CRD's
//!   schema and CEL rules plus checks that need no cluster.
//! - [`required_rights`]: the rights a profile implies for its author (the
//!   rule the admission policy enforces), and [`access_review`], which asks
//!   a cluster about them for `validate --as-user`.
//!
//! The operator and its command line:
//! - [`controller`]: watches, the per-namespace plan and its execution,
//!   status and Events.
//! - [`inspect`]: read-only views of a live cluster from the same plan:
//!   `plan` (what a change would do), `why` and `report` (what is in place).
//! - [`cli`]: the `baseliner` command line (`crd`, `validate`, `render`,
//!   `plan`, `why`, `report`).
//! - [`run`]: `baseliner run`, the operator process's wiring, with
//!   [`lease`] (leader election), [`http`] (`/metrics`, `/healthz`,
//!   `/readyz`), [`health`] (cache readiness) and [`metrics`].

pub mod access_review;
pub mod api;
pub mod cli;
pub mod controller;
pub mod cron;
pub mod exception;
pub mod health;
pub mod http;
pub mod inspect;
pub mod kind;
pub mod lease;
pub mod metrics;
pub mod namespace;
pub mod reason;
pub mod render;
pub mod required_rights;
pub mod run;
pub mod selection;
pub mod syntax;
pub mod template;
pub mod validate;
pub mod velero;
