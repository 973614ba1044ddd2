//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's
//! rules, so replicas of baseliner agree on one writer and `kubectl get
//! lease` reads the record the usual way.
//!
//! - A candidate takes the Lease when it has no holder, or when the record
//!   has not changed for `leaseDurationSeconds` *as measured by the
//!   candidate's own clock* since it first saw that version. Clocks of
//!   different nodes are never compared, so clock skew cannot make two
//!   holders.
//! - Every write is a create, or a replace carrying the resourceVersion just
//!   read: of two candidates racing for the same record, the API server lets
//!   exactly one win (the other gets 409 Conflict).
//! - The holder renews every retry period. If it has not renewed for the
//!   renew deadline (shorter than the lease duration, so before anyone else
//!   may take over) it stops leading and the process exits: it never carries
//!   on as a second writer.
//! - On graceful shutdown the holder releases the Lease the way client-go's
//!   `ReleaseOnCancel` does (no holder, a 1 s duration), so a standby takes
//!   over at its next look instead of waiting out the lease.
//!
//! [`decide`] and [`claim`] are the pure core; [`LeaderElector`] does the
//! I/O.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, trace, warn};

/// The Lease the replicas of one installation share.
pub const DEFAULT_LEASE_NAME: &str = "baseliner-leader";

/// Where the Lease lives and how long things may take.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Who this replica is in the Lease's `holderIdentity`: unique per
    /// running process.
    pub identity: String,
    /// How long others wait on a record that stopped changing before they
    /// take over (after a crash).
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby looks.
    pub retry_period: Duration,
}

/// Errors of leader election.
#[derive(Debug, Error)]
pub enum Error {
    #[error("leader election timing: {0}")]
    InvalidTiming(String),
    #[error("lost the leader lease {lease}: {reason}; exiting so that only the new leader writes")]
    Lost { lease: String, reason: String },
}

impl LeaseConfig {
    /// Checks the orderings that keep two writers apart: the holder must
    /// give up (renew deadline) before others may take over (lease
    /// duration), and must get more than one try at renewing before that.
    pub fn validate(&self) -> Result<(), Error> {
        if self.renew_deadline >= self.lease_duration {
            return Err(Error::InvalidTiming(format!(
                "--lease-renew-deadline-seconds ({}) must be less than --lease-duration-seconds ({})",
                self.renew_deadline.as_secs(),
                self.lease_duration.as_secs()
            )));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(Error::InvalidTiming(format!(
                "--lease-retry-period-seconds ({}) must be less than --lease-renew-deadline-seconds ({})",
                self.retry_period.as_secs(),
                self.renew_deadline.as_secs()
            )));
        }
        if self.retry_period.is_zero() {
            return Err(Error::InvalidTiming(
                "--lease-retry-period-seconds must be at least 1".to_owned(),
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(Error::InvalidTiming(
                "--lease-duration-seconds is too large".to_owned(),
            ));
        }
        Ok(())
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `POD_NAME` (from the downward API) when set, else `hostname_pid`: unique
/// per running process either way.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "baseliner".to_owned());
    format!("{host}_{}", std::process::id())
}

/// What a candidate may do with the Lease as just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease object: create it, holding it.
    Create,
    /// This candidate holds it: renew.
    Renew,
    /// Nobody holds it, or the holder's record has expired: take it.
    Acquire,
    /// `holder` holds it for `remaining` more, unless it renews.
    Wait { holder: String, remaining: Duration },
}

/// Decides from the Lease (`None`: it does not exist) and how long this
/// candidate has seen the same version of it. The holder's own
/// `leaseDurationSeconds` counts (a released Lease says 1 s), falling back
/// to `default_duration`.
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        None => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => {
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(default_duration, Duration::from_secs);
            match duration.checked_sub(unchanged_for) {
                Some(remaining) if !remaining.is_zero() => Decision::Wait {
                    holder: holder.to_owned(),
                    remaining,
                },
                _ => Decision::Acquire,
            }
        }
    }
}

