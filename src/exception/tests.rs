use super::*;

fn profile(yaml: &str) -> ProductionProfile {
    let spec: ProductionProfileSpec =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut profile = ProductionProfile::new("strict", spec);
    profile.metadata.generation = Some(1);
    profile
}

const STRICT: &str = r#"
namespaces: {selector: {}}
networkPolicy:
  allowDNS: true
  allowIngressFrom: [{name: ingress, namespaces: [ingress-nginx]}]
limitRange: {default: {cpu: 500m}}
resourceQuota: {hard: {requests.cpu: "8", pods: "50"}}
podSecurity: {enforce: restricted}
roleBindings: [{name: viewers, clusterRole: view, subjects: [{kind: Group, name: team}]}]
"#;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

fn exception(name: &str, created: &str, yaml: &str) -> ProfileException {
    let spec: ProfileExceptionSpec =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut exception = ProfileException::new(name, spec);
    exception.metadata.creation_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(created)),
    );
    exception
}

fn legacy(waive: &str) -> ProfileException {
    exception(
        "legacy",
        "2026-12-01T00:00:00Z",
        &format!(
            "{{profile: strict, namespaces: {{names: [legacy]}}, reason: migration, expires: '2026-12-20T00:00:00Z', {waive}}}"
        ),
    )
}

#[test]
fn phases_follow_the_clock() {
    let strict = profile(STRICT);
    let e = legacy("waive: {defaultDeny: true}");
    let settings = ExceptionSettings::default();
    let cases = [
        (
            "2026-12-01T00:00:00Z",
            Phase::InForce,
            Some("2026-12-17T00:00:00Z"),
        ),
        (
            "2026-12-17T00:00:00Z",
            Phase::ExpiringSoon,
            Some("2026-12-20T00:00:00Z"),
        ),
        (
            "2026-12-19T23:59:59Z",
            Phase::ExpiringSoon,
            Some("2026-12-20T00:00:00Z"),
        ),
        ("2026-12-20T00:00:00Z", Phase::Expired, None),
    ];
    for (now, phase, next) in cases {
        let assessment = assess(&e, Some(&strict), at(now), &settings);
        assert_eq!(assessment.phase, phase, "at {now}");
        assert_eq!(assessment.next_change, next.map(at), "at {now}");
    }
}

#[test]
fn problems_name_the_field_and_keep_it_out_of_force() {
    let strict = profile(STRICT);
    let settings = ExceptionSettings::default();
    let now = at("2026-12-02T00:00:00Z");
    let cases: [(&str, Option<&ProductionProfile>, &str, &str); 6] = [
        (
            "waive: {defaultDeny: true}",
            None,
            "spec.profile",
            "ProfileNotFound",
        ),
        (
            "waive: {backup: true}",
            Some(&strict),
            "spec.waive.backup",
            "ControlNotInProfile",
        ),
        (
            "waive: {roleBindings: [admins]}",
            Some(&strict),
            "spec.waive.roleBindings[0]",
            "ControlNotInProfile",
        ),
        (
            "waive: {allowIngressFrom: [monitoring]}",
            Some(&strict),
            "spec.waive.allowIngressFrom[0]",
            "ControlNotInProfile",
        ),
        (
            "replace: {resourceQuota: {hard: {limits.cpu: '4'}}}",
            Some(&strict),
            "spec.replace.resourceQuota.hard[limits.cpu]",
            "ControlNotInProfile",
        ),
        (
            "waive: {resourceQuota: true}, replace: {resourceQuota: {hard: {pods: '9'}}}",
            Some(&strict),
            "spec.replace.resourceQuota",
            "ControlNotInProfile",
        ),
    ];
    for (waive, profile, field, reason) in cases {
        let phase = assess(&legacy(waive), profile, now, &settings).phase;
        let Phase::Invalid(problems) = &phase else {
            panic!("{waive}: {phase:?}");
        };
        assert_eq!(problems[0].field, field, "{waive}");
        assert_eq!(phase.reason(), reason, "{waive}");
        assert!(!phase.in_force());
    }
    // Every control the profile has may be waived.
    let all = "waive: {defaultDeny: true, allowDNS: true, allowIngressFrom: [ingress], limitRange: true, podSecurity: true, roleBindings: [viewers]}, replace: {resourceQuota: {hard: {pods: '100'}}}";
    assert_eq!(
        assess(&legacy(all), Some(&strict), now, &settings).phase,
        Phase::InForce
    );
}

