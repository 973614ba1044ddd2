//! The `baseliner` binary as a CI pipeline runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn baseliner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baseliner"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the baseliner binary runs")
}

fn baseliner_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baseliner"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the baseliner binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("stdin accepts the input");
    child.wait_with_output().expect("the binary finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scratch directory for files a test writes, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("baseliner-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("scratch directory");
        Self(path)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("scratch file");
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SAMPLES: [&str; 3] = [
    "config/samples/production-strict.yaml",
    "config/samples/staging-light.yaml",
    "config/samples/audit-only.yaml",
];

#[test]
fn crd_prints_the_committed_crds() {
    let read = |file: &str| std::fs::read_to_string(repo_path(file)).expect("the committed CRD");
    let profiles = read("crds/baseliner.dev_productionprofiles.yaml");
    let exceptions = read("crds/baseliner.dev_profileexceptions.yaml");
    for (args, want) in [
        (&["crd", "productionprofiles"][..], profiles.clone()),
        (&["crd", "profileexceptions"][..], exceptions.clone()),
        (&["crd"][..], format!("{profiles}---\n{exceptions}")),
    ] {
        let output = baseliner(args);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output), want, "{args:?}: run `make crd`");
    }
}

#[test]
fn validate_accepts_the_samples() {
    let output = baseliner(&["validate", SAMPLES[0], SAMPLES[1], SAMPLES[2]]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "config/samples/production-strict.yaml: document 1 (production-strict): ok\n\
         config/samples/staging-light.yaml: document 1 (staging-light): ok\n\
         config/samples/audit-only.yaml: document 1 (audit-only): ok\n"
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn validate_prints_one_line_per_problem_and_fails() {
    let scratch = Scratch::new("bad");
    let file = scratch.file(
        "bad.yaml",
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: shop\nspec:\n  namespaces:\n    include: [shop]\n  backup:\n    schedule: '0 2 * * 7'\n  resourceQuota:\n    hard:\n      pods: lots\n",
    );
    let output = baseliner(&["validate", &file]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        vec![
            format!(
                "{file}: document 1 (shop): spec.resourceQuota.hard: values must be quantities such as 8, 500m or 16Gi, not negative"
            ),
            format!(
                "{file}: document 1 (shop): spec.backup.schedule: day of week field \"7\": 7 is out of range 0-6 (Sunday is 0)"
            ),
        ]
    );
}

#[test]
fn validate_reports_each_document_of_a_stream() {
    let good = std::fs::read_to_string(repo_path(SAMPLES[2])).expect("sample");
    let stream = format!("{good}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    let output = baseliner_with_stdin(&["validate", "-"], &stream);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "<stdin>: document 1 (audit-only): ok\n");
    assert_eq!(
        stderr(&output),
        "<stdin>: document 2 (shop): kind: expected a ProductionProfile or ProfileException (baseliner.dev/v1alpha1), found kind \"Namespace\"\n"
    );
}

#[test]
fn validate_reports_malformed_yaml_with_its_line() {
    let scratch = Scratch::new("malformed");
    let file = scratch.file(
        "malformed.yaml",
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: shop\n   spec: [\n",
    );
    let output = baseliner(&["validate", &file]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with(&format!("{file}: document 1: invalid YAML at line 5")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn validate_refuses_empty_files_missing_paths_and_directories() {
    let scratch = Scratch::new("inputs");
    let empty = scratch.file("empty.yaml", "# nothing here\n---\n");
    let directory = scratch.0.display().to_string();
    let missing = scratch.0.join("missing.yaml").display().to_string();
    let output = baseliner(&["validate", &empty, &missing, &directory, SAMPLES[0]]);
    assert_eq!(output.status.code(), Some(1));
    // The valid file is still checked and reported.
    assert_eq!(
        stdout(&output),
        "config/samples/production-strict.yaml: document 1 (production-strict): ok\n"
    );
    let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], format!("{empty}: holds no YAML documents"));
    assert!(
        lines[1].starts_with(&format!("{missing}: cannot read: ")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!("{directory}: is a directory")),
        "{}",
        lines[2]
    );
}

#[test]
fn validate_refuses_binary_input() {
    let scratch = Scratch::new("binary");
    let path = scratch.0.join("binary.yaml");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x41]).expect("write");
    let output = baseliner(&["validate", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn validate_without_files_is_a_usage_error() {
    let output = baseliner(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("FILE"), "{}", stderr(&output));
}

/// Every document of a YAML stream, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).expect("render prints valid YAML")
}

fn kinds_and_names(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn render(profile: &str, namespace: &str, labels: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["render", "--profile", profile, "--namespace", namespace];
    for label in labels {
        args.extend(["--label", label]);
    }
    args.extend(extra);
    baseliner(&args)
}

#[test]
fn render_production_strict_prints_every_object() {
    let output = render(
        SAMPLES[0],
        "shop",
        &["env=production", "team=payments"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let objects = documents(&stdout(&output));
    let found = kinds_and_names(&objects);
    let expected: Vec<(String, String)> = [
        ("Namespace", "shop"),
        ("LimitRange", "baseliner-limits"),
        ("NetworkPolicy", "baseliner-allow-dns"),
        ("NetworkPolicy", "baseliner-allow-from-ingress-nginx"),
        ("NetworkPolicy", "baseliner-allow-from-monitoring"),
        ("NetworkPolicy", "baseliner-allow-same-namespace"),
        ("NetworkPolicy", "baseliner-allow-to-payments-api"),
        ("NetworkPolicy", "baseliner-default-deny"),
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-team-developers"),
        ("RoleBinding", "baseliner-team-viewers"),
    ]
    .iter()
    .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
    .collect();
    assert_eq!(found[..found.len() - 1], expected[..]);
    let schedule = &objects[objects.len() - 1];
    assert_eq!(schedule["kind"], "Schedule");
    assert_eq!(schedule["apiVersion"], "velero.io/v1");
    assert_eq!(schedule["metadata"]["namespace"], "velero");
    assert_eq!(schedule["spec"]["schedule"], "0 2 * * *");
    assert_eq!(
        schedule["spec"]["template"]["includedNamespaces"][0],
        "shop"
    );

    // The Namespace carries only the Pod Security labels.
    let namespace = &objects[0];
    assert_eq!(namespace["apiVersion"], "v1");
    let labels = namespace["metadata"]["labels"].as_object().expect("labels");
    assert!(
        labels
            .keys()
            .all(|k| k.starts_with("pod-security.kubernetes.io/"))
    );
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");

    // Templates are filled in from the namespace's labels.
    let developers = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "baseliner-team-developers")
        .expect("developers binding");
    assert_eq!(
        developers["subjects"][0]["name"],
        "team-payments-developers"
    );
    assert_eq!(developers["subjects"][1]["namespace"], "ci-payments");

    // Every object in a namespace is labelled as managed by this profile.
    for object in &objects[1..] {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "baseliner"
        );
        assert_eq!(
            object["metadata"]["labels"]["baseliner.dev/profile"],
            "production-strict"
        );
    }
}

#[test]
fn render_each_sample_for_a_namespace_it_selects() {
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            SAMPLES[0],
            &["env=production", "team=payments"],
            &[
                "Namespace",
                "LimitRange",
                "NetworkPolicy",
                "ResourceQuota",
                "RoleBinding",
                "Schedule",
            ],
        ),
        (
            SAMPLES[1],
            &["env=staging", "team=payments"],
            &[
                "Namespace",
                "LimitRange",
                "NetworkPolicy",
                "ResourceQuota",
                "RoleBinding",
                "Schedule",
            ],
        ),
        (
            SAMPLES[2],
            &["compliance=pci"],
            &["Namespace", "NetworkPolicy", "ResourceQuota", "Schedule"],
        ),
    ];
    for (sample, labels, kinds) in cases {
        let output = render(sample, "shop", labels, &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{sample}: {}",
            stderr(&output)
        );
        let mut found: Vec<String> = kinds_and_names(&documents(&stdout(&output)))
            .into_iter()
            .map(|(kind, _)| kind)
            .collect();
        found.dedup();
        assert_eq!(found, kinds, "{sample}");
    }
}

#[test]
fn render_json_prints_a_list() {
    let output = render(
        SAMPLES[1],
        "shop",
        &["env=staging", "team=web"],
        &["-o", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let list: Value = serde_json::from_str(&stdout(&output)).expect("render -o json prints JSON");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    let yaml = render(SAMPLES[1], "shop", &["env=staging", "team=web"], &[]);
    assert_eq!(
        items,
        &documents(&stdout(&yaml)),
        "JSON and YAML hold the same objects"
    );
}

#[test]
fn render_refuses_an_invalid_profile_with_validate_lines() {
    let file = "tests/fixtures/invalid/02-mode-enum.yaml";
    let output = render(file, "shop", &["env=production"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let text = stderr(&output);
    assert!(
        text.starts_with(&format!(
            "{file}: document 1 (mode-enum): spec.mode: unsupported value \"enforce\""
        )),
        "{text}"
    );
}

#[test]
fn render_prints_nothing_when_the_namespace_is_not_selected() {
    let cases = [
        (
            "shop",
            &["env=staging"][..],
            "its labels do not match spec.namespaces.selector",
        ),
        (
            "production-sandbox",
            &["env=production"][..],
            "listed in spec.namespaces.exclude",
        ),
        (
            "kube-system",
            &["env=production"][..],
            "system namespaces are selected only when listed",
        ),
    ];
    for (namespace, labels, why) in cases {
        let output = render(SAMPLES[0], namespace, labels, &[]);
        assert_eq!(output.status.code(), Some(3), "{namespace}");
        assert_eq!(stdout(&output), "", "{namespace}");
        let text = stderr(&output);
        assert!(
            text.contains(&format!("does not select namespace \"{namespace}\""))
                && text.contains(why),
            "{namespace}: {text}"
        );
    }
}

#[test]
fn render_reports_what_cannot_be_rendered_and_prints_the_rest() {
    // `edit` is not allowed and the `team` label is missing: both bindings
    // fail, everything else is still printed.
    let output = render(
        SAMPLES[0],
        "shop",
        &["env=production"],
        &["--allowed-cluster-roles", "view,admin"],
    );
    assert_eq!(output.status.code(), Some(1));
    let names: Vec<String> = kinds_and_names(&documents(&stdout(&output)))
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert!(
        names.contains(&"baseliner-default-deny".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("baseliner-team-")),
        "{names:?}"
    );
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.roleBindings[1].clusterRole")
                && l.contains("(RoleNotAllowed)")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.roleBindings[0]") && l.contains("label `team` missing")),
        "{text}"
    );
}

#[test]
fn render_checks_its_arguments() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--namespace", "Shop"],
            "--namespace \"Shop\": not a namespace name",
        ),
        (
            &["--namespace", "shop", "--label", "bad key=x"],
            "--label bad key=x: invalid key",
        ),
        (
            &["--namespace", "shop", "--label", "novalue"],
            "expected KEY=VALUE",
        ),
        (&["--namespace", "shop", "-o", "xml"], "invalid value 'xml'"),
    ];
    for (args, message) in cases {
        let mut all = vec!["render", "--profile", SAMPLES[0]];
        all.extend(args);
        let output = baseliner(&all);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn render_refuses_files_without_exactly_one_document() {
    let scratch = Scratch::new("render-files");
    let empty = scratch.file("empty.yaml", "");
    let sample = std::fs::read_to_string(repo_path(SAMPLES[2])).expect("sample");
    let two = scratch.file("two.yaml", &format!("{sample}---\n{sample}"));
    for (file, message) in [
        (empty, "holds no YAML documents"),
        (two, "holds 2 documents"),
    ] {
        let output = render(&file, "shop", &[], &[]);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
    }
}

#[test]
fn plan_refuses_invalid_manifests_before_reading_any_cluster() {
    let dir = Scratch::new("plan-invalid");
    let file = dir.file(
        "bad.yaml",
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {name: bad}\nspec:\n  namespaces: {selector: {}}\n  priority: 5000\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_baseliner"))
        .args(["plan", "-f", &file])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("spec.priority"), "{text}");
    assert!(!text.contains("connect"), "read a cluster first: {text}");
}

#[test]
fn plan_without_a_cluster_says_how_to_give_one() {
    let dir = Scratch::new("plan-no-cluster");
    let file = dir.file(
        "ok.yaml",
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {name: ok}\nspec:\n  namespaces: {selector: {}}\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_baseliner"))
        .args(["plan", "-f", &file])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("cannot connect to a cluster") && text.contains("KUBECONFIG"),
        "{text}"
    );
}

#[test]
fn the_kubectl_plugin_is_the_same_command_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-baseliner"))
        .args(["plan", "--help"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("Usage: kubectl baseliner plan"), "{text}");
    assert!(
        text.contains("--prune") && text.contains("markdown"),
        "{text}"
    );
}

#[test]
fn validate_checks_exceptions_against_the_profiles_given_with_them() {
    let scratch = Scratch::new("exceptions");
    let profile = scratch.file(
        "profile.yaml",
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {name: strict}\nspec: {namespaces: {selector: {}}, networkPolicy: {}}\n",
    );
    let in_days = |days: i64| {
        (k8s_openapi::jiff::Timestamp::now()
            + k8s_openapi::jiff::SignedDuration::from_hours(days * 24))
        .to_string()
    };
    let exception = |name: &str, rest: &str, expires: &str| {
        format!(
            "---\napiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata: {{name: {name}}}\nspec: {{profile: strict, namespaces: {{names: [legacy]}}, expires: '{expires}', {rest}}}\n"
        )
    };
    let exceptions = scratch.file(
        "exceptions.yaml",
        &[
            exception(
                "ok",
                "reason: migration, waive: {defaultDeny: true}",
                &in_days(10),
            ),
            exception(
                "no-backup",
                "reason: migration, waive: {backup: true}",
                &in_days(10),
            ),
            exception(
                "blank",
                "reason: '  ', waive: {defaultDeny: true}",
                &in_days(10),
            ),
            exception(
                "too-long",
                "reason: migration, waive: {defaultDeny: true}",
                &in_days(120),
            ),
            exception(
                "not-a-time",
                "reason: migration, waive: {defaultDeny: true}",
                "soon",
            ),
            exception("nothing", "reason: migration", &in_days(10)),
        ]
        .concat(),
    );
    let output = baseliner(&["validate", &profile, &exceptions]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    for (name, field) in [
        ("no-backup", "spec.waive.backup"),
        ("blank", "spec.reason"),
        ("too-long", "spec.expires"),
        ("not-a-time", "spec.expires"),
        (
            "nothing",
            "spec.waive or spec.replace must name at least one control",
        ),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("({name})")) && l.contains(field)),
            "{name}: {field} not reported:\n{err}"
        );
    }
    assert!(
        stdout(&output).contains("document 1 (ok): ok"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn the_sample_exception_is_valid_against_its_profile() {
    let text = std::fs::read_to_string(repo_path("config/samples/exceptions/staging-quota.yaml"))
        .expect("the sample exception");
    let expires = (k8s_openapi::jiff::Timestamp::now()
        + k8s_openapi::jiff::SignedDuration::from_hours(30 * 24))
    .to_string();
    let scratch = Scratch::new("sample-exception");
    let file = scratch.file("exception.yaml", &text.replace("EXPIRES", &expires));
    let output = baseliner(&["validate", "config/samples/staging-light.yaml", &file]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
