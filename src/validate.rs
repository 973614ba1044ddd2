//! Offline validation of `ProductionProfile` and `ProfileException`
//! manifests, for CI pipelines and for `baseliner render` and `plan`.
//!
//! A document passes through the same stages the API server applies, in the
//! same order, and then through checks only this tool makes:
//!
//! 1. YAML parsing, and `apiVersion` / `kind` / `metadata.name`;
//! 2. the structural OpenAPI schema of the generated CRD ([`schema`]);
//! 3. the CRD's CEL `x-kubernetes-validations` rules, evaluated with kube's
//!    CEL library after schema defaults are applied (skipped, as the API
//!    server skips them, after a type, enum, required or size error);
//! 4. semantic checks that need no cluster ([`semantic`]): label selectors,
//!    CIDRs, cron schedules, TTLs, subject templates, LimitRange ordering;
//!    for an exception, its selector and its expiry (in the future, within
//!    the default `--max-exception-days` of now). Whether the controls it
//!    waives exist in its profile is checked by `baseliner validate` when
//!    the profile is among the files ([`check_exceptions_against`]).
//!
//! [`problem`] holds what every stage reports; [`go_compat`] makes the CEL
//! stage give the API server's answer where kube's CEL library and Go's
//! differ. The syntax rules themselves (names, labels, CIDRs, quantities,
//! durations) are [`crate::syntax`]'s, and cron is [`crate::cron`]'s.
//!
//! Each [`Problem`] records its [`Stage`], so a test can compare the stages
//! the API server also runs with the API server's own verdict.

mod go_compat;
mod problem;
pub(crate) mod schema;
mod semantic;

use std::sync::LazyLock;

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, RootContext, Validator};
use serde_json::Value;

use crate::api::exception::ProfileException;
use crate::api::{GROUP, ProductionProfile};
use crate::exception::{ExceptionSettings, expiry_too_far, missing_controls};

pub use problem::{Problem, Stage};

/// `apiVersion` of the documents this module validates.
pub const API_VERSION: &str = "baseliner.dev/v1alpha1";
/// `kind` of the profiles this module validates.
pub const KIND: &str = "ProductionProfile";
/// `kind` of the exceptions this module validates.
pub const EXCEPTION_KIND: &str = "ProfileException";

fn open_api_schema(crd: impl serde::Serialize) -> Value {
    let crd = serde_json::to_value(crd).unwrap_or_default();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_default()
}

/// The `openAPIV3Schema` of the CRD the API server would enforce.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| open_api_schema(ProductionProfile::crd()));
/// The same for exceptions.
static EXCEPTION_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| open_api_schema(ProfileException::crd()));

/// The CRD's structural schema, as validation uses it.
pub fn crd_schema() -> &'static Value {
    &SCHEMA
}

/// The exception CRD's structural schema.
pub fn exception_crd_schema() -> &'static Value {
    &EXCEPTION_SCHEMA
}

/// The verdict on one YAML document.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentReport {
    /// Position among the file's non-empty documents, from 1.
    pub index: usize,
    /// Line of the file the document starts on, from 1.
    pub line: usize,
    /// `metadata.name`, when the document has one.
    pub name: Option<String>,
    /// Everything wrong with it; empty when it is valid.
    pub problems: Vec<Problem>,
    /// The profile, with defaults applied, when it is a valid profile.
    pub profile: Option<ProductionProfile>,
    /// The exception, with defaults applied, when it is a valid exception.
    pub exception: Option<ProfileException>,
}

impl DocumentReport {
    /// Whether the document is a valid profile or exception.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// `document 2 (production-strict)`, for messages.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("document {} ({name})", self.index),
            None => format!("document {}", self.index),
        }
    }
}