#[test]
fn expiry_is_bounded_from_creation() {
    let strict = profile(STRICT);
    let settings = ExceptionSettings {
        max_days: 10,
        ..Default::default()
    };
    // Created on the 1st, expiring on the 20th: 19 days.
    let phase = assess(
        &legacy("waive: {defaultDeny: true}"),
        Some(&strict),
        at("2026-12-02T00:00:00Z"),
        &settings,
    )
    .phase;
    let Phase::Invalid(problems) = &phase else {
        panic!("{phase:?}")
    };
    assert_eq!(problems[0].field, "spec.expires");
    assert!(
        problems[0].message.contains("19 days"),
        "{}",
        problems[0].message
    );
    assert_eq!(phase.reason(), "ExpiryTooFar");
    let settings = ExceptionSettings {
        max_days: 19,
        ..Default::default()
    };
    assert!(
        assess(
            &legacy("waive: {defaultDeny: true}"),
            Some(&strict),
            at("2026-12-02T00:00:00Z"),
            &settings
        )
        .phase
        .in_force()
    );
}

#[test]
fn covering_picks_this_profiles_in_force_exceptions_for_the_namespace() {
    let strict = profile(STRICT);
    let settings = ExceptionSettings::default();
    let by_label = exception(
        "by-label",
        "2026-12-01T00:00:00Z",
        "{profile: strict, namespaces: {selector: {matchLabels: {legacy: 'true'}}}, reason: r, expires: '2026-12-10T00:00:00Z', waive: {limitRange: true}}",
    );
    let other_profile = exception(
        "other",
        "2026-12-01T00:00:00Z",
        "{profile: light, namespaces: {names: [legacy]}, reason: r, expires: '2026-12-10T00:00:00Z', waive: {limitRange: true}}",
    );
    let invalid = exception(
        "invalid",
        "2026-12-01T00:00:00Z",
        "{profile: strict, namespaces: {names: [legacy]}, reason: r, expires: '2026-12-10T00:00:00Z', waive: {backup: true}}",
    );
    let all: Vec<Arc<ProfileException>> = [
        legacy("waive: {defaultDeny: true}"),
        by_label,
        other_profile,
        invalid,
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let now = at("2026-12-02T00:00:00Z");
    let found = covering(
        &all,
        &strict,
        &NamespaceInfo::new("legacy", &[("legacy", "true")]),
        now,
        &settings,
    );
    assert_eq!(found.names(), ["by-label", "legacy"]);
    assert_eq!(found.ends, Some(at("2026-12-10T00:00:00Z")));
    let found = covering(
        &all,
        &strict,
        &NamespaceInfo::new("legacy", &[]),
        now,
        &settings,
    );
    assert_eq!(found.names(), ["legacy"]);
    assert!(
        covering(
            &all,
            &strict,
            &NamespaceInfo::new("shop", &[]),
            now,
            &settings
        )
        .is_empty()
    );
    // After the expiry nothing covers it.
    assert!(
        covering(
            &all,
            &strict,
            &NamespaceInfo::new("legacy", &[("legacy", "true")]),
            at("2026-12-20T00:00:00Z"),
            &settings
        )
        .is_empty()
    );
}

#[test]
fn waived_spec_drops_waived_controls_and_replaces_quota_limits() {
    let strict = profile(STRICT);
    let waivers = [
        Arc::new(legacy(
            "waive: {defaultDeny: true, roleBindings: [viewers], podSecurity: true}, replace: {resourceQuota: {hard: {pods: '100'}}}",
        )),
        Arc::new(exception(
            "later",
            "2026-12-01T00:00:00Z",
            "{profile: strict, namespaces: {names: [legacy]}, reason: r, expires: '2026-12-10T00:00:00Z', replace: {resourceQuota: {hard: {pods: '70', requests.cpu: '16'}}}}",
        )),
    ];
    let spec = waived_spec(&strict.spec, &waivers);
    let network = spec.network_policy.as_ref().expect("network policy stays");
    assert!(!network.default_deny);
    assert!(network.allow_dns, "what is not waived stays");
    assert_eq!(network.allow_ingress_from.len(), 1);
    assert!(spec.role_bindings.is_empty());
    assert!(spec.pod_security.is_none());
    assert!(spec.limit_range.is_some());
    let hard = &spec.resource_quota.as_ref().expect("quota stays").hard;
    assert_eq!(hard["pods"], "100", "the first exception by name wins");
    assert_eq!(hard["requests.cpu"], "16");
    assert_eq!(waived_spec(&strict.spec, &[]), strict.spec);
    assert_eq!(
        describe_controls(&waivers[0].spec),
        [
            "default-deny",
            "Pod Security",
            "RoleBinding viewers",
            "quota pods replaced by 100"
        ]
    );
}
