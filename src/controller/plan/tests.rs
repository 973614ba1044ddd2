//! Table-driven tests of the plan: every step, both strategies, and the
//! branches that have bitten before (Orphan, Audit, a roleRef change, the
//! echo of our own write, terminating namespaces).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PartialObjectMeta;
use serde_json::json;

use super::*;

/// A profile named `prod` (generation 3) selecting `tier=prod`, with more
/// of its spec given as YAML indented by two spaces.
fn profile(name: &str, spec: &str) -> Arc<ProductionProfile> {
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {name}\n  uid: u-{name}\n  generation: 3\nspec:\n  namespaces: {{selector: {{matchLabels: {{tier: prod}}}}}}\n{spec}"
    );
    let profile: ProductionProfile =
        serde_saphyr::from_str(&yaml).unwrap_or_else(|error| panic!("fixture: {error}\n{yaml}"));
    Arc::new(profile)
}

const QUOTA: &str = "  resourceQuota: {hard: {pods: '10'}}\n";
const BINDING: &str =
    "  roleBindings: [{name: view, clusterRole: view, subjects: [{kind: Group, name: g}]}]\n";
const LABELS: &str = "  podSecurity: {enforce: restricted}\n";

fn namespace(labels: serde_json::Value, annotations: serde_json::Value) -> CachedNamespace {
    let meta: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "shop",
            "resourceVersion": "7",
            "labels": labels,
            "annotations": annotations,
        },
    }))
    .expect("a namespace");
    meta.into()
}

fn selected() -> CachedNamespace {
    namespace(json!({"tier": "prod"}), json!({}))
}

fn key(kind: ManagedKind, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: "shop".to_owned(),
        name: name.to_owned(),
    }
}

fn quota() -> ObjectKey {
    key(ManagedKind::ResourceQuota, "baseliner-quota")
}

fn binding() -> ObjectKey {
    key(ManagedKind::RoleBinding, "baseliner-view")
}

fn live(profile: &str, orphan: bool) -> LiveObject {
    LiveObject {
        resource_version: "5".to_owned(),
        profile: Some(profile.to_owned()),
        orphan_on_prune: orphan,
    }
}

/// The verified record as a plain table.
#[derive(Default)]
struct Record {
    verified: HashSet<(ObjectKey, String, u64)>,
    applied: HashSet<(ObjectKey, u64)>,
    pruned: HashSet<(ObjectKey, String)>,
    patched: HashSet<(String, String, u64)>,
}

impl VerifiedRecord for Record {
    fn is_verified(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) -> bool {
        self.verified
            .contains(&(key.clone(), resource_version.to_owned(), fingerprint))
    }
    fn is_applied(&self, key: &ObjectKey, fingerprint: u64) -> bool {
        self.applied.contains(&(key.clone(), fingerprint))
    }
    fn is_pruned(&self, key: &ObjectKey, resource_version: &str) -> bool {
        self.pruned
            .contains(&(key.clone(), resource_version.to_owned()))
    }
    fn is_namespace_patched(&self, name: &str, resource_version: &str, fingerprint: u64) -> bool {
        self.patched
            .contains(&(name.to_owned(), resource_version.to_owned(), fingerprint))
    }
}

fn plan_with(
    namespace: &CachedNamespace,
    profiles: &[Arc<ProductionProfile>],
    live: &BTreeMap<ObjectKey, LiveObject>,
    record: &Record,
) -> NamespacePlan {
    let input = PlanInput {
        namespace,
        profiles,
        selection: &SelectionContext::default(),
        render: &RenderOptions::default(),
        live,
        schedules_served: true,
        grants: &AuthorRights::Enforced,
        exceptions: &[],
        now: Timestamp::now(),
        exception_settings: &ExceptionSettings::default(),
    };
    plan_namespace(&input, record)
}

fn steps(plan: &NamespacePlan) -> Vec<(String, Step)> {
    plan.objects
        .iter()
        .map(|object| (object.key.name.clone(), object.step.clone()))
        .collect()
}

