//! Bad input in `spec.networkPolicy`: CIDRs and excepts, allow names, DNS,
//! lists over their limits.

use std::collections::BTreeMap;

use super::table::{Accepted, Check, Expect, Refused, accepted, many, refused};

/// Hostile profiles the API server accepts and the operator must handle.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    vec![accepted(
        "cidr-host-bits",
        "  networkPolicy:\n    allowEgressTo:\n      - {name: corp, cidrs: [\"10.1.2.3/8\"]}\n",
        BTreeMap::new(),
        Expect::Compliant(Check::CanonicalCidr),
    )]
}

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![
        refused(
            "cidr-prefix-leading-zero",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"10.0.0.0/08\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        refused(
            "cidr-ipv4-mapped",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"::ffff:10.0.0.0/104\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        refused(
            "cidr-zone",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"fe80::1%eth0/64\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        refused(
            "except-not-cidr",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [10.0.0.0/8], except: [10.1.0.0]}]\n",
            "spec.networkPolicy.allowEgressTo[0].except",
        ),
        refused(
            "egress-cidrs-33",
            &format!(
                "  networkPolicy:\n    allowEgressTo: [{{name: a, cidrs: [{}]}}]\n",
                many(33, &|i| format!("10.{i}.0.0/16"))
            ),
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        refused(
            "ingress-namespaces-65",
            &format!(
                "  networkPolicy:\n    allowIngressFrom: [{{name: a, namespaces: [{}]}}]\n",
                many(65, &|i| format!("ns-{i}"))
            ),
            "spec.networkPolicy.allowIngressFrom[0].namespaces",
        ),
        refused(
            "allow-name-injection",
            "  networkPolicy:\n    allowEgressTo: [{name: \"../../etc\", cidrs: [10.0.0.0/8]}]\n",
            "spec.networkPolicy.allowEgressTo[0].name",
        ),
        refused(
            "dns-namespace-invalid",
            "  networkPolicy:\n    allowDNS: true\n    dns: {namespace: Kube-System}\n",
            "spec.networkPolicy.dns.namespace",
        ),
        refused(
            "dns-pod-labels-empty",
            "  networkPolicy:\n    allowDNS: true\n    dns: {podLabels: {}}\n",
            "spec.networkPolicy.dns.podLabels",
        ),
        refused(
            "default-deny-as-string",
            "  networkPolicy: {defaultDeny: \"no\"}\n",
            "spec.networkPolicy.defaultDeny",
        ),
    ]
}
