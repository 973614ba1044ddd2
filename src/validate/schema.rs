//! The structural OpenAPI checks the API server applies to a custom
//! resource, over the subset of keywords the generated CRD uses.
//!
//! Kubernetes' OpenAPI dialect is not JSON Schema (`nullable`, integer
//! formats, unknown fields pruned or refused), and the messages should name
//! fields the way `kubectl` does, so this is a small walker rather than a
//! JSON Schema engine. [`KEYWORDS`] lists what it understands; a test fails
//! if the generated CRD ever uses a keyword outside that list.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::problem::{Problem, join_index, join_key, join_property};

/// Every schema keyword the walker understands or deliberately ignores.
#[cfg(test)]
pub(crate) const KEYWORDS: &[&str] = &[
    // checked here
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "nullable",
    "format",
    // applied before the CEL rules run (by kube's CEL validator)
    "default",
    // checked by the CEL stage
    "x-kubernetes-validations",
    // documentation only
    "description",
    "title",
];

/// Top-level fields the API server handles itself and the CRD schema omits.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One schema violation. `blocking` marks the kinds after which the API
/// server does not evaluate CEL rules (wrong type, unsupported enum value,
/// missing required field, too long, too many).
#[derive(Debug)]
pub(crate) struct SchemaProblem {
    pub(crate) problem: Problem,
    pub(crate) blocking: bool,
}

/// Walks a schema and a value side by side.
#[derive(Default)]
pub(crate) struct SchemaChecker {
    patterns: HashMap<String, Option<Regex>>,
    problems: Vec<SchemaProblem>,
}

impl SchemaChecker {
    /// Checks `value` against the root `schema`, removing unknown fields from
    /// `value` (as the API server prunes them) after reporting each one.
    pub(crate) fn check_root(mut self, schema: &Value, value: &mut Value) -> Vec<SchemaProblem> {
        self.check(schema, value, "");
        self.problems
    }

    fn report(&mut self, path: &str, message: String, blocking: bool) {
        self.problems.push(SchemaProblem {
            problem: Problem::new(path, message),
            blocking,
        });
    }

    fn check(&mut self, schema: &Value, value: &mut Value, path: &str) {
        if value.is_null() {
            if !flag(schema, "nullable") {
                self.report(path, "must not be null".to_owned(), true);
            }
            return;
        }
        let Some(expected) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        if !has_type(value, expected) {
            let message = format!(
                "must be {}, not {}",
                with_article(expected),
                describe(value)
            );
            self.report(path, message, true);
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let choices: Vec<String> = allowed.iter().map(Value::to_string).collect();
            let message = format!(
                "unsupported value {}: must be one of {}",
                value,
                choices.join(", ")
            );
            self.report(path, message, true);
        }
        match value {
            Value::Object(object) => self.check_object(schema, object, path),
            Value::Array(items) => self.check_array(schema, items, path),
            Value::String(text) => self.check_string(schema, text, path),
            Value::Number(_) => self.check_number(schema, value, path),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_object(&mut self, schema: &Value, object: &mut Map<String, Value>, path: &str) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());

        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                self.report(
                    &join_property(path, required),
                    "required field is missing".to_owned(),
                    true,
                );
            }
        }

        let count = object.len();
        if let Some(min) = unsigned(schema, "minProperties")
            && (count as u64) < min
        {
            let message = format!("must have at least {min} {}", plural(min, "entry"));
            self.report(path, message, false);
        }
        if let Some(max) = unsigned(schema, "maxProperties")
            && (count as u64) > max
        {
            let message = format!(
                "must have at most {max} {}, not {count}",
                plural(max, "entry")
            );
            self.report(path, message, true);
        }

        let mut unknown = Vec::new();
        for (key, child) in object.iter_mut() {
            if path.is_empty() && ROOT_FIELDS.contains(&key.as_str()) {
                continue;
            }
            if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                self.check(child_schema, child, &join_property(path, key));
            } else if let Some(value_schema) = additional {
                self.check(value_schema, child, &join_key(path, key));
            } else if properties.is_some() {
                unknown.push(key.clone());
            }
        }
        for key in unknown {
            let message = match properties.and_then(|p| suggest(&key, p.keys())) {
                Some(known) => format!("unknown field (did you mean {known:?}?)"),
                None => "unknown field".to_owned(),
            };
            self.report(&join_property(path, &key), message, false);
            object.remove(&key);
        }
    }

    fn check_array(&mut self, schema: &Value, items: &mut [Value], path: &str) {
        let count = items.len() as u64;
        if let Some(min) = unsigned(schema, "minItems")
            && count < min
        {
            let message = format!("must have at least {min} {}", plural(min, "item"));
            self.report(path, message, false);
        }
        if let Some(max) = unsigned(schema, "maxItems")
            && count > max
        {
            let message = format!(
                "must have at most {max} {}, not {count}",
                plural(max, "item")
            );
            self.report(path, message, true);
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter_mut().enumerate() {
                self.check(item_schema, item, &join_index(path, index));
            }
        }
    }

    fn check_string(&mut self, schema: &Value, text: &str, path: &str) {
        // Kubernetes counts characters, not bytes.
        let length = text.chars().count() as u64;
        if let Some(min) = unsigned(schema, "minLength")
            && length < min
        {
            let message = if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            };
            self.report(path, message, false);
        }
        if let Some(max) = unsigned(schema, "maxLength")
            && length > max
        {
            let message = format!("must be at most {max} characters, not {length}");
            self.report(path, message, true);
        }
        // The one string format the CRDs use; the API server checks it.
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && text.parse::<k8s_openapi::jiff::Timestamp>().is_err()
        {
            let message = format!(
                "invalid value {text:?}: must be a date-time (RFC 3339) such as 2027-01-31T00:00:00Z"
            );
            self.report(path, message, true);
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            match self.regex(pattern) {
                Some(regex) if regex.is_match(text) => {}
                Some(_) => {
                    let message = format!("invalid value {text:?}: {}", explain_pattern(pattern));
                    self.report(path, message, false);
                }
                None => {
                    let message = format!("the schema's pattern {pattern:?} does not compile");
                    self.report(path, message, false);
                }
            }
        }
    }

    fn check_number(&mut self, schema: &Value, value: &Value, path: &str) {
        let Some(number) = value.as_f64() else { return };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            self.report(path, format!("must be at least {min}, not {value}"), false);
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            self.report(path, format!("must be at most {max}, not {value}"), false);
        }
        let bounds = match schema.get("format").and_then(Value::as_str) {
            Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX), "32")),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64, "64")),
            _ => None,
        };
        if let Some((low, high, bits)) = bounds
            && !(low..=high).contains(&number)
        {
            self.report(path, format!("must fit in a {bits}-bit integer"), true);
        }
    }

    fn regex(&mut self, pattern: &str) -> Option<&Regex> {
        self.patterns
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
    }
}