/// The fingerprint the plan gives the desired object `key`.
fn fingerprint_of(profile: &Arc<ProductionProfile>, key: &ObjectKey) -> u64 {
    let plan = plan_with(
        &selected(),
        std::slice::from_ref(profile),
        &BTreeMap::new(),
        &Record::default(),
    );
    plan.objects
        .iter()
        .find(|object| &object.key == key)
        .and_then(|object| object.desired.as_ref())
        .map(|desired| desired.fingerprint)
        .expect("the object is desired")
}

#[test]
fn steps_from_the_index_and_the_record() {
    let enforce = profile("prod", QUOTA);
    let audit = profile("prod", &format!("  mode: Audit\n{QUOTA}"));
    let fp = fingerprint_of(&enforce, &quota());
    let indexed = BTreeMap::from([(quota(), live("prod", false))]);
    let none = BTreeMap::new();
    let verified = Record {
        verified: HashSet::from([(quota(), "5".to_owned(), fp)]),
        ..Record::default()
    };
    // The echo of our own write: applied, the index has not seen it yet.
    let echo = Record {
        applied: HashSet::from([(quota(), fp)]),
        ..Record::default()
    };
    let missing = Step::Drifted("missing".to_owned());
    let cases: Vec<(&str, &Arc<ProductionProfile>, &BTreeMap<_, _>, Record, Step)> = vec![
        (
            "missing: create",
            &enforce,
            &none,
            Record::default(),
            Step::Create,
        ),
        (
            "our create not seen yet: in sync",
            &enforce,
            &none,
            echo,
            Step::InSync,
        ),
        (
            "verified at this version: in sync",
            &enforce,
            &indexed,
            verified,
            Step::InSync,
        ),
        (
            "changed since: read first",
            &enforce,
            &indexed,
            Record::default(),
            Step::NeedsRead,
        ),
        (
            "audit, missing: drifted",
            &audit,
            &none,
            Record::default(),
            missing.clone(),
        ),
        (
            "audit ignores our own writes",
            &audit,
            &none,
            Record {
                applied: HashSet::from([(quota(), fp)]),
                ..Record::default()
            },
            missing,
        ),
        (
            "audit reads too",
            &audit,
            &indexed,
            Record::default(),
            Step::NeedsRead,
        ),
    ];
    for (case, profile, live, record, step) in cases {
        let plan = plan_with(&selected(), std::slice::from_ref(profile), live, &record);
        assert_eq!(
            steps(&plan),
            vec![("baseliner-quota".to_owned(), step)],
            "{case}"
        );
        assert!(!plan.terminating, "{case}");
        assert_eq!(plan.owner.as_ref().map(|o| o.generation), Some(3), "{case}");
    }
}

/// The desired quota and RoleBinding of a profile that wants both.
fn desired_quota_and_binding() -> (Desired, Desired) {
    let enforce = profile("prod", &format!("{QUOTA}{BINDING}"));
    let plan = plan_with(
        &selected(),
        std::slice::from_ref(&enforce),
        &BTreeMap::new(),
        &Record::default(),
    );
    let desired = |key: &ObjectKey| {
        plan.objects
            .iter()
            .find(|o| &o.key == key)
            .and_then(|o| o.desired.clone())
            .expect("desired")
    };
    (desired(&quota()), desired(&binding()))
}

type ReadCase<'a> = (&'a str, Option<&'a Value>, Strategy, Step);

#[test]
fn a_listed_body_is_in_sync_only_when_it_holds_the_desired_object() {
    let enforce = profile("prod", &format!("{QUOTA}{BINDING}"));
    let plan = plan_with(
        &selected(),
        std::slice::from_ref(&enforce),
        &BTreeMap::new(),
        &Record::default(),
    );
    let (desired, _) = desired_quota_and_binding();
    let mut listed = desired.body.clone();
    listed["metadata"]["resourceVersion"] = json!("9");
    listed["status"] = json!({"used": {"pods": "0"}});
    assert_eq!(
        plan.in_sync_fingerprint(&quota(), &listed),
        Some(desired.fingerprint)
    );
    let mut edited = listed.clone();
    edited["spec"]["hard"]["pods"] = json!("99");
    assert_eq!(plan.in_sync_fingerprint(&quota(), &edited), None, "drifted");
    let other = key(ManagedKind::LimitRange, "baseliner-limits");
    assert_eq!(
        plan.in_sync_fingerprint(&other, &listed),
        None,
        "nothing desires it"
    );
    let unowned = plan_with(
        &namespace(json!({"tier": "dev"}), json!({})),
        std::slice::from_ref(&enforce),
        &BTreeMap::new(),
        &Record::default(),
    );
    assert_eq!(
        unowned.in_sync_fingerprint(&quota(), &listed),
        None,
        "no profile owns the namespace"
    );
}

