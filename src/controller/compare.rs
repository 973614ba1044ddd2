//! Does a live object already hold what we would apply?
//!
//! The API server adds defaults (a NetworkPolicy port's protocol, a
//! Namespace's `kubernetes.io/metadata.name` label) and canonicalises
//! quantities (`1000m` becomes `1`), and other tools may add fields of their
//! own. So an object is in sync when every field we set is present in the
//! live object with an equal value; anything else in the live object is not
//! ours to judge. Quantities are compared by value, as
//! [`crate::syntax`] reads them.

use serde_json::Value;

use crate::syntax::quantities_equal;

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