fn flag(schema: &Value, keyword: &str) -> bool {
    schema.get(keyword).and_then(Value::as_bool) == Some(true)
}

fn unsigned(schema: &Value, keyword: &str) -> Option<u64> {
    let value = schema.get(keyword)?;
    // schemars writes some bounds as floats (`maximum: 1000.0`).
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        // 3 and 3.0 are the same integer once decoded, as in the API server.
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn with_article(schema_type: &str) -> &'static str {
    match schema_type {
        "object" => "an object",
        "array" => "a list",
        "string" => "a string",
        "boolean" => "a boolean (true or false)",
        "integer" => "an integer",
        "number" => "a number",
        _ => "another type",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn plural(count: u64, noun: &str) -> String {
    match (count, noun) {
        (1, _) => noun.to_owned(),
        (_, "entry") => "entries".to_owned(),
        _ => format!("{noun}s"),
    }
}

/// Says in words what the patterns the API uses mean.
fn explain_pattern(pattern: &str) -> String {
    match pattern {
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" => {
            "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
                .to_owned()
        }
        r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" => {
            "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
                .to_owned()
        }
        r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$" => {
            "must be lowercase letters, digits, '-', '.' and ':', starting and ending with a letter or digit"
                .to_owned()
        }
        r"^(latest|v1\.[0-9]{1,3})$" => "must be `latest` or a version such as v1.33".to_owned(),
        _ => format!("must match the regular expression {pattern}"),
    }
}

