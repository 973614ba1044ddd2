//! The e2e suite against the real local control plane. Everything is in
//! this one test binary, so the plane is started (or found) once per run.

mod author_rights;
mod bad_input;
mod controller;
mod harness;
mod plane_is_real;
mod production;
mod rbac;
mod rolebindings_velero;
mod velero;