/// Validates every document of a YAML stream. Empty documents (blank or
/// comments only) are skipped and not counted; an empty stream yields no
/// reports.
pub fn validate_documents(text: &str) -> Vec<DocumentReport> {
    split_documents(text)
        .into_iter()
        .enumerate()
        .map(|(position, document)| {
            let index = position + 1;
            let mut report = DocumentReport {
                index,
                line: document.line,
                name: None,
                problems: Vec::new(),
                profile: None,
                exception: None,
            };
            match parse_document(&document) {
                Ok(value) if value.get("kind").and_then(Value::as_str) == Some(EXCEPTION_KIND) => {
                    report.name = name_of(&value);
                    match validate_exception(value, &ExceptionSettings::default()) {
                        Ok(exception) => report.exception = Some(exception),
                        Err(problems) => report.problems = problems,
                    }
                }
                Ok(value) => {
                    let (name, outcome) = validate_value(value);
                    report.name = name;
                    match outcome {
                        Ok(profile) => report.profile = Some(profile),
                        Err(problems) => report.problems = problems,
                    }
                }
                Err(problem) => report.problems = vec![problem],
            }
            report
        })
        .collect()
}

/// Validates one decoded document. Returns its `metadata.name`, if any,
/// and the typed profile or every problem found.
pub fn validate_value(value: Value) -> (Option<String>, Result<ProductionProfile, Vec<Problem>>) {
    (name_of(&value), validate_object(value))
}

fn name_of(value: &Value) -> Option<String> {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn validate_object(mut value: Value) -> Result<ProductionProfile, Vec<Problem>> {
    let mut problems = check_schema_and_rules(&mut value, KIND, &SCHEMA)?;

    let profile = match serde_json::from_value::<ProductionProfile>(apply_defaults(&SCHEMA, &value))
    {
        Ok(profile) => profile,
        Err(error) => {
            // The schema is generated from the same types, so this means the
            // two disagree: report it rather than hide it.
            problems.push(
                Problem::new(
                    "",
                    format!("cannot be read as a ProductionProfile: {error}"),
                )
                .at(Stage::Schema),
            );
            return Err(problems);
        }
    };

    let already_reported: Vec<String> = problems
        .iter()
        .map(|p| p.path.clone())
        .filter(|path| !path.is_empty())
        .collect();
    problems.extend(semantic::check_profile(&profile).into_iter().filter(|p| {
        !already_reported
            .iter()
            .any(|reported| is_within(&p.path, reported))
    }));

    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(problems)
    }
}

/// Validates one decoded exception: its schema and rules, its selector, and
/// an expiry in the future within `settings.max_days` of now (the API
/// server cannot check either; the operator measures from creation).
pub fn validate_exception(
    mut value: Value,
    settings: &ExceptionSettings,
) -> Result<ProfileException, Vec<Problem>> {
    let mut problems = check_schema_and_rules(&mut value, EXCEPTION_KIND, &EXCEPTION_SCHEMA)?;
    let exception =
        match serde_json::from_value::<ProfileException>(apply_defaults(&EXCEPTION_SCHEMA, &value))
        {
            Ok(exception) => exception,
            Err(error) => {
                problems.push(
                    Problem::new("", format!("cannot be read as a ProfileException: {error}"))
                        .at(Stage::Schema),
                );
                return Err(problems);
            }
        };
    if let Some(selector) = &exception.spec.namespaces.selector
        && let Err(error) = crate::selection::parse_label_selector(selector)
    {
        problems.push(Problem::new("spec.namespaces.selector", error.to_string()));
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let expires = exception.spec.expires.0;
    if expires <= now {
        problems.push(Problem::new(
            "spec.expires",
            format!("{expires} is in the past: the exception would never be in force"),
        ));
    } else if let Some(problem) = expiry_too_far(now, expires, settings.max_days) {
        problems.push(Problem::new(&problem.field, problem.message));
    }
    if problems.is_empty() {
        Ok(exception)
    } else {
        Err(problems)
    }
}

/// What is wrong with `exceptions` against the `profiles` given with them:
/// each problem with the exception's name. An exception whose profile is
/// not among them is not judged (the operator reports it in its status).
pub fn check_exceptions_against(
    exceptions: &[&ProfileException],
    profiles: &[&ProductionProfile],
) -> Vec<(String, Problem)> {
    let mut found = Vec::new();
    for exception in exceptions {
        let Some(profile) = profiles
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(exception.spec.profile.as_str()))
        else {
            continue;
        };
        for problem in missing_controls(&exception.spec, &profile.spec) {
            found.push((
                exception.metadata.name.clone().unwrap_or_default(),
                Problem::new(&problem.field, problem.message),
            ));
        }
    }
    found
}