/// The spec that claims or renews the Lease for `identity` at `now`,
/// keeping what `previous` says that is not ours to change. A change of
/// holder is a transition: new acquire time, one more `leaseTransitions`.
pub fn claim(
    previous: Option<LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let existed = previous.is_some();
    let mut spec = previous.unwrap_or_default();
    let renewing = spec.holder_identity.as_deref() == Some(identity);
    if !renewing {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(if existed {
            spec.lease_transitions.unwrap_or(0).saturating_add(1)
        } else {
            0
        });
    }
    spec.holder_identity = Some(identity.to_owned());
    spec.lease_duration_seconds = Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
    spec.renew_time = Some(MicroTime(now));
    spec
}

/// The spec that gives the Lease up, as client-go's `ReleaseOnCancel` does:
/// no holder and a 1 s duration, so any candidate takes it at once.
pub fn release_spec(previous: Option<LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let mut spec = previous.unwrap_or_default();
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    spec
}

/// The version of the Lease last seen, and since when (local clock).
struct Observation {
    resource_version: Option<String>,
    since: Instant,
}

/// The outcome of one look at the Lease.
enum Attempt {
    /// We hold it now (created, acquired or renewed).
    Held,
    /// Someone else holds it.
    HeldBy { holder: String, remaining: Duration },
    /// Another writer changed it between our read and our write.
    Conflict,
    /// While leading: the Lease no longer names us (deleted, released or
    /// taken over).
    NotOurs(String),
}

