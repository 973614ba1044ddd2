//! The author-rights guard. The API server enforces that a profile asks only
//! for what its author may do cluster-wide, and that an exception waives
//! only what its author could remove, through the ValidatingAdmissionPolicies
//! shipped beside the CRDs (`crds/baseliner.dev_author-rights.yaml`).
//! Without them anyone who may write a profile or an exception could make
//! baseliner do what they could not, so while either is not in force as
//! shipped the operator writes no RoleBinding, lowers no Pod Security level
//! and honours no exception, and says why.
//!
//! [`assess`] is the pure check of one installed policy and binding;
//! [`watch_author_rights`] keeps the verdict current from name-filtered
//! watches.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use super::compare::desired_matches_live;
use crate::api::{POD_SECURITY_LEVEL_LABELS, POD_SECURITY_VERSION_LABELS};

/// Name of the profiles' policy and of its binding.
pub const POLICY_NAME: &str = "baseliner-author-rights";
/// Name of the exceptions' policy and of its binding.
pub const EXCEPTION_POLICY_NAME: &str = "baseliner-exception-rights";
/// Every policy (each with a binding of the same name) that must be in force.
pub const POLICY_NAMES: [&str; 2] = [POLICY_NAME, EXCEPTION_POLICY_NAME];

/// The policies and bindings as shipped: what the installed ones must contain.
pub const POLICY_YAML: &str = include_str!("../../crds/baseliner.dev_author-rights.yaml");

/// Whether baseliner may grant: write RoleBindings and lower Pod Security.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuthorRights {
    /// Not listed yet; nothing is granted until it is.
    #[default]
    Unknown,
    /// The policy and its binding are installed as shipped and deny.
    Enforced,
    /// The administrator opted out (`--unsafe-grant-without-author-rights-policy`).
    Waived,
    /// Why grants are held back.
    NotEnforced(String),
}

impl AuthorRights {
    /// Whether RoleBindings may be written and Pod Security lowered.
    pub fn allows_grants(&self) -> bool {
        matches!(self, Self::Enforced | Self::Waived)
    }

    /// Why grants are held back, for status, Events and logs.
    pub fn reason(&self) -> String {
        match self {
            Self::Unknown => "the author-rights policy has not been read yet".to_owned(),
            Self::Enforced | Self::Waived => String::new(),
            Self::NotEnforced(why) => why.clone(),
        }
    }
}

/// The shipped policy and binding named `name`, parsed once.
fn shipped(name: &str) -> (&'static Value, &'static Value) {
    static SHIPPED: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    // The file is part of the binary and checked by a unit test.
    let documents =
        SHIPPED.get_or_init(|| serde_saphyr::from_multiple(POLICY_YAML).unwrap_or_default());
    let find = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or(&Value::Null)
    };
    (
        find("ValidatingAdmissionPolicy"),
        find("ValidatingAdmissionPolicyBinding"),
    )
}

/// The verdict on every policy: the first that is not enforced, else
/// enforced. `installed` holds each of [`POLICY_NAMES`]'s policy and
/// binding, in that order.
pub fn assess_all(installed: &[(Option<Value>, Option<Value>)]) -> AuthorRights {
    POLICY_NAMES
        .iter()
        .zip(installed)
        .map(|(name, (policy, binding))| assess(name, policy.as_ref(), binding.as_ref()))
        .find(|verdict| *verdict != AuthorRights::Enforced)
        .unwrap_or(AuthorRights::Enforced)
}

