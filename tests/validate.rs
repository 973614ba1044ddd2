//! The offline validator against the invalid-profile table in
//! `tests/fixtures/invalid/` and the samples in `config/samples/`.

use std::path::{Path, PathBuf};

use baseliner::api::{Mode, PodSecurityLevel};
use baseliner::validate::{Stage, validate_documents};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// One invalid profile and what must be reported for it.
struct Fixture {
    file: String,
    text: String,
    path: String,
    fragment: String,
    stage: Stage,
}

fn parse_stage(name: &str) -> Stage {
    match name {
        "document" => Stage::Document,
        "schema" => Stage::Schema,
        "rule" => Stage::Rule,
        "semantic" => Stage::Semantic,
        other => panic!("unknown stage {other:?}"),
    }
}

fn invalid_fixtures() -> Vec<Fixture> {
    let directory = repo_path("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/fixtures/invalid exists")
        .map(|entry| entry.expect("directory entry").path())
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
            let text = std::fs::read_to_string(&path).expect("fixture is readable");
            let header = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
                    .unwrap_or_else(|| panic!("{file} has no `# {key}:` line"))
                    .to_owned()
            };
            let expect = header("expect");
            let (path, fragment) = expect
                .split_once(": ")
                .unwrap_or_else(|| panic!("{file}: `# expect: PATH: fragment`"));
            Fixture {
                path: path.to_owned(),
                fragment: fragment.to_owned(),
                stage: parse_stage(&header("stage")),
                file,
                text,
            }
        })
        .collect()
}

