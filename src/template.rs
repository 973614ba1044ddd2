//! Subject-name templates: `{{namespace}}` and `{{labels.KEY}}`.
//!
//! A template is parsed once ([`parse`], also used by the offline validator)
//! and expanded per namespace ([`expand`]). Only `{{` is special: text
//! outside `{{ ... }}` is copied as is, and whitespace inside the braces is
//! ignored (`{{ labels.team }}`).

use thiserror::Error;

use crate::namespace::NamespaceInfo;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Text copied verbatim.
    Literal(String),
    /// `{{namespace}}`: the namespace's name.
    Namespace,
    /// `{{labels.KEY}}`: the value of the namespace's label KEY.
    Label(String),
}

/// Why a template cannot be parsed or expanded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` without a matching `}}`.
    #[error("`{{{{` at byte {position} is not closed by `}}}}`")]
    Unclosed {
        /// Byte offset of the opening braces.
        position: usize,
    },
    /// Something other than `namespace` or `labels.KEY` inside the braces.
    #[error("unknown template variable `{name}`; use {{{{namespace}}}} or {{{{labels.KEY}}}}")]
    UnknownVariable {
        /// What was inside the braces, trimmed.
        name: String,
    },
    /// `labels.` followed by nothing, or by characters a label key cannot hold.
    #[error("`{key}` is not a label key")]
    InvalidLabelKey {
        /// The text after `labels.`.
        key: String,
    },
    /// The namespace does not carry a label the template uses.
    #[error("label `{key}` missing on namespace `{namespace}`")]
    MissingLabel {
        /// The label key.
        key: String,
        /// The namespace being rendered.
        namespace: String,
    },
}

const OPEN: &str = "{{";
const CLOSE: &str = "}}";
const LABELS_PREFIX: &str = "labels.";

/// Parses a template into literal text and variables.
pub fn parse(template: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find(OPEN) {
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        let inner_start = open + OPEN.len();
        let close = rest[inner_start..]
            .find(CLOSE)
            .ok_or(TemplateError::Unclosed {
                position: offset + open,
            })?;
        parts.push(parse_variable(&rest[inner_start..inner_start + close])?);
        let consumed = inner_start + close + CLOSE.len();
        rest = &rest[consumed..];
        offset += consumed;
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

fn parse_variable(inner: &str) -> Result<Part, TemplateError> {
    let name = inner.trim();
    if name == "namespace" {
        return Ok(Part::Namespace);
    }
    let Some(key) = name.strip_prefix(LABELS_PREFIX) else {
        return Err(TemplateError::UnknownVariable {
            name: name.to_owned(),
        });
    };
    // The characters the CRD's CEL rule allows; a label key never holds others.
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '-');
    if key.is_empty() || !key.chars().all(is_key_char) {
        return Err(TemplateError::InvalidLabelKey {
            key: key.to_owned(),
        });
    }
    Ok(Part::Label(key.to_owned()))
}

/// Fills a parsed template in from a namespace's name and labels.
pub fn expand(parts: &[Part], namespace: &NamespaceInfo) -> Result<String, TemplateError> {
    let mut expanded = String::new();
    for part in parts {
        match part {
            Part::Literal(text) => expanded.push_str(text),
            Part::Namespace => expanded.push_str(&namespace.name),
            Part::Label(key) => {
                let value =
                    namespace
                        .labels
                        .get(key)
                        .ok_or_else(|| TemplateError::MissingLabel {
                            key: key.clone(),
                            namespace: namespace.name.clone(),
                        })?;
                expanded.push_str(value);
            }
        }
    }
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn literal(text: &str) -> Part {
        Part::Literal(text.to_owned())
    }

    fn label(key: &str) -> Part {
        Part::Label(key.to_owned())
    }

    #[test]
    fn parse_cases() {
        let cases: Vec<(&str, Result<Vec<Part>, TemplateError>)> = vec![
            ("", Ok(vec![])),
            ("platform-admins", Ok(vec![literal("platform-admins")])),
            ("{{namespace}}", Ok(vec![Part::Namespace])),
            (
                "team-{{ labels.team }}-viewers",
                Ok(vec![literal("team-"), label("team"), literal("-viewers")]),
            ),
            (
                "{{labels.example.com/owner}}",
                Ok(vec![label("example.com/owner")]),
            ),
            (
                "{{namespace}}{{labels.a_b}}",
                Ok(vec![Part::Namespace, label("a_b")]),
            ),
            // A single brace is ordinary text.
            ("a{b}c", Ok(vec![literal("a{b}c")])),
            (
                "x-{{namespace",
                Err(TemplateError::Unclosed { position: 2 }),
            ),
            (
                "{{namespace}}-{{labels.team",
                Err(TemplateError::Unclosed { position: 14 }),
            ),
            (
                "{{ name }}",
                Err(TemplateError::UnknownVariable {
                    name: "name".to_owned(),
                }),
            ),
            (
                "{{}}",
                Err(TemplateError::UnknownVariable {
                    name: String::new(),
                }),
            ),
            (
                "{{labels.}}",
                Err(TemplateError::InvalidLabelKey { key: String::new() }),
            ),
            (
                "{{labels.a b}}",
                Err(TemplateError::InvalidLabelKey {
                    key: "a b".to_owned(),
                }),
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(parse(template), expected, "template {template:?}");
        }
    }

    #[test]
    fn expand_cases() {
        let namespace = NamespaceInfo {
            name: "shop-prod".to_owned(),
            labels: BTreeMap::from([
                ("team".to_owned(), "payments".to_owned()),
                ("example.com/owner".to_owned(), "alice".to_owned()),
            ]),
        };
        let cases: Vec<(&str, Result<&str, TemplateError>)> = vec![
            ("static", Ok("static")),
            ("{{namespace}}-admins", Ok("shop-prod-admins")),
            ("team-{{labels.team}}-viewers", Ok("team-payments-viewers")),
            ("{{ labels.example.com/owner }}", Ok("alice")),
            (
                "team-{{labels.tier}}",
                Err(TemplateError::MissingLabel {
                    key: "tier".to_owned(),
                    namespace: "shop-prod".to_owned(),
                }),
            ),
        ];
        for (template, expected) in cases {
            let parts = parse(template).expect("test templates parse");
            assert_eq!(
                expand(&parts, &namespace),
                expected.map(str::to_owned),
                "template {template:?}"
            );
        }
    }

    #[test]
    fn missing_label_message_names_label_and_namespace() {
        let namespace = NamespaceInfo {
            name: "x".to_owned(),
            labels: BTreeMap::new(),
        };
        let parts = parse("{{labels.team}}").expect("parses");
        let error = expand(&parts, &namespace).expect_err("label is missing");
        assert_eq!(error.to_string(), "label `team` missing on namespace `x`");
    }
}