#[test]
fn steps_after_reading_an_object() {
    let (desired, _) = desired_quota_and_binding();
    let mut served = desired.body.clone();
    served["metadata"]["resourceVersion"] = json!("9");
    served["spec"]["hard"]["pods"] = json!("10");
    served["status"] = json!({});
    let mut edited = served.clone();
    edited["spec"]["hard"]["pods"] = json!("99");

    use Strategy::{Audit, Enforce};
    let cases: Vec<ReadCase> = vec![
        ("as wanted", Some(&served), Enforce, Step::InSync),
        ("as wanted, audit", Some(&served), Audit, Step::InSync),
        ("edited: heal", Some(&edited), Enforce, Step::Heal),
        (
            "edited, audit: say what differs",
            Some(&edited),
            Audit,
            Step::Drifted("spec differ from the profile".to_owned()),
        ),
        ("gone: create", None, Enforce, Step::Create),
        (
            "gone, audit",
            None,
            Audit,
            Step::Drifted("missing".to_owned()),
        ),
    ];
    for (case, current, strategy, step) in cases {
        assert_eq!(
            decide_after_read(&quota(), &desired, current, strategy),
            step,
            "{case}"
        );
    }
}

#[test]
fn a_role_binding_whose_role_changed_is_replaced() {
    let (_, desired) = desired_quota_and_binding();
    let mut other_role = desired.body.clone();
    other_role["roleRef"]["name"] = json!("edit");
    let mut other_subjects = desired.body.clone();
    other_subjects["subjects"][0]["name"] = json!("h");

    use Strategy::{Audit, Enforce};
    let cases: Vec<ReadCase> = vec![
        (
            "roleRef changed: replace",
            Some(&other_role),
            Enforce,
            Step::Replace,
        ),
        (
            "subjects changed: heal",
            Some(&other_subjects),
            Enforce,
            Step::Heal,
        ),
        (
            "roleRef changed, audit",
            Some(&other_role),
            Audit,
            Step::Drifted("roleRef differ from the profile".to_owned()),
        ),
    ];
    for (case, current, strategy, step) in cases {
        assert_eq!(
            decide_after_read(&binding(), &desired, current, strategy),
            step,
            "{case}"
        );
    }
}

#[test]
fn objects_no_longer_desired() {
    let enforce = profile("prod", "");
    let audit = profile("prod", "  mode: Audit\n");
    let delete = BTreeMap::from([(quota(), live("prod", false))]);
    let orphan = BTreeMap::from([(quota(), live("prod", true))]);
    let done = Record {
        pruned: HashSet::from([(quota(), "5".to_owned())]),
        ..Record::default()
    };
    let would_be = Step::Drifted(NO_LONGER_DESIRED.to_owned());
    type Case<'a> = (
        &'a str,
        &'a Arc<ProductionProfile>,
        &'a BTreeMap<ObjectKey, LiveObject>,
        Record,
        Vec<Step>,
    );
    let cases: Vec<Case> = vec![
        (
            "prune",
            &enforce,
            &delete,
            Record::default(),
            vec![Step::Prune],
        ),
        (
            "orphan",
            &enforce,
            &orphan,
            Record::default(),
            vec![Step::Orphan],
        ),
        (
            "pruned already, not seen yet",
            &enforce,
            &delete,
            done,
            vec![],
        ),
        (
            "audit: only report",
            &audit,
            &delete,
            Record::default(),
            vec![would_be.clone()],
        ),
        (
            "audit: only report an orphan",
            &audit,
            &orphan,
            Record::default(),
            vec![would_be],
        ),
    ];
    for (case, profile, live, record, expected) in cases {
        let plan = plan_with(&selected(), std::slice::from_ref(profile), live, &record);
        let found: Vec<Step> = plan.objects.iter().map(|o| o.step.clone()).collect();
        assert_eq!(found, expected, "{case}");
        assert!(
            plan.objects
                .iter()
                .all(|o| o.desired.is_none() && o.live.is_some())
        );
    }
}

