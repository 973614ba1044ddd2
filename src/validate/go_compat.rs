//! Where kube's CEL library and the API server's disagree, the API server's
//! answer for the CEL functions the CRD's rules use.
//!
//! The API server evaluates `isCIDR` with Go's `netip.ParsePrefix`,
//! `isQuantity` / `quantity()` with `resource.ParseQuantity`, and
//! `duration()` with `time.ParseDuration`. kube's CEL library is close but not
//! the same: it accepts `010.0.0.0/8` and `10.0.0.0/08` (Go refuses leading
//! zeros), `" 1"` (it trims spaces), and durations past Go's ~2562047h; it
//! refuses `.` and `+` (Go reads both as 0). Without this module the offline
//! verdict would differ from the API server's on exactly those inputs.
//!
//! Go's rules themselves are [`crate::syntax`]'s; this module applies them
//! around the CEL stage in two passes: [`canonicalize_quantities`] rewrites a
//! quantity Go accepts but kube's library would not into an equal one both
//! read (for evaluation only), and [`strict_problems`] reports, at the rule
//! stage and with the rule's own message, a value kube's library let through
//! but Go refuses.

use serde_json::Value;

use super::problem::{Problem, Stage, join_index, join_key, join_property};
use crate::syntax::{Cidr, parse_duration, parse_quantity};

/// The maps whose values the CRD checks with `isQuantity`.
const QUANTITY_MAPS: [&str; 5] = [
    "/spec/limitRange/defaultRequest",
    "/spec/limitRange/default",
    "/spec/limitRange/min",
    "/spec/limitRange/max",
    "/spec/resourceQuota/hard",
];

/// Rewrites, in the copy CEL evaluates, quantities Go accepts that kube's
/// library would refuse. `kube_accepts` is kube's `isQuantity`.
pub(crate) fn canonicalize_quantities(value: &mut Value, kube_accepts: impl Fn(&str) -> bool) {
    for pointer in QUANTITY_MAPS {
        let Some(map) = value.pointer_mut(pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        for entry in map.values_mut() {
            let Some(text) = entry.as_str() else { continue };
            if kube_accepts(text) {
                continue;
            }
            if let Some(canonical) = parse_quantity(text).ok().and_then(|q| q.canonical()) {
                *entry = Value::String(canonical);
            }
        }
    }
}

/// Problems Go's functions find that kube's let through, at the rule stage,
/// skipping fields `already` names (the CEL stage reported them).
pub(crate) fn strict_problems(
    value: &Value,
    schema: &Value,
    already: &[Problem],
    kube_accepts_quantity: impl Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |path: String, rule_hint: &str, schema_pointer: &str| {
        if already.iter().any(|p| p.path == path)
            || problems.iter().any(|p: &Problem| p.path == path)
        {
            return;
        }
        let message = rule_message(schema, schema_pointer, rule_hint)
            .unwrap_or_else(|| format!("the API server's {rule_hint} refuses this value"));
        problems.push(Problem::new(&path, message).at(Stage::Rule));
    };

    for pointer in QUANTITY_MAPS {
        let Some(map) = value.pointer(pointer).and_then(Value::as_object) else {
            continue;
        };
        let path = pointer_to_path(pointer);
        for text in map.values().filter_map(Value::as_str) {
            if parse_quantity(text).is_err() && kube_accepts_quantity(text) {
                report(path.clone(), "isQuantity", &schema_pointer(pointer));
            }
        }
    }

    let egress = value
        .pointer("/spec/networkPolicy/allowEgressTo")
        .and_then(Value::as_array);
    for (index, allow) in egress.into_iter().flatten().enumerate() {
        for field in ["cidrs", "except"] {
            let texts = allow.get(field).and_then(Value::as_array);
            if texts
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|text| text.parse::<Cidr>().is_err())
            {
                let path = join_property(
                    &join_index("spec.networkPolicy.allowEgressTo", index),
                    field,
                );
                let pointer = format!(
                    "/properties/spec/properties/networkPolicy/properties/allowEgressTo/items/properties/{field}"
                );
                report(path, "isCIDR", &pointer);
            }
        }
    }

    if let Some(ttl) = value.pointer("/spec/backup/ttl").and_then(Value::as_str)
        && parse_duration(ttl).is_err()
    {
        report(
            "spec.backup.ttl".to_owned(),
            "duration(",
            "/properties/spec/properties/backup/properties/ttl",
        );
    }
    problems
}

/// `/spec/limitRange/min` → `spec.limitRange.min`.
fn pointer_to_path(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .fold(String::new(), |path, part| join_key(&path, part))
}

/// `/spec/limitRange/min` → the schema node of that field.
fn schema_pointer(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|part| format!("/properties/{part}"))
        .collect()
}

/// The message of the rule at `pointer` (in the CRD schema) that uses `hint`.
fn rule_message(schema: &Value, pointer: &str, hint: &str) -> Option<String> {
    schema
        .pointer(pointer)?
        .get("x-kubernetes-validations")?
        .as_array()?
        .iter()
        .find(|rule| rule["rule"].as_str().is_some_and(|r| r.contains(hint)))?
        .get("message")?
        .as_str()
        .map(str::to_owned)
}

/// kube's CEL `isQuantity`, which the offline CEL stage uses.
pub(crate) fn kube_is_quantity(text: &str) -> bool {
    use kube::core::cel::KubeCelExt;
    use kube::core::cel::cel::{Context, Program, Value as CelValue};
    static PROGRAM: std::sync::LazyLock<Option<Program>> =
        std::sync::LazyLock::new(|| Program::compile("isQuantity(a)").ok());
    let Some(program) = PROGRAM.as_ref() else {
        return false;
    };
    let mut context = Context::default().with_all();
    context.add_variable_from_value("a", text.to_owned());
    matches!(program.execute(&context), Ok(CelValue::Bool(true)))
}
