//! Does a live object already hold what we would apply?
//!
//! The API server adds defaults (a NetworkPolicy port's protocol, a
//! Namespace's `kubernetes.io/metadata.name` label) and canonicalises
//! quantities (`1000m` becomes `1`), and other tools may add fields of their
//! own. So an object is in sync when every field we set is present in the
//! live object with an equal value; anything else in the live object is not
//! ours to judge.

use serde_json::Value;

/// True when every field of `desired` appears in `live` with an equal value.
/// Lists must match element by element (we own whole lists).
pub fn desired_matches_live(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            have.get(key)
                .is_some_and(|live| desired_matches_live(value, live))
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len()
                && want
                    .iter()
                    .zip(have)
                    .all(|(w, h)| desired_matches_live(w, h))
        }
        (Value::String(want), Value::String(have)) => want == have || quantities_equal(want, have),
        (want, have) => want == have,
    }
}

/// Paths within an object that the comparison must look at. Status and the
/// server-managed parts of metadata are never ours.
pub fn comparable_part(object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    let mut meta = serde_json::Map::new();
                    for field in [
                        "name",
                        "namespace",
                        "labels",
                        "annotations",
                        "ownerReferences",
                    ] {
                        if let Some(v) = value.get(field) {
                            meta.insert(field.to_owned(), v.clone());
                        }
                    }
                    out.insert(key.clone(), Value::Object(meta));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn quantities_equal(a: &str, b: &str) -> bool {
    match (parse_quantity_nanos(a), parse_quantity_nanos(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A Kubernetes quantity in billionths of its unit, or None when it is not a
/// quantity we can represent exactly (then strings must match verbatim).
pub fn parse_quantity_nanos(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
        || fraction.len() > 9
    {
        return None;
    }
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    // The value is digits / 10^fraction_len * multiplier, computed in nanos.
    let scale = 10i128.pow(fraction.len() as u32);
    let nanos_per_unit: i128 = match suffix {
        "" => 1_000_000_000,
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "k" => 1_000_000_000_000,
        "M" => 10i128.pow(15),
        "G" => 10i128.pow(18),
        "T" => 10i128.pow(21),
        "P" => 10i128.pow(24),
        "E" => 10i128.pow(27),
        "Ki" => 1_000_000_000 << 10,
        "Mi" => 1_000_000_000 << 20,
        "Gi" => 1_000_000_000 << 30,
        "Ti" => 1_000_000_000 << 40,
        "Pi" => 1_000_000_000 << 50,
        "Ei" => 1_000_000_000 << 60,
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: u32 = exponent[1..].parse().ok()?;
            10i128.checked_pow(power)?.checked_mul(1_000_000_000)?
        }
        _ => return None,
    };
    let total = digits.checked_mul(nanos_per_unit)?;
    if total % scale != 0 {
        return None;
    }
    let value = total / scale;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_rules() {
        let cases = [
            (json!({"a": 1}), json!({"a": 1, "b": 2}), true),
            (json!({"a": 1, "c": 3}), json!({"a": 1, "b": 2}), false),
            (json!({"a": {"x": "1"}}), json!({"a": {"x": "2"}}), false),
            (json!({"l": [1, 2]}), json!({"l": [1, 2]}), true),
            (json!({"l": [1, 2]}), json!({"l": [2, 1]}), false),
            (json!({"l": [1]}), json!({"l": [1, 2]}), false),
            (
                json!({"l": [{"port": 53}]}),
                json!({"l": [{"port": 53, "protocol": "TCP"}]}),
                true,
            ),
            (json!({"cpu": "1000m"}), json!({"cpu": "1"}), true),
            (
                json!({"memory": "1Gi"}),
                json!({"memory": "1073741824"}),
                true,
            ),
            (json!({"memory": "1Gi"}), json!({"memory": "1G"}), false),
            (json!({"name": "view"}), json!({"name": "edit"}), false),
            (json!({"v": null}), json!({}), false),
        ];
        for (desired, live, expected) in cases {
            assert_eq!(
                desired_matches_live(&desired, &live),
                expected,
                "{desired} vs {live}"
            );
        }
    }

    #[test]
    fn quantities() {
        let cases = [
            ("1", Some(1_000_000_000)),
            ("500m", Some(500_000_000)),
            ("0.5", Some(500_000_000)),
            ("1.5Gi", Some(1_000_000_000i128 * 3 * (1 << 29))),
            ("2k", Some(2_000_000_000_000)),
            ("1e3", Some(1_000_000_000_000)),
            ("-1", Some(-1_000_000_000)),
            ("abc", None),
            ("", None),
            ("1Xi", None),
            ("0.0000000001", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_quantity_nanos(text), expected, "{text}");
        }
    }

    #[test]
    fn comparable_part_drops_server_fields() {
        let live = json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "x", "resourceVersion": "7", "uid": "u", "labels": {"a": "b"}},
            "spec": {"limits": []}, "status": {"x": 1}
        });
        assert_eq!(
            comparable_part(&live),
            json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"limits": []}})
        );
    }
}
