//! The committed CRDs are the generated ones, and the generated ones are
//! structural schemas that document every field.

use std::path::Path;

use baseliner::cli::{CrdKind, crd_yaml};
use serde_json::Value;

/// Each CRD and where its committed copies are.
const COMMITTED: [(CrdKind, [&str; 2]); 2] = [
    (
        CrdKind::Productionprofiles,
        [
            "crds/baseliner.dev_productionprofiles.yaml",
            "config/crd/bases/baseliner.dev_productionprofiles.yaml",
        ],
    ),
    (
        CrdKind::Profileexceptions,
        [
            "crds/baseliner.dev_profileexceptions.yaml",
            "config/crd/bases/baseliner.dev_profileexceptions.yaml",
        ],
    ),
];

fn generated_kind(kind: CrdKind) -> String {
    crd_yaml(kind).expect("the CRD serializes to YAML")
}

fn generated() -> String {
    generated_kind(CrdKind::Productionprofiles)
}

fn schema_of(kind: CrdKind) -> Value {
    let crd: Value =
        serde_saphyr::from_str(&generated_kind(kind)).expect("the generated CRD parses");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .expect("the CRD has an openAPIV3Schema")
}

#[test]
fn committed_crds_are_current() {
    for (kind, files) in COMMITTED {
        let generated = generated_kind(kind);
        for file in files {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("cannot read {file}: {e}; run `make crd` to generate it")
            });
            assert!(
                committed == generated,
                "{file} is out of date with src/api.rs; run `make crd` and commit the result"
            );
        }
    }
}

#[test]
fn author_rights_policy_copy_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |file: &str| {
        std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
    };
    assert!(
        read("crds/baseliner.dev_author-rights.yaml")
            == read("config/crd/bases/baseliner.dev_author-rights.yaml"),
        "config/crd/bases/baseliner.dev_author-rights.yaml differs from crds/; run `make crd`"
    );
}

#[test]
fn crd_kustomization_lists_the_committed_copy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/crd/kustomization.yaml");
    let text = std::fs::read_to_string(path).expect("config/crd/kustomization.yaml exists");
    let kustomization: Value = serde_saphyr::from_str(&text).expect("it is YAML");
    let resources = kustomization["resources"]
        .as_array()
        .expect("it lists resources");
    assert!(resources.contains(&Value::from("bases/baseliner.dev_productionprofiles.yaml")));
    assert!(resources.contains(&Value::from("bases/baseliner.dev_profileexceptions.yaml")));
    assert!(resources.contains(&Value::from("bases/baseliner.dev_author-rights.yaml")));
}

/// Walks every schema node below `node`, calling `visit(path, node, is_property)`.
fn walk(node: &Value, path: &str, is_property: bool, visit: &mut dyn FnMut(&str, &Value, bool)) {
    visit(path, node, is_property);
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            walk(child, &format!("{path}.{name}"), true, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, &format!("{path}[]"), false, visit);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(values, &format!("{path}{{}}"), false, visit);
    }
}

#[test]
fn every_property_has_a_description() {
    for kind in [CrdKind::Productionprofiles, CrdKind::Profileexceptions] {
        every_property_of_has_a_description(kind);
    }
}

fn every_property_of_has_a_description(kind: CrdKind) {
    let mut missing = Vec::new();
    let mut properties = 0;
    walk(
        &schema_of(kind),
        "",
        true,
        &mut |path, node, is_property| {
            properties += usize::from(is_property);
            let described = node
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if is_property && !described {
                missing.push(path.to_owned());
            }
        },
    );
    assert!(properties > 20, "walked only {properties} properties");
    assert!(
        missing.is_empty(),
        "fields without a description (kubectl explain shows nothing): {missing:?}"
    );
}

/// The rules of a structural schema that apply to what kube generates:
/// every node has a type, no `$ref`, no logical junctors carrying types or
/// defaults, `items` is a single schema, `properties` and
/// `additionalProperties` are not mixed, and the root is not nullable.
#[test]
fn schema_is_structural() {
    for kind in [CrdKind::Productionprofiles, CrdKind::Profileexceptions] {
        schema_of_is_structural(schema_of(kind));
    }
}

fn schema_of_is_structural(root: Value) {
    assert_eq!(root["type"], "object");
    assert!(
        root.get("nullable").is_none(),
        "the root must not be nullable"
    );
    let mut problems = Vec::new();
    walk(&root, "", false, &mut |path, node, _| {
        let path = if path.is_empty() { "<root>" } else { path };
        let preserves = node.get("x-kubernetes-preserve-unknown-fields")
            == Some(&Value::Bool(true))
            || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if node.get("type").and_then(Value::as_str).is_none() && !preserves {
            problems.push(format!("{path}: no type"));
        }
        if node.get("$ref").is_some() {
            problems.push(format!("{path}: $ref"));
        }
        for junctor in ["allOf", "anyOf", "oneOf", "not"] {
            if node.get(junctor).is_some() {
                problems.push(format!("{path}: {junctor}"));
            }
        }
        if node.get("items").is_some_and(|items| !items.is_object()) {
            problems.push(format!("{path}: items is not a single schema"));
        }
        if node.get("properties").is_some() && node.get("additionalProperties").is_some() {
            problems.push(format!("{path}: both properties and additionalProperties"));
        }
        if node.get("type") == Some(&Value::from("array")) && node.get("items").is_none() {
            problems.push(format!("{path}: array without items"));
        }
    });
    assert!(problems.is_empty(), "not a structural schema: {problems:?}");
}

#[test]
fn status_is_a_subresource_and_printer_columns_exist() {
    let crd: Value = serde_saphyr::from_str(&generated()).expect("parses");
    let version = &crd["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Mode", "Matched", "Compliant", "Excepted", "Ready", "Age"]
    );
}
