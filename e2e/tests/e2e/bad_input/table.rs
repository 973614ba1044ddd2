//! The table's rows: profiles the API server must accept (and what must
//! follow) or refuse (and the field it must name), and the builders the
//! parts of the profile write their rows with.

use std::collections::BTreeMap;

use baseliner_e2e::baseline::profile_yaml;
use baseliner_e2e::random_name;
use serde_json::Value;

/// What the cluster must do with one profile the API server accepts.
#[derive(Clone, Debug)]
pub(super) enum Expect {
    /// The namespace is listed in `status.nonCompliant` with this reason and
    /// a message containing `fragment`.
    Reported {
        reason: &'static str,
        fragment: String,
    },
    /// Accepted and applied: the one namespace is compliant, and `check`
    /// (if any) holds for what was written.
    Compliant(Check),
    /// The selector can match no namespace (a label key or value no
    /// namespace can carry): matched 0, and nothing written anywhere.
    SelectsNothing,
}

/// Extra checks on what a compliant hostile profile wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    None,
    /// Names at their maximum lengths: every derived name fits.
    MaxLengths,
    /// Lists at their maximum sizes: every object is there.
    HugeLists,
    /// A CIDR with host bits set is written canonically.
    CanonicalCidr,
    /// An except outside every CIDR is left out, as it would deny nothing.
    ExceptLeftOut,
}

/// A profile the API server must accept, and what must follow.
pub(super) struct Accepted {
    pub(super) id: String,
    /// The profile as JSON, `metadata.name` and `spec.namespaces` filled in
    /// by the test.
    pub(super) profile: Value,
    /// Whether `spec.namespaces` is replaced by the case's own selector.
    pub(super) own_selector: bool,
    /// Labels of the case's namespace besides `e2e-case`.
    pub(super) labels: BTreeMap<String, String>,
    /// A namespace name prefix, to get a long name.
    pub(super) namespace_prefix: Option<String>,
    /// A fixed profile name (for the maximum-length case).
    pub(super) profile_name: Option<String>,
    pub(super) expect: Expect,
}

/// A profile the API server must refuse, naming `path`.
pub(super) struct Refused {
    pub(super) id: String,
    pub(super) yaml: String,
    pub(super) path: String,
}

pub(super) fn team_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_owned(), "payments".to_owned())])
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `spec` given as YAML (without `namespaces`), as a profile skeleton.
pub(super) fn hostile(id: &str, spec_body: &str) -> Value {
    let yaml = profile_yaml("placeholder", "placeholder", spec_body);
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("case {id} is not YAML: {e}\n{yaml}"))
}

pub(super) fn reported(reason: &'static str, fragment: &str) -> Expect {
    Expect::Reported {
        reason,
        fragment: fragment.to_owned(),
    }
}

pub(super) fn accepted(
    id: &str,
    spec_body: &str,
    labels: BTreeMap<String, String>,
    expect: Expect,
) -> Accepted {
    Accepted {
        id: id.to_owned(),
        profile: hostile(id, spec_body),
        own_selector: true,
        labels,
        namespace_prefix: None,
        profile_name: None,
        expect,
    }
}

pub(super) fn binding(role: &str, kind: &str, name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |n| format!(", namespace: {n:?}"));
    format!(
        "  roleBindings:\n    - name: bad\n      clusterRole: {role:?}\n      subjects:\n        - {{kind: {kind}, name: {name:?}{namespace}}}\n"
    )
}

/// A profile the API server must refuse, with `body` as its `spec` (see
/// [`profile_yaml`]).
pub(super) fn refused(id: &str, body: &str, path: &str) -> Refused {
    Refused {
        id: id.to_owned(),
        yaml: profile_yaml(&random_name(&format!("bad-{id}")), "never-applied", body),
        path: path.to_owned(),
    }
}

/// `f(0), f(1), ... f(n - 1)`, comma-separated.
pub(super) fn many(n: usize, f: &dyn Fn(usize) -> String) -> String {
    (0..n).map(f).collect::<Vec<_>>().join(", ")
}
