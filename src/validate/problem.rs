//! What a validation stage reports: a [`Problem`] at a field path, found by
//! a [`Stage`], and the helpers that build those paths the way the API
//! server spells them.

use std::fmt;

/// Which check found a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The document is not YAML, or not a ProductionProfile.
    Document,
    /// The structural OpenAPI schema, or `metadata.name` (the API server
    /// checks these too).
    Schema,
    /// A CEL rule of the CRD (the API server checks this too).
    Rule,
    /// A check only this tool makes.
    Semantic,
}

impl Stage {
    /// Whether the API server would refuse the object for this problem too.
    pub fn enforced_by_api_server(self) -> bool {
        matches!(self, Self::Schema | Self::Rule)
    }
}

/// One thing wrong with a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field at fault, e.g. `spec.backup.schedule`; empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
    /// Which check found it.
    pub stage: Stage,
}

impl Problem {
    pub(crate) fn new(path: &str, message: String) -> Self {
        Self {
            path: path.to_owned(),
            message,
            stage: Stage::Semantic,
        }
    }

    pub(crate) fn at(mut self, stage: Stage) -> Self {
        self.stage = stage;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

pub(crate) fn join_property(path: &str, property: &str) -> String {
    if path.is_empty() {
        property.to_owned()
    } else {
        format!("{path}.{property}")
    }
}

pub(crate) fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A map entry: `hard.pods`, as the API server names it.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    join_property(path, key)
}
