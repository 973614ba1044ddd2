//! Operator metrics, served in the OpenMetrics text format on `/metrics`.
//!
//! Every series is prefixed `baseliner_`. Label values are bounded: result
//! (`success`, `error`), the managed kind, the API action and status code,
//! and the profile name (one series per profile).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::kind::ManagedKind;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    kind: &'static str,
    /// `get` (one object) or `list` (one page of a kind's objects).
    verb: &'static str,
}

/// The verbs managed objects are read with.
pub const READ_VERBS: [&str; 2] = ["get", "list"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    action: &'static str,
    /// The HTTP status the API server answered, or `none` when no answer
    /// came (connection refused, timeout).
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProfileLabels {
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExceptionStateLabels {
    state: &'static str,
}

/// The states exceptions are counted in.
pub const EXCEPTION_STATES: [&str; 4] = ["in_force", "expiring_soon", "expired", "invalid"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

fn reconcile_duration_histogram() -> Histogram {
    // 1 ms to about 16 s: a reconcile that writes nothing takes a few ms, one
    // that applies a full baseline a few hundred.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What the controller and the leader election did, for Prometheus.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    applied: Family<KindLabels, Counter>,
    pruned: Family<KindLabels, Counter>,
    drift_corrections: Family<KindLabels, Counter>,
    object_reads: Family<ReadLabels, Counter>,
    unverified_objects: Gauge,
    api_errors: Family<ApiErrorLabels, Counter>,
    matched_namespaces: Family<ProfileLabels, Gauge>,
    compliant_namespaces: Family<ProfileLabels, Gauge>,
    excepted_namespaces: Family<ProfileLabels, Gauge>,
    exceptions: Family<ExceptionStateLabels, Gauge>,
    /// Profiles with series in the three families above, so series of deleted
    /// profiles can be dropped.
    profiles_reported: std::sync::Mutex<std::collections::BTreeSet<String>>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("baseliner");
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: reconcile_duration_histogram(),
            applied: Family::default(),
            pruned: Family::default(),
            drift_corrections: Family::default(),
            object_reads: Family::default(),
            unverified_objects: Gauge::default(),
            api_errors: Family::default(),
            matched_namespaces: Family::default(),
            compliant_namespaces: Family::default(),
            excepted_namespaces: Family::default(),
            exceptions: Family::default(),
            profiles_reported: Default::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Namespace reconciles, by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one namespace reconcile took",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "objects_applied",
            "Objects created or updated with server-side apply, by kind",
            metrics.applied.clone(),
        );
        registry.register(
            "objects_pruned",
            "Objects deleted or orphaned because no profile wants them any more, by kind",
            metrics.pruned.clone(),
        );
        registry.register(
            "drift_corrections",
            "Managed objects put back after someone edited or deleted them, by kind",
            metrics.drift_corrections.clone(),
        );
        registry.register(
            "object_reads",
            "Reads of managed objects' bodies, by kind and verb: get (one object) or list (one page)",
            metrics.object_reads.clone(),
        );
        registry.register(
            "unverified_objects",
            "Managed objects whose current version is not yet known to be in sync or drifted",
            metrics.unverified_objects.clone(),
        );
        registry.register(
            "api_errors",
            "API requests that failed a reconcile, by action and HTTP status code",
            metrics.api_errors.clone(),
        );
        registry.register(
            "profile_matched_namespaces",
            "Namespaces a profile owns",
            metrics.matched_namespaces.clone(),
        );
        registry.register(
            "profile_compliant_namespaces",
            "Namespaces a profile owns that match its baseline",
            metrics.compliant_namespaces.clone(),
        );
        registry.register(
            "profile_excepted_namespaces",
            "Namespaces a profile owns that match its baseline only because exceptions waive controls",
            metrics.excepted_namespaces.clone(),
        );
        registry.register(
            "exceptions",
            "ProfileExceptions by state: in_force (including expiring_soon), expiring_soon, expired, invalid",
            metrics.exceptions.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and writes, else 0",
            metrics.leader.clone(),
        );
        registry.register(
            "build",
            "The running baseliner version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        // Series that exist from the start read 0 rather than missing, so
        // rates and alerts work before the first event.
        for result in ["success", "error"] {
            let _ = metrics.reconciles.get_or_create(&ResultLabels { result });
        }
        for kind in ManagedKind::ALL {
            let _ = metrics.applied.get_or_create(&kind_labels(kind));
            let _ = metrics.pruned.get_or_create(&kind_labels(kind));
            let _ = metrics.drift_corrections.get_or_create(&kind_labels(kind));
            for verb in READ_VERBS {
                let _ = metrics.object_reads.get_or_create(&ReadLabels {
                    kind: kind.as_str(),
                    verb,
                });
            }
        }
        for state in EXCEPTION_STATES {
            let _ = metrics
                .exceptions
                .get_or_create(&ExceptionStateLabels { state });
        }
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// One namespace reconcile finished.
    pub fn reconciled(&self, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn applied(&self, kind: ManagedKind) {
        self.applied.get_or_create(&kind_labels(kind)).inc();
    }

    pub fn pruned(&self, kind: ManagedKind) {
        self.pruned.get_or_create(&kind_labels(kind)).inc();
    }

    pub fn drift_corrected(&self, kind: ManagedKind) {
        self.drift_corrections
            .get_or_create(&kind_labels(kind))
            .inc();
    }

    /// One read of managed objects: `verb` is one of [`READ_VERBS`].
    pub fn read(&self, kind: ManagedKind, verb: &'static str) {
        self.object_reads
            .get_or_create(&ReadLabels {
                kind: kind.as_str(),
                verb,
            })
            .inc();
    }

    pub fn set_unverified_objects(&self, count: usize) {
        self.unverified_objects
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// An API request failed: `action` is what was attempted (`apply`,
    /// `delete`, ...), `error` what kube returned.
    pub fn api_error(&self, action: &'static str, error: &kube::Error) {
        let code = match error {
            kube::Error::Api(status) => status.code.to_string(),
            _ => "none".to_owned(),
        };
        self.api_errors
            .get_or_create(&ApiErrorLabels { action, code })
            .inc();
    }

    pub fn set_profile_counts(&self, profile: &str, matched: i32, compliant: i32, excepted: i32) {
        self.profiles_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(profile.to_owned());
        let labels = ProfileLabels {
            profile: profile.to_owned(),
        };
        self.matched_namespaces
            .get_or_create(&labels)
            .set(matched.into());
        self.compliant_namespaces
            .get_or_create(&labels)
            .set(compliant.into());
        self.excepted_namespaces
            .get_or_create(&labels)
            .set(excepted.into());
    }

    /// How many exceptions are in each of [`EXCEPTION_STATES`], in order.
    pub fn set_exception_counts(&self, counts: [i64; 4]) {
        for (state, count) in EXCEPTION_STATES.into_iter().zip(counts) {
            self.exceptions
                .get_or_create(&ExceptionStateLabels { state })
                .set(count);
        }
    }

    /// Drops the per-profile series of profiles that no longer exist.
    pub fn retain_profiles(&self, profiles: &[String]) {
        let mut reported = self
            .profiles_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reported.retain(|profile| {
            let keep = profiles.contains(profile);
            if !keep {
                let labels = ProfileLabels {
                    profile: profile.clone(),
                };
                self.matched_namespaces.remove(&labels);
                self.compliant_namespaces.remove(&labels);
                self.excepted_namespaces.remove(&labels);
            }
            keep
        });
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(leader.into());
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn kind_labels(kind: ManagedKind) -> KindLabels {
    KindLabels {
        kind: kind.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_gauges_show_up_under_their_names() {
        let metrics = Metrics::default();
        metrics.reconciled(true, Duration::from_millis(3));
        metrics.reconciled(true, Duration::from_millis(5));
        metrics.reconciled(false, Duration::from_millis(7));
        metrics.applied(ManagedKind::NetworkPolicy);
        metrics.applied(ManagedKind::NetworkPolicy);
        metrics.pruned(ManagedKind::RoleBinding);
        metrics.drift_corrected(ManagedKind::LimitRange);
        metrics.read(ManagedKind::ResourceQuota, "list");
        metrics.read(ManagedKind::ResourceQuota, "get");
        metrics.read(ManagedKind::ResourceQuota, "get");
        metrics.set_unverified_objects(12);
        metrics.set_profile_counts("production-strict", 4, 3, 1);
        metrics.set_exception_counts([2, 1, 0, 1]);
        metrics.set_leader(true);
        let text = metrics.encode();
        let cases = [
            (r#"baseliner_reconciles_total{result="success"}"#, 2.0),
            (r#"baseliner_reconciles_total{result="error"}"#, 1.0),
            ("baseliner_reconcile_duration_seconds_count", 3.0),
            (
                r#"baseliner_objects_applied_total{kind="NetworkPolicy"}"#,
                2.0,
            ),
            (r#"baseliner_objects_pruned_total{kind="RoleBinding"}"#, 1.0),
            (
                r#"baseliner_drift_corrections_total{kind="LimitRange"}"#,
                1.0,
            ),
            (
                r#"baseliner_object_reads_total{kind="ResourceQuota",verb="get"}"#,
                2.0,
            ),
            (
                r#"baseliner_object_reads_total{kind="ResourceQuota",verb="list"}"#,
                1.0,
            ),
            ("baseliner_unverified_objects", 12.0),
            (
                r#"baseliner_profile_matched_namespaces{profile="production-strict"}"#,
                4.0,
            ),
            (
                r#"baseliner_profile_excepted_namespaces{profile="production-strict"}"#,
                1.0,
            ),
            (r#"baseliner_exceptions{state="in_force"}"#, 2.0),
            (r#"baseliner_exceptions{state="expiring_soon"}"#, 1.0),
            (r#"baseliner_exceptions{state="invalid"}"#, 1.0),
            (
                r#"baseliner_profile_compliant_namespaces{profile="production-strict"}"#,
                3.0,
            ),
            ("baseliner_leader", 1.0),
        ];
        for (series, want) in cases {
            assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
        }
        assert!(text.contains("baseliner_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn api_errors_are_labelled_by_action_and_code() {
        let metrics = Metrics::default();
        let forbidden = kube::Error::Api(
            kube::core::Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        metrics.api_error("apply", &forbidden);
        metrics.api_error("apply", &forbidden);
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                r#"baseliner_api_errors_total{action="apply",code="403"}"#
            ),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn per_kind_counters_start_at_zero() {
        let text = Metrics::default().encode();
        for series in [
            r#"baseliner_reconciles_total{result="error"}"#,
            r#"baseliner_objects_applied_total{kind="Schedule"}"#,
            r#"baseliner_objects_pruned_total{kind="LimitRange"}"#,
            r#"baseliner_drift_corrections_total{kind="RoleBinding"}"#,
            r#"baseliner_object_reads_total{kind="NetworkPolicy",verb="list"}"#,
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
        }
    }

    #[test]
    fn leader_gauge_follows_leadership() {
        let metrics = Metrics::default();
        assert_eq!(sample(&metrics.encode(), "baseliner_leader"), Some(0.0));
        metrics.set_leader(true);
        metrics.set_leader(false);
        assert_eq!(sample(&metrics.encode(), "baseliner_leader"), Some(0.0));
    }

    #[test]
    fn series_of_deleted_profiles_are_dropped() {
        let metrics = Metrics::default();
        metrics.set_profile_counts("kept", 3, 2, 0);
        metrics.set_profile_counts("gone", 5, 5, 0);
        metrics.retain_profiles(&["kept".to_owned()]);
        let text = metrics.encode();
        assert!(text.contains("profile=\"kept\""), "{text}");
        assert!(!text.contains("profile=\"gone\""), "{text}");
    }
}