#[test]
fn an_unowned_namespace_is_released_unless_its_profile_audits() {
    let unselected = namespace(
        json!({"tier": "dev"}),
        json!({
            "baseliner.dev/pod-security-labels": "pod-security.kubernetes.io/enforce",
            "baseliner.dev/profile": "gone",
            "baseliner.dev/deletion-policy": "Orphan",
        }),
    );
    let audit = profile("auditor", "  mode: Audit\n");
    let enforce = profile("enforcer", "");
    let live = BTreeMap::from([
        (quota(), live("auditor", false)),
        (binding(), live("enforcer", true)),
        (
            key(ManagedKind::LimitRange, "baseliner-limits"),
            live("gone", false),
        ),
    ]);
    let plan = plan_with(&unselected, &[audit, enforce], &live, &Record::default());
    assert_eq!(plan.owner, None);
    assert_eq!(
        steps(&plan),
        vec![
            ("baseliner-limits".to_owned(), Step::Prune),
            ("baseliner-view".to_owned(), Step::Orphan),
        ],
        "the Audit profile's object stays"
    );
    assert!(matches!(
        plan.labels,
        LabelStep::Release { orphan: true, .. }
    ));

    // Labels an Audit profile marked stay too.
    let marked_by_auditor = namespace(
        json!({}),
        json!({
            "baseliner.dev/pod-security-labels": "pod-security.kubernetes.io/enforce",
            "baseliner.dev/profile": "auditor",
        }),
    );
    let plan = plan_with(
        &marked_by_auditor,
        &[profile("auditor", "  mode: Audit\n")],
        &BTreeMap::new(),
        &Record::default(),
    );
    assert_eq!(plan.labels, LabelStep::InSync);
}

#[test]
fn a_terminating_namespace_plans_nothing() {
    let mut meta: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "shop",
            "labels": {"tier": "prod"},
            "deletionTimestamp": "2026-01-02T00:00:00Z",
        },
    }))
    .expect("a namespace");
    meta.metadata.resource_version = Some("8".to_owned());
    let terminating: CachedNamespace = meta.into();
    let live = BTreeMap::from([(quota(), live("prod", false))]);
    for profiles in [vec![profile("prod", QUOTA)], vec![]] {
        let plan = plan_with(&terminating, &profiles, &live, &Record::default());
        assert!(plan.terminating);
        assert_eq!(plan.objects, vec![]);
        assert_eq!(plan.labels, LabelStep::InSync);
        assert_eq!(plan.owner, None);
    }
}

#[test]
fn orphan_profiles_drop_owner_references_and_say_so() {
    let orphaning = profile("prod", &format!("  deletionPolicy: Orphan\n{QUOTA}"));
    let plan = plan_with(
        &selected(),
        &[orphaning],
        &BTreeMap::new(),
        &Record::default(),
    );
    let body = &plan.objects[0].desired.as_ref().expect("desired").body;
    assert_eq!(body["metadata"].get("ownerReferences"), None);
    assert_eq!(
        body["metadata"]["annotations"]["baseliner.dev/deletion-policy"],
        "Orphan"
    );
    let deleting = plan_with(
        &selected(),
        &[profile("prod", QUOTA)],
        &BTreeMap::new(),
        &Record::default(),
    );
    let body = &deleting.objects[0].desired.as_ref().expect("desired").body;
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "u-prod");
    assert_eq!(body["metadata"].get("annotations"), None);
}

