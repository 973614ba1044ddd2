//! The e2e suite against the real local control plane. Everything is in
//! this one test binary, so the plane is started (or found) once per run.
//!
//! * `plane/`: the control plane and the harness themselves;
//! * `operator/`: the operator's behaviour, one file per feature;
//! * `bad_input/`: malformed and hostile profiles, one file per part of the
//!   profile.

mod bad_input;
mod operator;
mod plane;