/// Stages 1 to 3 for `kind` against `schema`: the problems found, or all
/// of them when none of the later stages can run.
fn check_schema_and_rules(
    value: &mut Value,
    kind: &str,
    schema: &Value,
) -> Result<Vec<Problem>, Vec<Problem>> {
    let document_problems = check_type_and_name(value, kind);
    if !document_problems.is_empty() {
        return Err(document_problems);
    }
    let mut problems = Vec::new();
    if let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str) {
        // The API server checks object names with the schema.
        problems.extend(
            semantic::check_name(name)
                .into_iter()
                .map(|p| p.at(Stage::Schema)),
        );
    }

    let schema_problems = schema::SchemaChecker::default().check_root(schema, value);
    let blocking = schema_problems.iter().any(|p| p.blocking);
    problems.extend(
        schema_problems
            .into_iter()
            .map(|p| p.problem.at(Stage::Schema)),
    );

    if blocking {
        problems.push(Problem::new(
            "",
            "the CRD's validation rules were not checked because of the errors above; fix them and validate again".to_owned(),
        ).at(Stage::Schema));
        return Err(problems);
    }
    // CEL runs on a copy where quantities Go accepts are spelled so kube's
    // library reads them too; then what Go refuses but kube's library let
    // through is added, so the verdict is the API server's.
    let mut for_rules = value.clone();
    go_compat::canonicalize_quantities(&mut for_rules, go_compat::kube_is_quantity);
    let rule_problems = check_rules(&for_rules, kind, schema);
    let strict =
        go_compat::strict_problems(value, schema, &rule_problems, go_compat::kube_is_quantity);
    problems.extend(rule_problems);
    problems.extend(strict);
    Ok(problems)
}

/// `apiVersion`, `kind` and `metadata.name`: without them nothing else
/// means anything.
fn check_type_and_name(value: &Value, expected: &str) -> Vec<Problem> {
    let document = |path: &str, message: String| Problem::new(path, message).at(Stage::Document);
    let Some(object) = value.as_object() else {
        let found = match value {
            Value::Null => "an empty document",
            Value::Array(_) => "a list",
            _ => "a plain value",
        };
        return vec![document(
            "",
            format!("expected a {expected} object (a YAML mapping), found {found}"),
        )];
    };
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    if kind != Some(expected) {
        let found = kind.map_or("no kind".to_owned(), |k| format!("kind {k:?}"));
        return vec![document(
            "kind",
            format!("expected a {KIND} or {EXCEPTION_KIND} ({API_VERSION}), found {found}"),
        )];
    }
    if api_version != Some(API_VERSION) {
        let found = api_version.map_or("nothing".to_owned(), |v| format!("{v:?}"));
        let hint = if api_version.is_some_and(|v| v.starts_with(GROUP)) {
            " (this baseliner knows only v1alpha1)"
        } else {
            ""
        };
        return vec![document(
            "apiVersion",
            format!("must be {API_VERSION}, found {found}{hint}"),
        )];
    }
    match object.get("metadata").and_then(|m| m.get("name")) {
        Some(Value::String(name)) if !name.is_empty() => Vec::new(),
        Some(Value::String(_)) | None => {
            vec![document(
                "metadata.name",
                "required field is missing".to_owned(),
            )]
        }
        Some(other) => vec![document(
            "metadata.name",
            format!("must be a string, not {other}"),
        )],
    }
}

/// Evaluates the CRD's CEL rules as the API server does.
fn check_rules(value: &Value, kind: &str, schema: &Value) -> Vec<Problem> {
    let root = RootContext {
        api_version: API_VERSION.to_owned(),
        api_group: GROUP.to_owned(),
        kind: kind.to_owned(),
    };
    let Err(errors) = Validator::new().validate_with_context(schema, value, None, Some(&root))
    else {
        return Vec::new();
    };
    errors
        .into_iter()
        .map(|error| {
            let message = match error.kind {
                ErrorKind::ValidationFailure => error.message,
                _ => format!(
                    "rule `{}` could not be evaluated: {}",
                    error.rule, error.message
                ),
            };
            Problem::new(&error.field_path, message).at(Stage::Rule)
        })
        .collect()
}

fn apply_defaults(schema: &Value, value: &Value) -> Value {
    kube::core::cel::apply_defaults(schema, value)
}

