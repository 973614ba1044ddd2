//! The plane's and the harness's own tests: the control plane is a real
//! one, RBAC is enforced, the minimal Velero CRD behaves as Velero's, and
//! the harness keeps its promises. Nothing here runs the operator.

mod harness;
mod plane_is_real;
mod rbac;
mod velero_crd;