/// Runs the election for one replica and publishes whether it leads.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    observed: Option<Observation>,
    /// The Lease as we last wrote it, while we hold it.
    held: Option<Lease>,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        config: LeaseConfig,
        leader: watch::Sender<bool>,
    ) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leader,
            observed: None,
            held: None,
        })
    }

    /// Stands by until this replica gets the Lease, then leads, renewing it,
    /// until `shutdown`. Returns `Ok` on shutdown, having published that it
    /// no longer leads but still holding the Lease: call
    /// [`LeaderElector::release`] once the writers have stopped. Returns
    /// [`Error::Lost`] when leadership was lost; the caller must exit.
    pub async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        info!(
            lease = %self.config.lease_ref(),
            identity = %self.config.identity,
            "leader election: waiting for the lease"
        );
        if !self.stand_by(shutdown).await {
            return Ok(());
        }
        info!(lease = %self.config.lease_ref(), identity = %self.config.identity, "acquired the leader lease; this replica writes");
        self.leader.send_replace(true);
        self.lead(shutdown).await
    }

    /// Returns true once the Lease is ours, false on shutdown.
    async fn stand_by(&mut self, shutdown: &CancellationToken) -> bool {
        let mut last_holder: Option<String> = None;
        loop {
            let wait = match self.attempt(false).await {
                Ok(Attempt::Held) => return true,
                Ok(Attempt::HeldBy { holder, remaining }) => {
                    if last_holder.as_ref() != Some(&holder) {
                        info!(%holder, "another replica leads; standing by");
                        last_holder = Some(holder);
                    }
                    // Look again when it would expire, if that is sooner.
                    remaining.min(self.config.retry_period)
                }
                Ok(Attempt::Conflict | Attempt::NotOurs(_)) => self.config.retry_period,
                Err(error) => {
                    warn!(lease = %self.config.lease_ref(), %error, "leader election: cannot read or write the lease; retrying");
                    self.config.retry_period
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn lead(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.leader.send_replace(false);
                    return Ok(());
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let deadline = renewed + self.config.renew_deadline;
            let attempt = tokio::time::timeout_at(deadline.into(), self.attempt(true)).await;
            match attempt {
                Ok(Ok(Attempt::Held)) => {
                    renewed = Instant::now();
                    continue;
                }
                Ok(Ok(Attempt::HeldBy { holder, .. })) => {
                    return Err(self.lost(format!("{holder} holds it now")));
                }
                Ok(Ok(Attempt::NotOurs(reason))) => return Err(self.lost(reason)),
                Ok(Ok(Attempt::Conflict)) => {
                    warn!(lease = %self.config.lease_ref(), "renewing the leader lease conflicted with another write; retrying");
                }
                Ok(Err(error)) => {
                    warn!(lease = %self.config.lease_ref(), %error, "renewing the leader lease failed; retrying");
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(self.lost(format!(
                    "not renewed for the renew deadline ({} s)",
                    self.config.renew_deadline.as_secs()
                )));
            }
        }
    }

    fn lost(&mut self, reason: String) -> Error {
        self.leader.send_replace(false);
        self.held = None;
        let error = Error::Lost {
            lease: self.config.lease_ref(),
            reason,
        };
        error!(%error, "leader election lost");
        error
    }

    /// Reads the Lease and creates, acquires or renews it if `decide` says
    /// so. While `leading`, anything but a renewal means someone else has it.
    async fn attempt(&mut self, leading: bool) -> Result<Attempt, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let unchanged_for = self.observe(current.as_ref());
        let decision = decide(
            current.as_ref(),
            &self.config.identity,
            unchanged_for,
            self.config.lease_duration,
        );
        trace!(?decision, "leader election");
        let lease = match (decision, current) {
            (Decision::Wait { holder, remaining }, _) => {
                self.held = None;
                return Ok(Attempt::HeldBy { holder, remaining });
            }
            (Decision::Create, _) if leading => {
                return Ok(Attempt::NotOurs("it was deleted".to_owned()));
            }
            (Decision::Acquire, _) if leading => {
                return Ok(Attempt::NotOurs(
                    "it no longer names this replica".to_owned(),
                ));
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.claim(None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew | Decision::Acquire, Some(mut lease)) => {
                lease.spec = Some(self.claim(lease.spec.take()));
                // `lease` carries the resourceVersion just read: the API
                // server refuses this write if anyone wrote in between.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match lease {
            Ok(written) => {
                self.observe(Some(&written));
                self.held = Some(written);
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    fn claim(&self, previous: Option<LeaseSpec>) -> LeaseSpec {
        claim(
            previous,
            &self.config.identity,
            self.config.lease_duration,
            Timestamp::now(),
        )
    }

    /// Notes the version seen; returns how long it has been the same.
    fn observe(&mut self, lease: Option<&Lease>) -> Duration {
        let resource_version = lease.and_then(|l| l.resource_version());
        let now = Instant::now();
        match &self.observed {
            Some(seen) if seen.resource_version == resource_version => now - seen.since,
            _ => {
                self.observed = Some(Observation {
                    resource_version,
                    since: now,
                });
                Duration::ZERO
            }
        }
    }

    /// Gives the Lease up if this replica still holds it, so a standby
    /// takes over without waiting for it to expire. Call only after the
    /// writers have stopped. Returns whether it was released.
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.held.take() else {
            return Ok(false);
        };
        self.leader.send_replace(false);
        lease.spec = Some(release_spec(lease.spec.take(), Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                info!(lease = %self.config.lease_ref(), "released the leader lease");
                Ok(true)
            }
            // Someone wrote it since our last renewal: it is not ours to give.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn lease(holder: Option<&str>, duration_seconds: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(DEFAULT_LEASE_NAME.to_owned()),
                resource_version: Some("7".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: duration_seconds,
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    fn wait(holder: &str, remaining: Duration) -> Decision {
        Decision::Wait {
            holder: holder.to_owned(),
            remaining,
        }
    }

    #[test]
    fn decide_cases() {
        let no_spec = Lease {
            spec: None,
            ..lease(None, None)
        };
        let cases: Vec<(&str, Option<Lease>, Duration, Decision)> = vec![
            ("no lease object", None, Duration::ZERO, Decision::Create),
            ("no spec", Some(no_spec), Duration::ZERO, Decision::Acquire),
            (
                "no holder",
                Some(lease(None, Some(15))),
                Duration::ZERO,
                Decision::Acquire,
            ),
            (
                "empty holder, as client-go releases",
                Some(lease(Some(""), Some(1))),
                Duration::ZERO,
                Decision::Acquire,
            ),
            (
                "ours",
                Some(lease(Some("me"), Some(15))),
                Duration::ZERO,
                Decision::Renew,
            ),
            (
                "ours even when it looks expired",
                Some(lease(Some("me"), Some(15))),
                60 * SECOND,
                Decision::Renew,
            ),
            (
                "theirs, just seen",
                Some(lease(Some("other"), Some(15))),
                Duration::ZERO,
                wait("other", 15 * SECOND),
            ),
            (
                "theirs, unchanged for part of its duration",
                Some(lease(Some("other"), Some(15))),
                4 * SECOND,
                wait("other", 11 * SECOND),
            ),
            (
                "theirs, unchanged for exactly its duration",
                Some(lease(Some("other"), Some(15))),
                15 * SECOND,
                Decision::Acquire,
            ),
            (
                "theirs, unchanged for longer",
                Some(lease(Some("other"), Some(15))),
                40 * SECOND,
                Decision::Acquire,
            ),
            (
                "their duration counts, not ours",
                Some(lease(Some("other"), Some(4))),
                5 * SECOND,
                Decision::Acquire,
            ),
            (
                "no duration: ours (10 s) counts",
                Some(lease(Some("other"), None)),
                5 * SECOND,
                wait("other", 5 * SECOND),
            ),
            (
                "a nonsense duration: ours counts",
                Some(lease(Some("other"), Some(-3))),
                5 * SECOND,
                wait("other", 5 * SECOND),
            ),
        ];
        for (name, lease, unchanged_for, want) in cases {
            let got = decide(lease.as_ref(), "me", unchanged_for, 10 * SECOND);
            assert_eq!(got, want, "{name}");
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("valid time")
    }

    #[test]
    fn claiming_a_new_lease_starts_at_zero_transitions() {
        let spec = claim(None, "me", 15 * SECOND, at(0));
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(0))));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let previous = lease(Some("other"), Some(15)).spec;
        let taken = claim(previous, "me", 15 * SECOND, at(10));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(10))));

        let renewed = claim(Some(taken), "me", 15 * SECOND, at(12));
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(10))), "kept");
        assert_eq!(renewed.renew_time, Some(MicroTime(at(12))));
    }

    #[test]
    fn claiming_keeps_fields_that_are_not_ours() {
        let mut previous = lease(Some("other"), Some(15)).spec;
        if let Some(spec) = previous.as_mut() {
            spec.strategy = Some("OldestEmulationVersion".to_owned());
        }
        let spec = claim(previous, "me", 15 * SECOND, at(0));
        assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let held = claim(None, "me", 15 * SECOND, at(0));
        let released = release_spec(Some(held), at(5));
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(0), "kept");
        let lease = Lease {
            spec: Some(released),
            ..lease(None, None)
        };
        assert_eq!(
            decide(Some(&lease), "other", Duration::ZERO, 15 * SECOND),
            Decision::Acquire
        );
    }

    #[test]
    fn timing_must_keep_two_writers_apart() {
        let config = |duration: u64, deadline: u64, retry: u64| LeaseConfig {
            namespace: "baseliner-system".to_owned(),
            name: DEFAULT_LEASE_NAME.to_owned(),
            identity: "me".to_owned(),
            lease_duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        };
        assert!(config(15, 10, 2).validate().is_ok());
        assert!(config(4, 3, 1).validate().is_ok());
        let refused = [
            (
                config(10, 10, 2),
                "--lease-renew-deadline-seconds (10) must be less than --lease-duration-seconds (10)",
            ),
            (config(10, 15, 2), "--lease-renew-deadline-seconds (15)"),
            (
                config(15, 10, 10),
                "--lease-retry-period-seconds (10) must be less than",
            ),
            (config(15, 10, 0), "at least 1"),
        ];
        for (config, message) in refused {
            let error = config.validate().expect_err(message).to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn identity_is_unique_per_process() {
        // POD_NAME is not set under cargo test.
        if std::env::var_os("POD_NAME").is_none() {
            let identity = default_identity();
            assert!(
                identity.ends_with(&format!("_{}", std::process::id())),
                "{identity}"
            );
        }
    }
}