/// Whether `path` is `ancestor` or a field or item below it.
fn is_within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// One document's text and where it starts.
struct RawDocument<'a> {
    line: usize,
    text: &'a str,
}

/// Splits a stream on `---` lines, as kubectl does, keeping each
/// document's starting line for messages. Documents holding only blank
/// lines, comments and markers are dropped.
fn split_documents(text: &str) -> Vec<RawDocument<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let is_separator = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if is_separator && offset > start {
            documents.push(RawDocument {
                line: start_line,
                text: &text[start..offset],
            });
            start = offset;
            start_line = number + 1;
        }
        offset += line.len();
    }
    documents.push(RawDocument {
        line: start_line,
        text: &text[start..],
    });
    documents.retain(|document| !is_blank(document.text));
    documents
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty()
            || line.starts_with('#')
            || line == "---"
            || line == "..."
            || (line.starts_with("--- ") && line[4..].trim_start().starts_with('#'))
    })
}

fn parse_document(document: &RawDocument) -> Result<Value, Problem> {
    serde_saphyr::from_str::<Value>(document.text).map_err(|error| {
        let plain = error.without_snippet().to_string();
        // saphyr appends " at line L, column C" relative to the document; the
        // location is reported relative to the file instead.
        let message = plain
            .rfind(" at line ")
            .map_or(plain.as_str(), |cut| &plain[..cut])
            .to_owned();
        let message = match error.location() {
            Some(location) => format!(
                "invalid YAML at line {}, column {}: {message}",
                document.line + location.line() as usize - 1,
                location.column()
            ),
            None => format!("invalid YAML: {message}"),
        };
        Problem::new("", message).at(Stage::Document)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_their_lines() {
        let text = "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\n--- # trailing\nc: 3\n";
        let documents = split_documents(text);
        let found: Vec<(usize, &str)> = documents.iter().map(|d| (d.line, d.text)).collect();
        assert_eq!(
            found,
            vec![
                (2, "---\na: 1\n"),
                (6, "---\nb: 2\n"),
                (8, "--- # trailing\nc: 3\n")
            ]
        );
    }

    #[test]
    fn empty_streams_have_no_documents() {
        for text in ["", "\n", "# nothing\n", "---\n", "---\n---\n", "\u{feff}"] {
            assert!(validate_documents(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn yaml_errors_name_the_file_line() {
        let text = "apiVersion: v1\nkind: X\n---\na: 1\n  b: 2\n";
        let reports = validate_documents(text);
        assert_eq!(reports.len(), 2);
        let message = reports[1].problems[0].to_string();
        assert!(
            message.starts_with("invalid YAML at line 5, column 4"),
            "{message}"
        );
    }

    #[test]
    fn within() {
        assert!(is_within("spec.a", "spec.a"));
        assert!(is_within("spec.a.b", "spec.a"));
        assert!(is_within("spec.a[0]", "spec.a"));
        assert!(!is_within("spec.ab", "spec.a"));
        assert!(!is_within("spec", "spec.a"));
    }
}

#[cfg(test)]
mod schema_coverage {
    use serde_json::Value;

    use super::{crd_schema, exception_crd_schema, schema::KEYWORDS};

    fn collect_keywords(node: &Value, found: &mut Vec<String>) {
        let Some(object) = node.as_object() else {
            return;
        };
        for (key, child) in object {
            if !found.contains(key) {
                found.push(key.clone());
            }
            match key.as_str() {
                "properties" => child
                    .as_object()
                    .into_iter()
                    .flat_map(|p| p.values())
                    .for_each(|schema| collect_keywords(schema, found)),
                "items" | "additionalProperties" => collect_keywords(child, found),
                _ => {}
            }
        }
    }

    /// The walker must understand every keyword the generated CRD uses, or a
    /// constraint could be silently skipped offline.
    #[test]
    fn walker_understands_every_keyword_of_the_crd() {
        let mut found = Vec::new();
        collect_keywords(crd_schema(), &mut found);
        collect_keywords(exception_crd_schema(), &mut found);
        let unknown: Vec<&String> = found
            .iter()
            .filter(|k| !KEYWORDS.contains(&k.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "schema keywords the offline validator does not check: {unknown:?}"
        );
        assert!(found.contains(&"x-kubernetes-validations".to_owned()));
    }
}
