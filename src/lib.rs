//! baseliner: reconcile namespaces to a declared production baseline.
