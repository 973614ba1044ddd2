//! NetworkPolicies: default-deny, the DNS and same-namespace allows, and
//! one policy per ingress or egress allow of the profile.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec as K8sNetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::{NAME_PREFIX, RenderContext, RenderProblem};
use crate::api::{
    EgressAllow, IngressAllow, NAMESPACE_NAME_LABEL, NetworkPolicySpec, PortSpec, Protocol,
};
use crate::reason::Reason;
use crate::syntax::Cidr;

/// Name of the default-deny NetworkPolicy.
pub const DEFAULT_DENY_POLICY: &str = "baseliner-default-deny";
/// Name of the NetworkPolicy allowing DNS egress.
pub const ALLOW_DNS_POLICY: &str = "baseliner-allow-dns";
/// Name of the NetworkPolicy allowing traffic inside the namespace.
pub const ALLOW_SAME_NAMESPACE_POLICY: &str = "baseliner-allow-same-namespace";

const INGRESS: &str = "Ingress";
const EGRESS: &str = "Egress";

pub(crate) fn render_network_policies(
    context: &RenderContext,
    spec: &NetworkPolicySpec,
    problems: &mut Vec<RenderProblem>,
) -> Vec<NetworkPolicy> {
    let mut policies = Vec::new();
    if spec.default_deny {
        policies.push(network_policy(
            context,
            DEFAULT_DENY_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                policy_types: Some(policy_types(&[INGRESS, EGRESS])),
                ..all_pods()
            },
        ));
    }
    if spec.allow_dns {
        let dns = spec.dns.clone().unwrap_or_default();
        policies.push(network_policy(
            context,
            ALLOW_DNS_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(match_labels(BTreeMap::from([(
                            NAMESPACE_NAME_LABEL.to_owned(),
                            dns.namespace,
                        )]))),
                        pod_selector: Some(match_labels(dns.pod_labels)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![
                        network_policy_port(53, None, "UDP"),
                        network_policy_port(53, None, "TCP"),
                    ]),
                }]),
                policy_types: Some(policy_types(&[EGRESS])),
                ..all_pods()
            },
        ));
    }
    if spec.allow_same_namespace {
        let same_namespace = || {
            Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..NetworkPolicyPeer::default()
            }])
        };
        policies.push(network_policy(
            context,
            ALLOW_SAME_NAMESPACE_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: same_namespace(),
                    ports: None,
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: same_namespace(),
                    ports: None,
                }]),
                policy_types: Some(policy_types(&[INGRESS, EGRESS])),
                ..all_pods()
            },
        ));
    }
    for allow in &spec.allow_ingress_from {
        policies.push(render_ingress_allow(context, allow));
    }
    for (index, allow) in spec.allow_egress_to.iter().enumerate() {
        let field = format!("spec.networkPolicy.allowEgressTo[{index}]");
        match render_egress_allow(context, allow, &field) {
            Ok(policy) => policies.push(policy),
            Err(problem) => problems.push(problem),
        }
    }
    policies
}

fn render_ingress_allow(context: &RenderContext, allow: &IngressAllow) -> NetworkPolicy {
    // One peer per way of naming namespaces: peers are ORed, so a pod is
    // allowed when its namespace matches the selector or is named.
    let mut peers = Vec::new();
    if let Some(selector) = &allow.namespace_selector {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(selector.clone()),
            pod_selector: allow.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    if !allow.namespaces.is_empty() {
        let names: BTreeSet<&String> = allow.namespaces.iter().collect();
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAMESPACE_NAME_LABEL.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(names.into_iter().cloned().collect()),
                }]),
                match_labels: None,
            }),
            pod_selector: allow.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    network_policy(
        context,
        format!("{NAME_PREFIX}allow-from-{}", allow.name),
        K8sNetworkPolicySpec {
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(peers),
                ports: network_policy_ports(&allow.ports),
            }]),
            policy_types: Some(policy_types(&[INGRESS])),
            ..all_pods()
        },
    )
}