#[test]
fn pod_security_labels() {
    let marked = json!({
        "baseliner.dev/pod-security-labels": "pod-security.kubernetes.io/enforce,pod-security.kubernetes.io/enforce-version",
        "baseliner.dev/profile": "prod",
        "baseliner.dev/deletion-policy": "Delete",
    });
    let labelled = json!({
        "tier": "prod",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    });
    let enforce = profile("prod", LABELS);
    let audit = profile("prod", &format!("  mode: Audit\n{LABELS}"));
    let without = profile("prod", "");
    let audit_without = profile("prod", "  mode: Audit\n");
    let is_apply = |step: &LabelStep| matches!(step, LabelStep::Apply { .. });
    let is_release = |step: &LabelStep| matches!(step, LabelStep::Release { orphan: false, .. });
    type Check = fn(&LabelStep) -> bool;
    let in_sync: Check = |step| *step == LabelStep::InSync;
    type Case<'a> = (
        &'a str,
        CachedNamespace,
        &'a Arc<ProductionProfile>,
        Box<dyn Fn(&LabelStep) -> bool>,
    );
    let cases: Vec<Case> = vec![
        (
            "unlabelled: apply",
            selected(),
            &enforce,
            Box::new(is_apply),
        ),
        (
            "labelled and marked: in sync",
            namespace(labelled.clone(), marked.clone()),
            &enforce,
            Box::new(in_sync),
        ),
        (
            "labelled, not marked: apply the markers",
            namespace(labelled.clone(), json!({})),
            &enforce,
            Box::new(is_apply),
        ),
        (
            "audit, unlabelled: drifted",
            selected(),
            &audit,
            Box::new(|step: &LabelStep| {
                *step
                    == LabelStep::Drifted(
                        "labels differ: want pod-security.kubernetes.io/enforce=restricted, pod-security.kubernetes.io/enforce-version=latest".to_owned(),
                    )
            }),
        ),
        (
            "audit, only markers differ: in sync",
            namespace(labelled.clone(), json!({})),
            &audit,
            Box::new(in_sync),
        ),
        (
            "no longer wanted: release",
            namespace(labelled.clone(), marked.clone()),
            &without,
            Box::new(is_release),
        ),
        (
            "never ours: in sync",
            namespace(labelled.clone(), json!({})),
            &without,
            Box::new(in_sync),
        ),
        (
            "no longer wanted, audit: drifted",
            namespace(labelled, marked),
            &audit_without,
            Box::new(|step: &LabelStep| {
                *step == LabelStep::Drifted("Pod Security labels would be removed".to_owned())
            }),
        ),
    ];
    for (case, namespace, profile, check) in cases {
        let plan = plan_with(
            &namespace,
            std::slice::from_ref(profile),
            &BTreeMap::new(),
            &Record::default(),
        );
        assert!(check(&plan.labels), "{case}: {:?}", plan.labels);
    }
}

#[test]
fn a_namespace_patch_not_seen_yet_is_not_sent_again() {
    let enforce = profile("prod", LABELS);
    let plan = plan_with(
        &selected(),
        std::slice::from_ref(&enforce),
        &BTreeMap::new(),
        &Record::default(),
    );
    let LabelStep::Apply { body, fingerprint } = &plan.labels else {
        panic!("expected an apply, got {:?}", plan.labels);
    };
    assert_eq!(
        body["metadata"]["annotations"]["baseliner.dev/pod-security-labels"],
        "pod-security.kubernetes.io/enforce,pod-security.kubernetes.io/enforce-version"
    );
    let patched = Record {
        patched: HashSet::from([("shop".to_owned(), "7".to_owned(), *fingerprint)]),
        ..Record::default()
    };
    let again = plan_with(&selected(), &[enforce], &BTreeMap::new(), &patched);
    assert_eq!(again.labels, LabelStep::InSync);
}

