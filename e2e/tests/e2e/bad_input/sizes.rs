//! Names at their maximum lengths and lists at their maximum sizes, all
//! parts of the profile at once: everything is written, and every derived
//! name fits. (Each part's own file has the lists and names one over.)

use std::collections::BTreeMap;

use baseliner_e2e::random_name;
use serde_json::json;

use super::table::{Accepted, Check, Expect, accepted, team_labels};

/// Profiles at the limits, which the API server accepts and the operator
/// must apply whole.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    // Names at their limits: a 63-character profile and namespace (the
    // Schedule name must still fit in 63), a 50-character binding name, and
    // 40-character allow names (NetworkPolicy names must fit too).
    let long = |prefix: &str, len: usize| -> String {
        let mut name = prefix.to_owned();
        while name.len() < len {
            name.push(char::from(b'a' + (name.len() % 26) as u8));
        }
        name
    };
    let mut max = accepted(
        "max-lengths",
        &format!(
            "  networkPolicy:\n    allowIngressFrom:\n      - {{name: {}, namespaces: [kube-system]}}\n    allowEgressTo:\n      - {{name: {}, cidrs: [10.0.0.0/8]}}\n  roleBindings:\n    - name: {}\n      clusterRole: view\n      subjects: [{{kind: Group, name: \"{}\"}}]\n  backup:\n    schedule: \"@daily\"\n",
            long("in", 40),
            long("out", 40),
            long("rb", 50),
            "g".repeat(253),
        ),
        BTreeMap::new(),
        Expect::Compliant(Check::MaxLengths),
    );
    max.namespace_prefix = Some(long("bad-max-", 60));
    max.profile_name = Some(format!(
        "{}-{}",
        long("bad-max", 54),
        &random_name("x")[2..]
    ));

    // Lists at their maximum sizes.
    let subjects: Vec<String> = (0..32)
        .map(|j| format!("{{kind: Group, name: \"g-{j}-{{{{labels.team}}}}\"}}"))
        .collect();
    let bindings: String = (0..32)
        .map(|i| {
            format!(
                "    - name: b{i}\n      clusterRole: {}\n      subjects: [{}]\n",
                ["view", "edit", "admin"][i % 3],
                subjects.join(", ")
            )
        })
        .collect();
    let namespaces: Vec<String> = (0..64).map(|i| format!("peer-{i}")).collect();
    let ports: Vec<String> = (0..32).map(|i| format!("{{port: {}}}", 8000 + i)).collect();
    let ingress: String = (0..32)
        .map(|i| {
            format!(
                "      - name: from{i}\n        namespaces: [{}]\n        ports: [{}]\n",
                namespaces.join(", "),
                ports.join(", ")
            )
        })
        .collect();
    let cidrs: Vec<String> = (0..32).map(|i| format!("10.{i}.0.0/16")).collect();
    let excepts: Vec<String> = (0..32).map(|i| format!("10.{i}.1.0/24")).collect();
    let egress: String = (0..32)
        .map(|i| {
            format!(
                "      - name: to{i}\n        cidrs: [{}]\n        except: [{}]\n",
                cidrs.join(", "),
                excepts.join(", ")
            )
        })
        .collect();
    let quota: Vec<String> = (0..64)
        .map(|i| format!("count/things{i}.example.com: \"{i}\""))
        .collect();
    let names: Vec<String> = (0..256).map(|i| format!("unused-{i}")).collect();
    let mut huge = accepted(
        "huge-lists",
        &format!(
            "  networkPolicy:\n    allowIngressFrom:\n{ingress}    allowEgressTo:\n{egress}  resourceQuota:\n    hard: {{{}}}\n  roleBindings:\n{bindings}",
            quota.join(", ")
        ),
        team_labels(),
        Expect::Compliant(Check::HugeLists),
    );
    // 256 names that exist nowhere, in include and in exclude.
    huge.profile["spec"]["namespaces"] = json!({"include": names, "exclude": names});
    vec![max, huge]
}