#[test]
fn every_invalid_profile_is_refused_naming_the_field() {
    let fixtures = invalid_fixtures();
    assert!(
        fixtures.len() >= 25,
        "only {} invalid profiles",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let reports = validate_documents(&fixture.text);
        let [report] = reports.as_slice() else {
            failures.push(format!(
                "{}: expected one document, found {}",
                fixture.file,
                reports.len()
            ));
            continue;
        };
        let lines: Vec<(String, Stage)> = report
            .problems
            .iter()
            .map(|problem| (problem.to_string(), problem.stage))
            .collect();
        // The line starts with the field path: `spec.x: message`, or for
        // a rule on the whole object, a message that starts with it.
        let found = lines.iter().any(|(line, stage)| {
            line.strip_prefix(&fixture.path)
                .is_some_and(|rest| rest.starts_with(": ") || rest.starts_with(' '))
                && line.contains(&fixture.fragment)
                && *stage == fixture.stage
        });
        if report.is_valid() || !found {
            failures.push(format!(
                "{}: expected {:?} problem `{}: ...{}...`, got {lines:?}",
                fixture.file, fixture.stage, fixture.path, fixture.fragment
            ));
        }
        if report.profile.is_some() {
            failures.push(format!(
                "{}: an invalid document yielded a profile",
                fixture.file
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_covers_every_stage() {
    let fixtures = invalid_fixtures();
    for stage in [Stage::Document, Stage::Schema, Stage::Rule, Stage::Semantic] {
        let count = fixtures.iter().filter(|f| f.stage == stage).count();
        assert!(count >= 3, "only {count} fixtures for {stage:?}");
    }
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("config/samples"))
        .expect("config/samples exists")
        .map(|entry| entry.expect("directory entry").path())
        // config/samples/exceptions/ holds an exception dated at run time.
        .filter(|path| path.is_file())
        .filter(|path| path.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn samples_are_valid() {
    let files = samples();
    assert!(files.len() >= 3, "expected at least three samples");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("sample is readable");
        let reports = validate_documents(&text);
        assert_eq!(reports.len(), 1, "{}", file.display());
        let report = &reports[0];
        assert!(
            report.is_valid(),
            "{}: {:?}",
            file.display(),
            report.problems
        );
        let profile = report
            .profile
            .as_ref()
            .expect("a valid report has the profile");
        assert!(
            profile.spec.namespaces.selector.is_some(),
            "{}: samples select namespaces by label",
            file.display()
        );
    }
}

#[test]
fn samples_are_listed_in_the_kustomization() {
    let text = std::fs::read_to_string(repo_path("config/samples/kustomization.yaml"))
        .expect("config/samples/kustomization.yaml exists");
    for file in samples() {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        assert!(
            text.contains(&format!("- {name}")),
            "{name} missing from the kustomization"
        );
    }
}

#[test]
fn valid_profiles_come_back_with_defaults_applied() {
    let text = "\
apiVersion: baseliner.dev/v1alpha1
kind: ProductionProfile
metadata:
  name: minimal
spec:
  namespaces:
    include: [shop]
  networkPolicy:
    allowDNS: true
    dns: {}
  podSecurity:
    enforce: restricted
  backup:
    schedule: '@daily'
";
    let reports = validate_documents(text);
    let profile = reports[0].profile.as_ref().expect("valid");
    assert_eq!(profile.spec.mode, Mode::Enforce);
    assert_eq!(profile.spec.priority, 0);
    let network = profile.spec.network_policy.as_ref().expect("set");
    assert!(network.default_deny);
    let dns = network.dns.as_ref().expect("set");
    assert_eq!(dns.namespace, "kube-system");
    assert_eq!(
        dns.pod_labels.get("k8s-app").map(String::as_str),
        Some("kube-dns")
    );
    let backup = profile.spec.backup.as_ref().expect("set");
    assert_eq!(backup.ttl, "720h");
    assert_eq!(backup.velero_namespace, "velero");
    assert_eq!(
        profile.spec.pod_security.as_ref().and_then(|p| p.enforce),
        Some(PodSecurityLevel::Restricted)
    );
}

#[test]
fn documents_are_numbered_and_named_in_a_stream() {
    let valid =
        std::fs::read_to_string(repo_path("config/samples/audit-only.yaml")).expect("sample");
    let text = format!(
        "# a leading comment\n---\n{valid}---\n# empty\n---\napiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: second\nspec:\n  namespaces: {{include: [a]}}\n  mode: Sometimes\n---\n[not, a, mapping]\n"
    );
    let reports = validate_documents(&text);
    let summary: Vec<(usize, Option<&str>, bool)> = reports
        .iter()
        .map(|r| (r.index, r.name.as_deref(), r.is_valid()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Some("audit-only"), true),
            (2, Some("second"), false),
            (3, None, false),
        ]
    );
    assert_eq!(reports[1].label(), "document 2 (second)");
    assert!(
        reports[1].problems[0]
            .to_string()
            .starts_with("spec.mode: unsupported value \"Sometimes\"")
    );
    assert!(reports[2].problems[0].to_string().contains("found a list"));
}

#[test]
fn rules_are_skipped_after_blocking_schema_errors_as_the_api_server_does() {
    // A wrong type would make CEL evaluation meaningless; the rule error
    // (namespaces without selector or include) must not be reported yet.
    let text = "\
apiVersion: baseliner.dev/v1alpha1
kind: ProductionProfile
metadata: {name: p}
spec:
  namespaces: {}
  priority: high
";
    let reports = validate_documents(text);
    let lines: Vec<String> = reports[0]
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        lines[0].starts_with("spec.priority: must be an integer"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("set selector, include")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("were not checked")),
        "{lines:?}"
    );
}

#[test]
fn a_semantic_problem_under_a_failed_rule_is_not_reported_twice() {
    let text = "\
apiVersion: baseliner.dev/v1alpha1
kind: ProductionProfile
metadata: {name: p}
spec:
  namespaces:
    selector:
      matchExpressions:
        - {key: env, operator: Equals, values: [a]}
";
    let reports = validate_documents(text);
    let problems = &reports[0].problems;
    assert!(!problems.is_empty());
    for problem in problems {
        assert_eq!(problem.path, "spec.namespaces.selector", "{problem}");
        assert_eq!(problem.stage, Stage::Rule, "{problem}");
    }
    assert!(Stage::Rule.enforced_by_api_server());
    assert!(!Stage::Semantic.enforced_by_api_server());
}