#[test]
fn problems_conflicts_and_missing_velero() {
    let backup = "  backup: {schedule: '0 2 * * *'}\n";
    let owner = profile(
        "prod",
        &format!(
            "  priority: 10\n{backup}  roleBindings: [{{name: root, clusterRole: cluster-admin, subjects: [{{kind: Group, name: g}}]}}]\n"
        ),
    );
    let loser = profile("other", "");
    let input = PlanInput {
        namespace: &selected(),
        profiles: &[owner, loser],
        selection: &SelectionContext::default(),
        render: &RenderOptions::default(),
        live: &BTreeMap::new(),
        schedules_served: false,
        grants: &AuthorRights::Enforced,
        exceptions: &[],
        now: Timestamp::now(),
        exception_settings: &ExceptionSettings::default(),
    };
    let plan = plan_namespace(&input, &Record::default());
    assert_eq!(
        plan.owner.as_ref().map(|o| o.profile.as_str()),
        Some("prod")
    );
    assert_eq!(plan.conflicts, vec!["other".to_owned()]);
    assert_eq!(plan.render_problems.len(), 1);
    assert_eq!(plan.render_problems[0].reason, Reason::RoleNotAllowed);
    assert_eq!(plan.problems.len(), 1);
    assert_eq!(plan.problems[0].reason, Reason::BackupsUnavailable);
    assert_eq!(plan.objects, vec![], "no Schedule without Velero");
}

#[test]
fn audit_plans_never_write() {
    let audit = profile("prod", &format!("  mode: Audit\n{QUOTA}{BINDING}{LABELS}"));
    let live = BTreeMap::from([
        (quota(), live("prod", false)),
        (
            key(ManagedKind::LimitRange, "baseliner-limits"),
            live("prod", true),
        ),
    ]);
    let plan = plan_with(&selected(), &[audit], &live, &Record::default());
    assert_eq!(
        plan.owner.as_ref().map(|o| o.strategy),
        Some(Strategy::Audit)
    );
    assert!(
        plan.objects.iter().all(|o| !o.step.writes()),
        "{:?}",
        steps(&plan)
    );
    assert!(matches!(plan.labels, LabelStep::Drifted(_)));
}

#[test]
fn strategies_follow_the_mode() {
    let enforced = AuthorRights::Enforced;
    let missing = AuthorRights::NotEnforced("no policy".to_owned());
    assert_eq!(Strategy::new(Mode::Enforce, &enforced), Strategy::Enforce);
    assert_eq!(
        Strategy::new(Mode::Enforce, &AuthorRights::Waived),
        Strategy::Enforce
    );
    assert_eq!(
        Strategy::new(Mode::Enforce, &missing),
        Strategy::EnforceHoldingGrants
    );
    assert_eq!(Strategy::new(Mode::Audit, &enforced), Strategy::Audit);
    assert_eq!(Strategy::new(Mode::Audit, &missing), Strategy::Audit);
    assert!(Strategy::EnforceHoldingGrants.writes());
    assert_eq!(
        Strategy::EnforceHoldingGrants.for_kind(ManagedKind::RoleBinding),
        Strategy::Audit
    );
    assert_eq!(
        Strategy::EnforceHoldingGrants.for_kind(ManagedKind::LimitRange),
        Strategy::EnforceHoldingGrants
    );
    assert!(Strategy::Enforce.writes());
    assert!(!Strategy::Audit.writes());
    let writing = [
        Step::Create,
        Step::Heal,
        Step::Replace,
        Step::Prune,
        Step::Orphan,
    ];
    assert!(writing.iter().all(Step::writes));
    let reading = [
        Step::InSync,
        Step::NeedsRead,
        Step::Drifted(String::new()),
        Step::Held(String::new()),
    ];
    assert!(!reading.iter().any(Step::writes));
}

#[test]
fn fingerprint_follows_content() {
    let object = json!({"kind": "LimitRange", "spec": {"limits": [{"type": "Container"}]}});
    assert_eq!(fingerprint(&object), fingerprint(&object.clone()));
    let mut changed = object.clone();
    changed["spec"]["limits"][0]["type"] = json!("Pod");
    assert_ne!(fingerprint(&object), fingerprint(&changed));
}