/// A known field the unknown `key` was probably meant to be: the same
/// apart from case, or at most two edits away.
fn suggest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let lower = key.to_lowercase();
    known
        .map(|candidate| {
            let distance = if candidate.to_lowercase() == lower {
                0
            } else {
                edit_distance(&lower, &candidate.to_lowercase())
            };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(schema: Value, mut value: Value) -> Vec<(String, bool)> {
        SchemaChecker::default()
            .check_root(&schema, &mut value)
            .into_iter()
            .map(|p| (p.problem.to_string(), p.blocking))
            .collect()
    }

    /// A schema, a value, and the problems expected (message, blocking).
    type Case = (Value, Value, Vec<(&'static str, bool)>);

    /// An object schema whose string field `f` has the keywords in `extra`.
    fn string(extra: Value) -> Value {
        let mut schema = json!({"type": "object", "properties": {"f": {"type": "string"}}});
        if let (Some(f), Some(extra)) =
            (schema["properties"]["f"].as_object_mut(), extra.as_object())
        {
            f.extend(extra.clone());
        }
        schema
    }

    fn keyword_cases_table_1() -> Vec<Case> {
        let cases: Vec<Case> = vec![
            (string(json!({})), json!({"f": "x"}), vec![]),
            (
                string(json!({})),
                json!({"f": 3}),
                vec![("f: must be a string, not a number (3)", true)],
            ),
            (
                string(json!({})),
                json!({"f": null}),
                vec![("f: must not be null", true)],
            ),
            (
                string(json!({"nullable": true})),
                json!({"f": null}),
                vec![],
            ),
            (
                string(json!({"maxLength": 2})),
                json!({"f": "äöü"}),
                vec![("f: must be at most 2 characters, not 3", true)],
            ),
            (string(json!({"maxLength": 3})), json!({"f": "äöü"}), vec![]),
            (
                string(json!({"minLength": 1})),
                json!({"f": ""}),
                vec![("f: must not be empty", false)],
            ),
            (
                string(json!({"enum": ["A", "B"]})),
                json!({"f": "C"}),
                vec![(
                    "f: unsupported value \"C\": must be one of \"A\", \"B\"",
                    true,
                )],
            ),
            (
                string(json!({"pattern": "^[a-z]+$"})),
                json!({"f": "A"}),
                vec![(
                    "f: invalid value \"A\": must match the regular expression ^[a-z]+$",
                    false,
                )],
            ),
            (
                json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1.0, "maximum": 9.0, "format": "int32"}}}),
                json!({"n": 10}),
                vec![("n: must be at most 9, not 10", false)],
            ),
            (
                json!({"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}}),
                json!({"n": 3_000_000_000_i64}),
                vec![("n: must fit in a 32-bit integer", true)],
            ),
        ];
        cases
    }

    fn keyword_cases_table_2() -> Vec<Case> {
        let cases: Vec<Case> = vec![
            (
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                json!({"n": 2.0}),
                vec![],
            ),
            (
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                json!({"n": 2.5}),
                vec![("n: must be an integer, not a number (2.5)", true)],
            ),
            (
                json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}),
                json!({}),
                vec![("a: required field is missing", true)],
            ),
            (
                json!({"type": "object", "properties": {"allowDNS": {"type": "boolean"}}}),
                json!({"allowDns": true}),
                vec![(
                    "allowDns: unknown field (did you mean \"allowDNS\"?)",
                    false,
                )],
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "boolean"}}}),
                json!({"zzz": true}),
                vec![("zzz: unknown field", false)],
            ),
            (
                json!({"type": "object", "properties": {}}),
                json!({"apiVersion": "v1", "kind": "K", "metadata": {}}),
                vec![],
            ),
            (
                json!({"type": "object", "properties": {"m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}}}),
                json!({"m": {"a": "1", "b": 2}}),
                vec![
                    ("m: must have at most 1 entry, not 2", true),
                    ("m.b: must be a string, not a number (2)", true),
                ],
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "minItems": 1, "items": {"type": "integer"}}}}),
                json!({"l": []}),
                vec![("l: must have at least 1 item", false)],
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "maxItems": 1, "items": {"type": "integer"}}}}),
                json!({"l": [1, "x"]}),
                vec![
                    ("l: must have at most 1 item, not 2", true),
                    ("l[1]: must be an integer, not a string (\"x\")", true),
                ],
            ),
        ];
        cases
    }

    #[test]
    fn keyword_cases() {
        let cases: Vec<Case> = [keyword_cases_table_1(), keyword_cases_table_2()]
            .into_iter()
            .flatten()
            .collect();
        for (schema, value, expected) in cases {
            let expected: Vec<(String, bool)> = expected
                .into_iter()
                .map(|(m, b)| (m.to_owned(), b))
                .collect();
            assert_eq!(problems(schema, value.clone()), expected, "value {value}");
        }
    }

    #[test]
    fn unknown_fields_are_pruned() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let mut value = json!({"a": "x", "b": "y"});
        let found = SchemaChecker::default().check_root(&schema, &mut value);
        assert_eq!(found.len(), 1);
        assert_eq!(value, json!({"a": "x"}));
    }

    #[test]
    fn edit_distance_cases() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("abc", "abd", 1),
            ("ttl", "tll", 1),
            ("schedule", "schedul", 1),
            ("a", "xyz", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }
}