fn render_egress_allow(
    context: &RenderContext,
    allow: &EgressAllow,
    field: &str,
) -> Result<NetworkPolicy, RenderProblem> {
    let parse = |text: &str, field: String| {
        text.parse::<Cidr>().map_err(|error| RenderProblem {
            reason: Reason::InvalidCidr,
            field,
            message: error.to_string(),
        })
    };
    let cidrs = allow
        .cidrs
        .iter()
        .enumerate()
        .map(|(index, text)| parse(text, format!("{field}.cidrs[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let excepts = allow
        .except
        .iter()
        .enumerate()
        .map(|(index, text)| parse(text, format!("{field}.except[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;

    let mut peers = Vec::new();
    for cidr in cidrs {
        // A range excepted as a whole allows nothing; leaving it out is what
        // the profile means (the API would refuse an except equal to its cidr).
        if excepts.iter().any(|except| except.covers(cidr)) {
            continue;
        }
        // The API requires each except to lie strictly inside its cidr;
        // excepts outside it deny nothing this block allows.
        let inside: Vec<String> = excepts
            .iter()
            .filter(|except| cidr.strictly_covers(**except))
            .map(Cidr::to_string)
            .collect();
        peers.push(NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_string(),
                except: (!inside.is_empty()).then_some(inside),
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    // An egress rule with no peers would allow every destination.
    if peers.is_empty() {
        return Err(RenderProblem {
            reason: Reason::EgressAllowsNothing,
            field: format!("{field}.except"),
            message: "every CIDR is excepted as a whole, so nothing would be allowed".to_owned(),
        });
    }
    Ok(network_policy(
        context,
        format!("{NAME_PREFIX}allow-to-{}", allow.name),
        K8sNetworkPolicySpec {
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(peers),
                ports: network_policy_ports(&allow.ports),
            }]),
            policy_types: Some(policy_types(&[EGRESS])),
            ..all_pods()
        },
    ))
}

fn network_policy(
    context: &RenderContext,
    name: String,
    spec: K8sNetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: context.metadata(name),
        spec: Some(spec),
    }
}

/// A policy spec selecting every pod in the namespace. `podSelector: {}` is
/// written out: it is the field that says "all pods".
fn all_pods() -> K8sNetworkPolicySpec {
    K8sNetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        ..K8sNetworkPolicySpec::default()
    }
}

fn policy_types(types: &[&str]) -> Vec<String> {
    types.iter().map(|t| (*t).to_owned()).collect()
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

fn network_policy_ports(ports: &[PortSpec]) -> Option<Vec<NetworkPolicyPort>> {
    // No ports means all ports; an empty list would mean the same but is
    // not what the API returns, so it is left out.
    (!ports.is_empty()).then(|| {
        ports
            .iter()
            .map(|port| network_policy_port(port.port, port.end_port, protocol_name(port.protocol)))
            .collect()
    })
}

fn network_policy_port(port: i32, end_port: Option<i32>, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        end_port,
        protocol: Some(protocol.to_owned()),
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::render::fixtures::*;

    fn network_policies_render_exactly_table_1() -> Vec<(&'static str, Value)> {
        let cases: Vec<(&str, Value)> = vec![
            (
                "baseliner-default-deny",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                }),
            ),
            (
                "baseliner-allow-dns",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                    }],
                }),
            ),
            (
                "baseliner-allow-same-namespace",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                    "egress": [{"to": [{"podSelector": {}}]}],
                }),
            ),
            (
                "baseliner-allow-from-ingress",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [
                            {
                                "namespaceSelector": {"matchLabels": {"role": "ingress"}},
                                "podSelector": {"matchLabels": {"app": "proxy"}},
                            },
                            {
                                "namespaceSelector": {"matchExpressions": [{
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": ["ingress-nginx", "monitoring"],
                                }]},
                                "podSelector": {"matchLabels": {"app": "proxy"}},
                            },
                        ],
                        "ports": [
                            {"port": 8080, "protocol": "TCP"},
                            {"port": 9000, "endPort": 9100, "protocol": "UDP"},
                        ],
                    }],
                }),
            ),
        ];
        cases
    }

    fn network_policies_render_exactly_table_2() -> Vec<(&'static str, Value)> {
        let cases: Vec<(&str, Value)> = vec![
            (
                "baseliner-allow-from-all-from-ops",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [{
                            "namespaceSelector": {"matchExpressions": [{
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": ["ops"],
                            }]},
                        }],
                    }],
                }),
            ),
            (
                "baseliner-allow-to-db",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [
                            {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.5.0/24"]}},
                            {"ipBlock": {"cidr": "192.168.1.0/24"}},
                            {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:ff::/48"]}},
                        ],
                        "ports": [{"port": 5432, "protocol": "TCP"}],
                    }],
                }),
            ),
        ];
        cases
    }

    #[test]
    fn network_policies_render_exactly() {
        let cases: Vec<(&'static str, Value)> = [
            network_policies_render_exactly_table_1(),
            network_policies_render_exactly_table_2(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let spec = format!(
            "{SELECT_ALL}  networkPolicy:
    allowDNS: true
    allowSameNamespace: true
    allowIngressFrom:
      - name: ingress
        namespaceSelector:
          matchLabels: {{role: ingress}}
        namespaces: [monitoring, ingress-nginx, monitoring]
        podSelector:
          matchLabels: {{app: proxy}}
        ports: [{{port: 8080}}, {{port: 9000, endPort: 9100, protocol: UDP}}]
      - name: all-from-ops
        namespaces: [ops]
    allowEgressTo:
      - name: db
        cidrs: [10.20.0.0/16, 192.168.1.7/24, 2001:DB8::/32]
        except: [10.20.5.0/24, 172.16.0.0/12, 2001:db8:ff::/48]
        ports: [{{port: 5432}}]
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(rendered.problems, vec![]);
        assert_eq!(
            rendered.objects.len(),
            cases.len(),
            "{:?}",
            names(&rendered)
        );
        for (name, spec) in cases {
            assert_eq!(
                object(&rendered, name),
                json!({
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": metadata(name),
                    "spec": spec,
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn dns_target_can_be_overridden() {
        let spec = format!(
            "{SELECT_ALL}  networkPolicy:
    defaultDeny: false
    allowDNS: true
    dns: {{namespace: dns-system, podLabels: {{app: coredns}}}}
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(names(&rendered), vec!["NetworkPolicy/baseliner-allow-dns"]);
        assert_eq!(
            object(&rendered, ALLOW_DNS_POLICY)["spec"]["egress"][0]["to"],
            json!([{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns-system"}},
                "podSelector": {"matchLabels": {"app": "coredns"}},
            }])
        );
    }

    #[test]
    fn network_policy_defaults_render_only_default_deny() {
        let rendered = render(
            &profile(&format!("{SELECT_ALL}  networkPolicy: {{}}\n")),
            &namespace("shop", &[]),
        );
        assert_eq!(
            names(&rendered),
            vec!["NetworkPolicy/baseliner-default-deny"]
        );
    }

    /// The reason and field of the one problem a case expects.
    type ExpectedProblem = (&'static str, &'static str);

    #[test]
    fn egress_allow_cases() {
        let cases: Vec<(&str, &str, Result<Value, ExpectedProblem>)> = vec![
            (
                "except covering a whole cidr removes that cidr",
                "cidrs: [10.0.0.0/8, 192.168.0.0/16], except: [10.0.0.0/8]",
                Ok(json!([{"ipBlock": {"cidr": "192.168.0.0/16"}}])),
            ),
            (
                "except wider than a cidr removes that cidr",
                "cidrs: [10.1.0.0/16, 192.168.0.0/16], except: [10.0.0.0/8]",
                Ok(json!([{"ipBlock": {"cidr": "192.168.0.0/16"}}])),
            ),
            (
                "except applies to every cidr it lies in",
                "cidrs: [10.0.0.0/8, 10.1.0.0/16], except: [10.1.2.0/24, 0.0.0.0/32]",
                Ok(json!([
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.2.0/24"]}},
                    {"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}},
                ])),
            ),
            (
                "the whole internet with private ranges excepted",
                "cidrs: [0.0.0.0/0], except: [10.0.0.0/8, 172.16.0.0/12]",
                Ok(
                    json!([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}}]),
                ),
            ),
            (
                "an IPv6 except never applies to an IPv4 cidr",
                "cidrs: [0.0.0.0/0], except: ['::/0']",
                Ok(json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}])),
            ),
            (
                "nothing left to allow",
                "cidrs: [10.1.0.0/16], except: [10.0.0.0/8]",
                Err((
                    "EgressAllowsNothing",
                    "spec.networkPolicy.allowEgressTo[0].except",
                )),
            ),
            (
                "cidr without prefix",
                "cidrs: [10.0.0.0/8, 10.0.0.1]",
                Err((
                    "InvalidCIDR",
                    "spec.networkPolicy.allowEgressTo[0].cidrs[1]",
                )),
            ),
            (
                "prefix too long",
                "cidrs: [10.0.0.0/8], except: [10.0.0.0/33]",
                Err((
                    "InvalidCIDR",
                    "spec.networkPolicy.allowEgressTo[0].except[0]",
                )),
            ),
        ];
        for (case, allow, expected) in cases {
            let spec = format!(
                "{SELECT_ALL}  networkPolicy:\n    defaultDeny: false\n    allowEgressTo:\n      - {{name: out, {allow}}}\n"
            );
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            match expected {
                Ok(peers) => {
                    assert_eq!(rendered.problems, vec![], "{case}");
                    assert_eq!(
                        object(&rendered, "baseliner-allow-to-out")["spec"]["egress"][0]["to"],
                        peers,
                        "{case}"
                    );
                }
                Err((reason, field)) => {
                    assert_eq!(rendered.objects, vec![], "{case}");
                    assert_eq!(rendered.problems.len(), 1, "{case}");
                    assert_eq!(rendered.problems[0].reason, reason, "{case}");
                    assert_eq!(rendered.problems[0].field, field, "{case}");
                }
            }
        }
    }
}