/// Plans the namespace while the author-rights policy is missing.
fn plan_without_policy(
    namespace: &CachedNamespace,
    profiles: &[Arc<ProductionProfile>],
    live: &BTreeMap<ObjectKey, LiveObject>,
) -> NamespacePlan {
    let grants = AuthorRights::NotEnforced("the policy is not installed".to_owned());
    let input = PlanInput {
        namespace,
        profiles,
        selection: &SelectionContext::default(),
        render: &RenderOptions::default(),
        live,
        schedules_served: true,
        grants: &grants,
        exceptions: &[],
        now: Timestamp::now(),
        exception_settings: &ExceptionSettings::default(),
    };
    plan_namespace(&input, &Record::default())
}

#[test]
fn grants_are_held_while_the_author_rights_policy_is_missing() {
    let enforce = profile("prod", &format!("{QUOTA}{BINDING}"));
    let audit = profile("prod", &format!("  mode: Audit\n{QUOTA}{BINDING}"));
    let indexed = BTreeMap::from([(binding(), live("prod", false))]);
    let none = BTreeMap::new();
    let cases: Vec<(&str, &Arc<ProductionProfile>, &BTreeMap<_, _>, Step)> = vec![
        (
            "a missing binding is held",
            &enforce,
            &none,
            Step::Held("missing".to_owned()),
        ),
        (
            "an indexed binding is read first",
            &enforce,
            &indexed,
            Step::NeedsRead,
        ),
        (
            "audit is audit",
            &audit,
            &none,
            Step::Drifted("missing".to_owned()),
        ),
    ];
    for (case, profile, live, step) in cases {
        let plan = plan_without_policy(&selected(), std::slice::from_ref(profile), live);
        let found = steps(&plan);
        assert_eq!(found[1], ("baseliner-view".to_owned(), step), "{case}");
        let quota_step = if profile.spec.mode == Mode::Audit {
            Step::Drifted("missing".to_owned())
        } else {
            Step::Create
        };
        assert_eq!(
            found[0],
            ("baseliner-quota".to_owned(), quota_step),
            "{case}: the rest goes on"
        );
        assert_eq!(
            plan.held_because.as_deref(),
            Some("the policy is not installed"),
            "{case}"
        );
    }
    // After a read, a binding that differs is held too.
    let desired = plan_without_policy(&selected(), std::slice::from_ref(&enforce), &none).objects
        [1]
    .desired
    .clone()
    .expect("desired");
    let mut other_role = desired.body.clone();
    other_role["roleRef"]["name"] = json!("edit");
    assert_eq!(
        decide_after_read(
            &binding(),
            &desired,
            Some(&other_role),
            Strategy::EnforceHoldingGrants
        ),
        Step::Held("roleRef differ from the profile".to_owned())
    );
}

#[test]
fn lowering_pod_security_is_held_while_the_author_rights_policy_is_missing() {
    let marked = json!({
        "baseliner.dev/pod-security-labels": "pod-security.kubernetes.io/enforce,pod-security.kubernetes.io/enforce-version",
        "baseliner.dev/profile": "prod",
        "baseliner.dev/deletion-policy": "Delete",
    });
    let labelled = json!({
        "tier": "prod",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    });
    let baseline = profile("prod", "  podSecurity: {enforce: baseline}\n");
    let restricted = profile("prod", LABELS);
    let without = profile("prod", "");
    let orphaning = profile("prod", "  deletionPolicy: Orphan\n");
    let none = BTreeMap::new();
    let held = |step: &LabelStep| matches!(step, LabelStep::Held(what) if what.contains("from restricted"));
    let cases: Vec<(&str, &Arc<ProductionProfile>, bool)> = vec![
        ("lowering enforce is held", &baseline, true),
        ("raising is not", &restricted, false),
        ("removing the labels is held", &without, true),
        (
            "orphaning keeps the labels, so lowers nothing",
            &orphaning,
            false,
        ),
    ];
    for (case, profile, expect_held) in cases {
        let namespace = namespace(labelled.clone(), marked.clone());
        let plan = plan_without_policy(&namespace, std::slice::from_ref(profile), &none);
        assert_eq!(held(&plan.labels), expect_held, "{case}: {:?}", plan.labels);
    }
    // A namespace no profile owns any more keeps the labels, too.
    let unowned = namespace(
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
        marked,
    );
    let plan = plan_without_policy(&unowned, &[], &none);
    assert!(held(&plan.labels), "{:?}", plan.labels);
}

