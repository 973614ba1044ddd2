//! The fixtures of `tests/fixtures/invalid/`, as rows of the table: every
//! one whose stage is `schema` or `rule` must be refused by the API server;
//! every `semantic` one is accepted and must be reported in status (or,
//! where the operator cannot do anything wrong with it, is shown to be
//! harmless).

use anyhow::{Context as _, Result};
use baseliner_e2e::workspace_root;
use serde_json::Value;

use super::table::{Accepted, Check, Expect, Refused, reported, team_labels};

struct Fixture {
    file: String,
    text: String,
    path: String,
    stage: String,
}

fn fixtures() -> Result<Vec<Fixture>> {
    let directory = workspace_root().join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .with_context(|| format!("reading {}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let file = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)?;
            let header = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
                    .map(str::to_owned)
                    .with_context(|| format!("{file} has no `# {key}:` line"))
            };
            let expect = header("expect")?;
            let (path, _) = expect
                .split_once(": ")
                .with_context(|| format!("{file}: `# expect: PATH: fragment`"))?;
            Ok(Fixture {
                path: path.to_owned(),
                stage: header("stage")?,
                file,
                text,
            })
        })
        .collect()
}

/// What a semantic fixture does once the operator has it.
fn semantic_expectation(file: &str, path: &str) -> Expect {
    let number: u32 = file[..2].parse().unwrap_or_default();
    match number {
        // Crons Velero cannot parse, or that match no date.
        41..=43 | 60 => reported("InvalidSchedule", "spec.backup.schedule: "),
        // Quotas the ResourceQuota's own validation refuses.
        63 => reported("Rejected", "cpus"),
        65 => reported("Rejected", "must be an integer"),
        // A label key or value no namespace can carry.
        44 | 45 => Expect::SelectsNothing,
        // Selectors and LimitRanges the target kinds' own validation refuses:
        // the API server's refusal of that object is reported.
        46 | 47 => reported("Rejected", "matchExpressions[0]"),
        50 => reported("Rejected", "k8s app"),
        54 => reported("Rejected", "LimitRange"),
        // An except outside every CIDR would deny nothing; it is left out.
        48 => Expect::Compliant(Check::ExceptLeftOut),
        49 => reported("EgressAllowsNothing", path),
        51..=53 => reported("InvalidSubject", path),
        _ => panic!("{file}: no expectation for this semantic fixture; add one"),
    }
}

/// The fixtures the API server must refuse, and the semantic ones it
/// accepts.
pub(super) fn fixture_cases() -> Result<(Vec<Refused>, Vec<Accepted>)> {
    let mut refused: Vec<Refused> = Vec::new();
    let mut semantic: Vec<Accepted> = Vec::new();
    for fixture in &fixtures()? {
        match fixture.stage.as_str() {
            "schema" | "rule" => refused.push(Refused {
                id: fixture.file.clone(),
                yaml: fixture.text.clone(),
                path: fixture.path.clone(),
            }),
            "semantic" => {
                let profile: Value = serde_saphyr::from_str(&fixture.text)
                    .with_context(|| format!("{} is not YAML", fixture.file))?;
                semantic.push(Accepted {
                    id: fixture.file.clone(),
                    profile,
                    // Fixtures about the selector keep theirs.
                    own_selector: !fixture.path.starts_with("spec.namespaces"),
                    labels: team_labels(),
                    namespace_prefix: None,
                    profile_name: None,
                    expect: semantic_expectation(&fixture.file, &fixture.path),
                });
            }
            // `document` fixtures are not ProductionProfiles (one is a
            // ConfigMap, which kubectl would create): not API input here.
            _ => {}
        }
    }
    Ok((refused, semantic))
}