/// Whether the installed `policy` and `binding` named `name` (as JSON)
/// enforce their rule: the policy holds every rule shipped (more is only
/// stricter) and fails closed, and the binding denies with it, for every
/// object.
pub fn assess(name: &str, policy: Option<&Value>, binding: Option<&Value>) -> AuthorRights {
    let missing = |what: &str| {
        AuthorRights::NotEnforced(format!(
            "{what} {name} is not installed (install crds/baseliner.dev_author-rights.yaml)"
        ))
    };
    let (shipped_policy, _) = shipped(name);
    let Some(policy) = policy else {
        return missing("ValidatingAdmissionPolicy");
    };
    let Some(binding) = binding else {
        return missing("ValidatingAdmissionPolicyBinding");
    };
    let spec = &policy["spec"];
    if !holds_shipped_rules(&shipped_policy["spec"], spec) {
        return AuthorRights::NotEnforced(format!(
            "ValidatingAdmissionPolicy {name} differs from the one this operator ships (reinstall crds/baseliner.dev_author-rights.yaml)"
        ));
    }
    if spec["failurePolicy"].as_str().unwrap_or("Fail") != "Fail" {
        return AuthorRights::NotEnforced(format!(
            "ValidatingAdmissionPolicy {name} has failurePolicy {}, not Fail",
            spec["failurePolicy"]
        ));
    }
    let binding_spec = &binding["spec"];
    if binding_spec["policyName"].as_str() != Some(name) {
        return AuthorRights::NotEnforced(format!(
            "ValidatingAdmissionPolicyBinding {name} does not bind policy {name}"
        ));
    }
    let denies = binding_spec["validationActions"]
        .as_array()
        .is_some_and(|actions| actions.iter().any(|a| a == "Deny"));
    if !denies {
        return AuthorRights::NotEnforced(format!(
            "ValidatingAdmissionPolicyBinding {name} does not have validationActions [Deny]"
        ));
    }
    if binding_spec.get("paramRef").is_some_and(|p| !p.is_null()) || narrows(binding_spec) {
        return AuthorRights::NotEnforced(format!(
            "ValidatingAdmissionPolicyBinding {name} applies to only some objects (matchResources or paramRef set)"
        ));
    }
    AuthorRights::Enforced
}

/// Whether the installed policy `spec` holds every rule and variable of the
/// shipped one unchanged, and the rest of it (what it matches, how it
/// fails) as shipped. More rules or variables are only stricter.
fn holds_shipped_rules(shipped: &Value, spec: &Value) -> bool {
    let contains_all = |field: &str, key: &str| {
        let installed = spec[field].as_array();
        shipped[field].as_array().is_none_or(|wanted| {
            wanted.iter().all(|want| {
                installed.is_some_and(|have| {
                    have.iter()
                        .any(|h| h[key] == want[key] && h["expression"] == want["expression"])
                })
            })
        })
    };
    let mut rest = shipped.clone();
    if let Some(rest) = rest.as_object_mut() {
        rest.remove("validations");
        rest.remove("variables");
    }
    desired_matches_live(&rest, spec)
        && contains_all("validations", "expression")
        && contains_all("variables", "name")
}

/// Whether a binding's `matchResources` leaves some profiles out. A
/// namespace selector never does: profiles are cluster-scoped.
fn narrows(binding_spec: &Value) -> bool {
    let rules = &binding_spec["matchResources"];
    let non_empty = |v: &Value| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    };
    non_empty(&rules["resourceRules"])
        || non_empty(&rules["excludeResourceRules"])
        || non_empty(&rules["objectSelector"])
}

/// Order of Pod Security levels; a missing or unknown label admits all.
fn level_rank(level: Option<&str>) -> u8 {
    match level {
        Some("restricted") => 2,
        Some("baseline") => 1,
        _ => 0,
    }
}

