//! The operator's behaviour against the real API server, one file per
//! feature; kubectl is the user's client throughout. Most tests use the
//! suite's shared operator; those about running it (install, RBAC, leader
//! election, the HTTP endpoints) start their own, as a ServiceAccount
//! holding the rules of `config/rbac`. Other operators may run on the plane
//! at the same time (the suite's shared one, a developer's `make run`);
//! every assertion holds regardless. Tests that do not depend on Velero
//! connect with `Velero::Any`, so they do not wait for its lock.

mod audit;
mod author_rights;
mod backups;
mod drift;
mod endpoints;
mod exceptions;
mod inspect;
mod install;
mod leader;
mod priority;
mod prune;
mod rbac;
mod replica;
mod role_bindings;
mod selection;
mod status;
mod support;