fn exception(yaml: &str) -> Arc<ProfileException> {
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata: {{name: legacy, creationTimestamp: '2026-12-01T00:00:00Z'}}\nspec: {{profile: prod, namespaces: {{names: [shop]}}, reason: migration, expires: '2026-12-20T00:00:00Z', {yaml}}}"
    );
    Arc::new(serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("fixture: {e}\n{yaml}")))
}

#[test]
fn exceptions_in_force_waive_and_replace_and_end_on_time() {
    let owner = profile("prod", &format!("{QUOTA}{BINDING}{LABELS}"));
    let profiles = [owner];
    let exceptions = [exception(
        "waive: {roleBindings: [view], podSecurity: true}, replace: {resourceQuota: {hard: {pods: '20'}}}",
    )];
    let live = BTreeMap::from([(binding(), live("prod", false))]);
    let owned = namespace(
        json!({"tier": "prod", "pod-security.kubernetes.io/enforce": "restricted"}),
        json!({POD_SECURITY_ANNOTATION: "pod-security.kubernetes.io/enforce", PROFILE_LABEL: "prod", DELETION_POLICY_ANNOTATION: "Delete"}),
    );
    let plan_at = |now: &str, grants: &AuthorRights| {
        let input = PlanInput {
            namespace: &owned,
            profiles: &profiles,
            selection: &SelectionContext::default(),
            render: &RenderOptions::default(),
            live: &live,
            schedules_served: true,
            grants,
            exceptions: &exceptions,
            now: now.parse().expect("a timestamp"),
            exception_settings: &ExceptionSettings::default(),
        };
        plan_namespace(&input, &Record::default())
    };

    let plan = plan_at("2026-12-02T00:00:00Z", &AuthorRights::Enforced);
    assert_eq!(plan.exceptions.names(), ["legacy"]);
    assert_eq!(
        plan.exceptions.ends,
        Some("2026-12-20T00:00:00Z".parse().expect("a timestamp"))
    );
    assert_eq!(
        steps(&plan),
        [
            ("baseliner-quota".to_owned(), Step::Create),
            ("baseliner-view".to_owned(), Step::Prune),
        ],
        "the waived binding is pruned, the quota kept"
    );
    let quota_body = plan.objects[0]
        .desired
        .as_ref()
        .expect("desired")
        .body
        .clone();
    assert_eq!(
        quota_body["spec"]["hard"]["pods"], "20",
        "the replacement value"
    );
    assert!(
        matches!(plan.labels, LabelStep::Release { orphan: false, .. }),
        "waived Pod Security labels are given up: {:?}",
        plan.labels
    );

    // At the expiry the profile applies whole again.
    let plan = plan_at("2026-12-20T00:00:00Z", &AuthorRights::Enforced);
    assert!(plan.exceptions.is_empty());
    assert_eq!(
        steps(&plan),
        [
            ("baseliner-quota".to_owned(), Step::Create),
            ("baseliner-view".to_owned(), Step::NeedsRead),
        ]
    );
    assert_eq!(
        plan.objects[0].desired.as_ref().expect("desired").body["spec"]["hard"]["pods"],
        "10"
    );
    assert!(
        matches!(&plan.labels, LabelStep::Apply { body, .. }
            if body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"),
        "Pod Security is set again: {:?}",
        plan.labels
    );

    // Without the author-rights policy no exception is honoured.
    let held = AuthorRights::NotEnforced("not installed".to_owned());
    let plan = plan_at("2026-12-02T00:00:00Z", &held);
    assert!(plan.exceptions.is_empty());
    assert_eq!(
        plan.objects[0].desired.as_ref().expect("desired").body["spec"]["hard"]["pods"],
        "10"
    );
}