/// Order of policy versions: `latest` (or none) is the newest and so the
/// strictest; `v1.N` by N; anything else the oldest.
fn version_rank(version: Option<&str>) -> u32 {
    match version {
        None | Some("latest") => u32::MAX,
        Some(v) => v
            .strip_prefix("v1.")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

/// What would lower Pod Security if the namespace's labels (`live`) became
/// `desired`, where `owned` are the labels baseliner set before (a server-side
/// apply without them removes them). `None` when nothing is lowered.
pub fn pod_security_lowered(
    live: impl Fn(&str) -> Option<String>,
    desired: &BTreeMap<String, String>,
    owned: &[&str],
) -> Option<String> {
    let after = |key: &str| match desired.get(key) {
        Some(value) => Some(value.clone()),
        None if owned.contains(&key) => None,
        None => live(key),
    };
    let mut lowered = Vec::new();
    for key in POD_SECURITY_LEVEL_LABELS {
        let (now, then) = (live(key), after(key));
        if level_rank(then.as_deref()) < level_rank(now.as_deref()) {
            lowered.push(format!(
                "{key} from {} to {}",
                now.as_deref().unwrap_or("(none)"),
                then.as_deref().unwrap_or("(none)")
            ));
        }
    }
    for key in POD_SECURITY_VERSION_LABELS {
        let (now, then) = (live(key), after(key));
        if version_rank(then.as_deref()) < version_rank(now.as_deref()) {
            lowered.push(format!(
                "{key} from {} to {}",
                now.as_deref().unwrap_or("latest"),
                then.as_deref().unwrap_or("latest")
            ));
        }
    }
    (!lowered.is_empty()).then(|| lowered.join(", "))
}

/// Keeps `state` current from watches of the policies and their bindings
/// (by name); calls `changed` after every change of whether grants are
/// allowed.
pub async fn watch_author_rights(
    client: Client,
    state: watch::Sender<AuthorRights>,
    changed: impl Fn(),
) {
    let mut streams = Vec::new();
    for (index, name) in POLICY_NAMES.iter().enumerate() {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let policies = watcher(
            Api::<ValidatingAdmissionPolicy>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map(move |event| {
            (
                index,
                Source::Policy(event.map(|e| e.modify(strip_managed_fields))),
            )
        });
        let bindings = watcher(
            Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()),
            config,
        )
        .default_backoff()
        .map(move |event| {
            (
                index,
                Source::Binding(event.map(|e| e.modify(strip_managed_fields))),
            )
        });
        streams.push(policies.boxed());
        streams.push(bindings.boxed());
    }
    let mut events = futures::stream::select_all(streams);

    let mut watched: Vec<(Watched, Watched)> = POLICY_NAMES
        .iter()
        .map(|_| (Watched::default(), Watched::default()))
        .collect();
    while let Some((index, event)) = events.next().await {
        let (policy, binding) = &mut watched[index];
        let failed = match event {
            Source::Policy(event) => policy.apply(event),
            Source::Binding(event) => binding.apply(event),
        };
        let next = if let Some(why) = failed {
            AuthorRights::NotEnforced(why)
        } else if !watched.iter().all(|(p, b)| p.listed && b.listed) {
            continue;
        } else {
            let installed: Vec<(Option<Value>, Option<Value>)> = watched
                .iter()
                .map(|(p, b)| (p.object.clone(), b.object.clone()))
                .collect();
            assess_all(&installed)
        };
        let before = state.borrow().clone();
        if before == next {
            continue;
        }
        match &next {
            AuthorRights::Enforced => {
                info!(
                    "author-rights policies enforced; RoleBindings, Pod Security and exceptions may be written and honoured"
                )
            }
            other => {
                warn!(reason = %other.reason(), "author-rights policy not enforced; holding back RoleBindings and Pod Security lowering, honouring no exception")
            }
        }
        let _ = state.send(next.clone());
        if before.allows_grants() != next.allows_grants() || before == AuthorRights::Unknown {
            changed();
        }
    }
}

enum Source<P, B> {
    Policy(Result<watcher::Event<P>, watcher::Error>),
    Binding(Result<watcher::Event<B>, watcher::Error>),
}

fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The one object of a name-filtered watch, as JSON.
#[derive(Default)]
struct Watched {
    object: Option<Value>,
    listed: bool,
    relisting: bool,
}

impl Watched {
    /// Takes one event; the reason grants are held back when the watch
    /// itself cannot work (kind not served, no permission).
    fn apply<K: serde::Serialize>(
        &mut self,
        event: Result<watcher::Event<K>, watcher::Error>,
    ) -> Option<String> {
        match event {
            Ok(watcher::Event::Init) => {
                self.relisting = true;
                self.object = None;
            }
            Ok(watcher::Event::InitApply(object) | watcher::Event::Apply(object)) => {
                self.object = serde_json::to_value(&object).ok();
            }
            Ok(watcher::Event::InitDone) => {
                self.relisting = false;
                self.listed = true;
            }
            Ok(watcher::Event::Delete(_)) => self.object = None,
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status))) => {
                warn!(code = status.code, message = %status.message, "cannot list the author-rights policy");
                return Some(match status.code {
                    404 => "the API server does not serve ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30 or newer)".to_owned(),
                    403 => "the operator may not read the author-rights ValidatingAdmissionPolicies (check its RBAC)".to_owned(),
                    _ => format!("cannot read the author-rights ValidatingAdmissionPolicies: {}", status.message),
                });
            }
            Err(error) => warn!(%error, "watch of the author-rights policy failed; retrying"),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn installed() -> (Value, Value) {
        let (policy, binding) = shipped(POLICY_NAME);
        (policy.clone(), binding.clone())
    }

    #[test]
    fn the_shipped_file_holds_each_policy_and_its_binding() {
        let mut all = Vec::new();
        for name in POLICY_NAMES {
            let (policy, binding) = shipped(name);
            assert_eq!(policy["metadata"]["name"], name);
            assert_eq!(binding["metadata"]["name"], name);
            assert_eq!(binding["spec"]["policyName"], name);
            assert!(
                policy["spec"]["validations"]
                    .as_array()
                    .is_some_and(|v| v.len() >= 8),
                "{name}"
            );
            assert_eq!(
                assess(name, Some(policy), Some(binding)),
                AuthorRights::Enforced
            );
            all.push((Some(policy.clone()), Some(binding.clone())));
        }
        assert_eq!(assess_all(&all), AuthorRights::Enforced);
        all[1].1 = None;
        assert!(
            assess_all(&all).reason().contains(EXCEPTION_POLICY_NAME),
            "{:?}",
            assess_all(&all)
        );
    }

    #[test]
    fn assess_refuses_what_would_not_protect() {
        type Edit = fn(&mut Value, &mut Value);
        let cases: [(&str, Option<Edit>, bool); 9] = [
            ("as shipped", None, true),
            (
                "server defaults added",
                Some(|p, b| {
                    p["spec"]["matchConstraints"]["matchPolicy"] = json!("Equivalent");
                    p["spec"]["matchConstraints"]["namespaceSelector"] = json!({});
                    b["spec"]["matchResources"] = json!({"namespaceSelector": {}, "objectSelector": {}, "matchPolicy": "Equivalent"});
                }),
                true,
            ),
            (
                "a rule added is only stricter",
                Some(|p, _| {
                    p["spec"]["validations"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"expression": "true"}));
                }),
                true,
            ),
            (
                "a rule removed",
                Some(|p, _| {
                    p["spec"]["validations"].as_array_mut().unwrap().remove(1);
                }),
                false,
            ),
            (
                "a rule weakened",
                Some(|p, _| {
                    p["spec"]["validations"][0]["expression"] = json!("true");
                }),
                false,
            ),
            (
                "fails open",
                Some(|p, _| p["spec"]["failurePolicy"] = json!("Ignore")),
                false,
            ),
            (
                "warns only",
                Some(|_, b| b["spec"]["validationActions"] = json!(["Warn", "Audit"])),
                false,
            ),
            (
                "binds another policy",
                Some(|_, b| b["spec"]["policyName"] = json!("other")),
                false,
            ),
            (
                "only some profiles",
                Some(|_, b| {
                    b["spec"]["matchResources"] =
                        json!({"objectSelector": {"matchLabels": {"x": "y"}}});
                }),
                false,
            ),
        ];
        for (name, edit, enforced) in cases {
            let (mut policy, mut binding) = installed();
            if let Some(edit) = edit {
                edit(&mut policy, &mut binding);
            }
            let got = assess(POLICY_NAME, Some(&policy), Some(&binding));
            assert_eq!(got.allows_grants(), enforced, "{name}: {got:?}");
        }
        let (policy, binding) = installed();
        assert!(!assess(POLICY_NAME, None, Some(&binding)).allows_grants());
        assert!(
            assess(POLICY_NAME, Some(&policy), None)
                .reason()
                .contains("ValidatingAdmissionPolicyBinding")
        );
    }

    #[test]
    fn pod_security_lowering() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        const E: &str = "pod-security.kubernetes.io/enforce";
        const EV: &str = "pod-security.kubernetes.io/enforce-version";
        const W: &str = "pod-security.kubernetes.io/warn";
        type Labels = &'static [(&'static str, &'static str)];
        // name, live labels, desired labels, labels baseliner set, lowers?
        let cases: [(&str, Labels, Labels, &[&str], bool); 10] = [
            ("first set", &[], &[(E, "restricted")], &[], false),
            (
                "raised",
                &[(E, "baseline")],
                &[(E, "restricted")],
                &[E],
                false,
            ),
            (
                "unchanged",
                &[(E, "restricted")],
                &[(E, "restricted")],
                &[E],
                false,
            ),
            (
                "lowered",
                &[(E, "restricted")],
                &[(E, "privileged")],
                &[E],
                true,
            ),
            ("removed by us", &[(E, "restricted")], &[], &[E], true),
            (
                "not ours, left alone",
                &[(E, "restricted")],
                &[(W, "baseline")],
                &[W],
                false,
            ),
            (
                "version pinned older",
                &[(E, "restricted")],
                &[(E, "restricted"), (EV, "v1.20")],
                &[E],
                true,
            ),
            (
                "version to latest",
                &[(E, "restricted"), (EV, "v1.20")],
                &[(E, "restricted"), (EV, "latest")],
                &[E, EV],
                false,
            ),
            (
                "version newer",
                &[(EV, "v1.20")],
                &[(EV, "v1.30")],
                &[EV],
                false,
            ),
            (
                "junk level treated as privileged",
                &[(E, "junk")],
                &[(E, "baseline")],
                &[E],
                false,
            ),
        ];
        for (name, live, desired, owned, want) in cases {
            let live = labels(live);
            let got = pod_security_lowered(|k| live.get(k).cloned(), &labels(desired), owned);
            assert_eq!(got.is_some(), want, "{name}: {got:?}");
        }
    }
}
