//! The controller: watches, the work queue, and the reconcile of each
//! namespace to the profile that owns it.
//!
//! - [`plan`]: the pure plan of a namespace's reconcile.
//! - [`reconcile`]: carries plans out (the only place that writes managed
//!   objects).
//! - [`index`]: metadata-only view of every managed object, by namespace.
//! - [`verified`]: what is known to be in sync, and our own writes the
//!   caches have not caught up with.
//! - [`verify`]: learns what is in sync by listing a page at a time, at
//!   start and whenever objects changed, on every replica.
//! - [`namespace`]: the namespace cache's compact type.
//! - [`report`]: what each namespace's last reconcile found.
//! - [`status`]: per-profile status and Events.
//! - [`exceptions`]: per-exception status, Events and metrics.
//! - [`compare`]: pure desired-versus-live comparison.
//! - [`author_rights`]: whether the author-rights policy is enforced, which
//!   RoleBinding writes and Pod Security lowering wait for.

pub mod author_rights;
pub mod compare;
pub mod context;
pub mod events;
pub mod exceptions;
pub mod index;
pub mod namespace;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod status;
pub mod verified;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::exception::ProfileException;
use crate::api::{MANAGED_BY_LABEL, MANAGER_NAME, ProductionProfile};
use crate::health::CacheSync;
use crate::kind::ManagedKind;
use crate::metrics::Metrics;
use author_rights::AuthorRights;
pub use context::{
    AUTHOR_RIGHTS, Config, Context, EXCEPTIONS, Error, NAMESPACES, PROFILES, VERIFIED,
};
use events::EventBatcher;
use index::ManagedIndex;
use namespace::CachedNamespace;
use report::Reports;
use verified::VerifiedObjects;

/// Fails with a clear message unless the ProductionProfile and
/// ProfileException CRDs are installed and established.
pub async fn check_crd(client: &Client) -> Result<(), Error> {
    for name in [ProductionProfile::crd_name(), ProfileException::crd_name()] {
        check_one_crd(client, name).await?;
    }
    Ok(())
}

async fn check_one_crd(client: &Client, name: &str) -> Result<(), Error> {
    let name = name.to_owned();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(
            "get",
            &format!("CustomResourceDefinition {name}"),
        ))?
        .ok_or_else(|| Error::CrdMissing { name: name.clone() })?;
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Established"));
    match established {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(Error::CrdNotEstablished {
            name,
            reason: c.message.clone().unwrap_or_default(),
        }),
        None => Err(Error::CrdNotEstablished {
            name,
            reason: "no Established condition yet".to_owned(),
        }),
    }
}

/// Runs the controller until `shutdown` completes. Watches run and caches
/// fill on every replica; only while `leader` holds true does anything get
/// written, so a standby takes over with warm caches. `caches` learns as
/// each cache syncs (for `/readyz`).
pub async fn run(
    client: Client,
    config: Config,
    leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    metrics: Arc<Metrics>,
    caches: CacheSync,
) -> Result<(), Error> {
    check_crd(&client).await?;

    // Each cache says itself when its first list is complete. The stores'
    // own `wait_until_ready` is a one-shot that wakes only the last task to
    // wait on it, and the controller's runner already waits on the
    // namespace store: a second waiter (or a `now_or_never` peek) would
    // steal its wake-up, leaving `/readyz` or the runner stuck.
    caches.register([PROFILES, EXCEPTIONS, NAMESPACES, AUTHOR_RIGHTS, VERIFIED]);
    caches.register(ManagedKind::ALL.map(ManagedKind::as_str));

    let (profiles, profile_writer) = reflector::store::<ProductionProfile>();
    let profile_events = watcher(
        Api::<ProductionProfile>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|p| p.metadata.managed_fields = None)
    .reflect(profile_writer)
    .inspect(mark_listed(&caches, PROFILES));
    let (exceptions, exception_writer) = reflector::store::<ProfileException>();
    let exception_events = watcher(
        Api::<ProfileException>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|e| e.metadata.managed_fields = None)
    .reflect(exception_writer)
    .inspect(mark_listed(&caches, EXCEPTIONS));
    let (namespaces, namespace_writer) = reflector::store::<CachedNamespace>();
    let namespace_events = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default().page_size(500),
    )
    .default_backoff()
    .map_ok(cache_namespaces)
    .reflect(namespace_writer)
    .inspect(mark_listed(&caches, NAMESPACES));

    let (trigger_tx, trigger_rx) = mpsc::unbounded::<ObjectRef<CachedNamespace>>();
    let (resync_all_tx, resync_all_rx) = mpsc::unbounded::<()>();

    let author_rights = watch_author_rights(
        &client,
        config.grant_without_author_rights_policy,
        &caches,
        resync_all_tx.clone(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        profiles,
        exceptions,
        namespaces: namespaces.clone(),
        managed: ManagedIndex::default(),
        verified: VerifiedObjects::default(),
        verification: Default::default(),
        reports: Reports::default(),
        events: EventBatcher::default(),
        metrics,
        caches,
        leader: leader.clone(),
        author_rights,
        failures: Default::default(),
    });

    tokio::spawn(resync_on_leadership(leader, resync_all_tx.clone()));
    tokio::spawn(verify::run(ctx.clone(), resync_all_tx.clone()));

    // Managed objects: metadata-only, label-filtered; each change triggers
    // the namespace it serves.
    for kind in ManagedKind::ALL {
        tokio::spawn(watch_managed(
            ctx.clone(),
            kind,
            trigger_tx.clone(),
            resync_all_tx.clone(),
        ));
    }

    let namespace_stream = release_departed(ctx.clone(), namespace_events).applied_objects();

    let reconcile_all = futures::stream::select(
        futures::stream::select(
            specs_moving_namespaces(ctx.clone(), "profile", profile_events),
            specs_moving_namespaces(ctx.clone(), "exception", exception_events),
        ),
        resync_all_rx,
    );

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER_NAME.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    tokio::spawn(status::run_status_writer(ctx.clone(), recorder));

    run_controller(
        ctx,
        namespace_stream,
        namespaces,
        reconcile_all,
        trigger_rx,
        shutdown,
    )
    .await;
    info!("controller stopped");
    Ok(())
}

/// Whether grants are allowed, kept current from the author-rights policy
/// (or waived by the administrator); `caches` learns once it is known.
fn watch_author_rights(
    client: &Client,
    waived: bool,
    caches: &CacheSync,
    resync_all: mpsc::UnboundedSender<()>,
) -> watch::Receiver<AuthorRights> {
    let (author_rights_tx, author_rights) = watch::channel(AuthorRights::Unknown);
    if waived {
        warn!(
            "--unsafe-grant-without-author-rights-policy: RoleBindings and Pod Security are written whether or not the API server checks profile authors' rights"
        );
        let _ = author_rights_tx.send(AuthorRights::Waived);
        caches.mark_synced(AUTHOR_RIGHTS);
    } else {
        let caches = caches.clone();
        let resync = resync_all.clone();
        tokio::spawn(author_rights::watch_author_rights(
            client.clone(),
            author_rights_tx,
            move || {
                caches.mark_synced(AUTHOR_RIGHTS);
                let _ = resync.unbounded_send(());
            },
        ));
    }
    author_rights
}

/// Runs kube's controller over the namespaces until `shutdown` completes.
async fn run_controller(
    ctx: Arc<Context>,
    namespace_stream: impl futures::Stream<Item = Result<CachedNamespace, watcher::Error>>
    + Send
    + 'static,
    namespaces: reflector::Store<CachedNamespace>,
    reconcile_all: impl futures::Stream<Item = ()> + Send + 'static,
    trigger: mpsc::UnboundedReceiver<ObjectRef<CachedNamespace>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    info!(
        workers = ctx.config.workers,
        resync_seconds = ctx.config.resync.as_secs(),
        "controller starting"
    );
    Controller::for_stream(namespace_stream, namespaces)
        .with_config(controller::Config::default().concurrency(ctx.config.workers))
        .reconcile_all_on(reconcile_all)
        .reconcile_on(trigger)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_with_metrics, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                match error {
                    controller::Error::ObjectNotFound(_) => {}
                    other => warn!(error = %other, "reconcile failed"),
                }
            }
            future::ready(())
        })
        .await;
}

/// Passes namespace events on. A namespace that is gone may leave
/// Schedules behind in the Velero namespace (its own objects go with it):
/// those are released.
fn release_departed(
    ctx: Arc<Context>,
    events: impl futures::Stream<Item = Result<watcher::Event<CachedNamespace>, watcher::Error>>,
) -> impl futures::Stream<Item = Result<watcher::Event<CachedNamespace>, watcher::Error>> {
    events.inspect(move |event| {
        if let Ok(watcher::Event::Delete(ns)) = event {
            let ctx = ctx.clone();
            let name = ns.name_any();
            tokio::spawn(async move { reconcile::release_departed(&ctx, &name).await });
        }
    })
}

/// Becoming leader: everything may have changed while we were standby.
async fn resync_on_leadership(
    mut leadership: watch::Receiver<bool>,
    resync_all: mpsc::UnboundedSender<()>,
) {
    while leadership.changed().await.is_ok() {
        if *leadership.borrow_and_update() {
            info!("became leader; reconciling every namespace");
            let _ = resync_all.unbounded_send(());
        }
    }
}

/// The profile (or exception) events that may move namespaces. A spec may
/// move any namespace: reconcile them all (exceptions are few and rarely
/// change). Status cannot, and the operator writes status all through a
/// convergence: reconciling every namespace on each of those writes was
/// quadratic. The status writer looks at every event, so a status edited
/// by hand is put right.
fn specs_moving_namespaces<K: kube::Resource>(
    ctx: Arc<Context>,
    what: &'static str,
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) -> impl futures::Stream<Item = ()> {
    let mut versions = SpecVersions::default();
    events.filter_map(move |event| {
        future::ready(match event {
            Ok(event) => {
                ctx.reports.changed.notify_one();
                versions.moves_namespaces(&event).then_some(())
            }
            Err(error) => {
                warn!(%error, "{what} watch failed; retrying");
                None
            }
        })
    })
}

/// Watch events of namespaces, as the namespace cache keeps them.
fn cache_namespaces(
    event: watcher::Event<PartialObjectMeta<Namespace>>,
) -> watcher::Event<CachedNamespace> {
    use watcher::Event;
    match event {
        Event::Init => Event::Init,
        Event::InitApply(namespace) => Event::InitApply(namespace.into()),
        Event::InitDone => Event::InitDone,
        Event::Apply(namespace) => Event::Apply(namespace.into()),
        Event::Delete(namespace) => Event::Delete(namespace.into()),
    }
}

async fn reconcile_with_metrics(
    namespace: Arc<CachedNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let name = namespace.name_any();
    let result = reconcile::reconcile_namespace(namespace, ctx.clone()).await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    if let Err(Error::Kube { action, source, .. }) = &result {
        ctx.metrics.api_error(action, source);
    }
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
    }
    result
}

/// Retries a failed namespace with exponential backoff (1 s doubling to
/// 256 s); kube does not tell us about successes, so we count failures
/// ourselves and reset on success.
fn error_policy(namespace: Arc<CachedNamespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = namespace.name_any();
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let count = failures.entry(name.clone()).or_insert(0);
    *count = count.saturating_add(1);
    let delay = Duration::from_secs(1u64 << (*count - 1).min(8));
    error!(namespace = %name, %error, retry_in_seconds = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// The part of each profile (or exception) that decides what namespaces
/// hold (its uid, its spec's generation, whether it is being deleted), to
/// tell the events that may move namespaces from status-only ones.
#[derive(Debug, Default)]
struct SpecVersions {
    known: HashMap<String, SpecVersion>,
    /// Names listed since the last `Init`, while a (re-)list is under way.
    relisted: Option<HashSet<String>>,
}

#[derive(Debug, PartialEq, Eq)]
struct SpecVersion {
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
}

impl SpecVersions {
    /// Records `event`; true when it may change what a namespace holds.
    fn moves_namespaces<K: kube::Resource>(&mut self, event: &watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                false
            }
            watcher::Event::InitApply(profile) => {
                if let Some(relisted) = &mut self.relisted {
                    relisted.insert(profile.name_any());
                }
                self.record(profile);
                false
            }
            // Whatever changed while the watch was down shows here at once.
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    self.known.retain(|name, _| relisted.contains(name));
                }
                true
            }
            watcher::Event::Apply(profile) => self.record(profile),
            watcher::Event::Delete(profile) => {
                self.known.remove(&profile.name_any());
                true
            }
        }
    }

    /// True when the object is new or its spec or deletion changed.
    fn record<K: kube::Resource>(&mut self, object: &K) -> bool {
        let meta = object.meta();
        let version = SpecVersion {
            uid: meta.uid.clone(),
            generation: meta.generation,
            deleting: meta.deletion_timestamp.is_some(),
        };
        // Without a generation (never from a real API server) every event
        // counts as a change.
        let unchanged =
            version.generation.is_some() && self.known.get(&object.name_any()) == Some(&version);
        self.known.insert(object.name_any(), version);
        !unchanged
    }
}

/// Marks `name` synced at the first `InitDone` of a reflected watch (the
/// store has taken the whole list by then).
fn mark_listed<K>(
    caches: &CacheSync,
    name: &'static str,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let caches = caches.clone();
    move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            caches.mark_synced(name);
        }
    }
}

/// Retry delays of a watch that may fail for as long as a kind is not
/// served: 1 s, then 2 s from then on; any success starts over. (A failing
/// relist yields `Init` first, a success, so it retries every second, as
/// with kube's default; a failing watch restart backs off to 2 s.)
struct BoundedBackoff {
    next: Duration,
}

impl BoundedBackoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for BoundedBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for BoundedBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay)
    }
}

impl Backoff for BoundedBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

async fn watch_managed(
    ctx: Arc<Context>,
    kind: ManagedKind,
    trigger: mpsc::UnboundedSender<ObjectRef<CachedNamespace>>,
    resync_all: mpsc::UnboundedSender<()>,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(ctx.client.clone(), &kind.api_resource());
    let config = watcher::Config::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGER_NAME}"))
        .page_size(500);
    // Velero can be removed and installed again while we run. Its watch then
    // fails to restart over and over, and kube's default backoff grows to
    // 30 s plus up to 100% jitter: Schedules would lag the install by up to
    // a minute. One failing request every 2 s costs little.
    let backoff: Box<dyn Backoff> = match kind {
        ManagedKind::Schedule => Box::new(BoundedBackoff::default()),
        _ => Box::new(watcher::DefaultBackoff::default()),
    };
    let mut events = std::pin::pin!(watcher(api, config).backoff(backoff));
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let initial = matches!(event, watcher::Event::InitDone);
                if initial && ctx.managed.state(kind) == Some(index::WatchState::Synced) {
                    // Re-listed: what changed meanwhile is read again.
                    ctx.verification
                        .kind_changed(kind, verify::Change::Relisted);
                }
                for (served, key, live) in ctx.managed.apply_event(kind, event) {
                    match &live {
                        None => ctx.verified.forget(&key),
                        // The echo of our own write needs no reconcile.
                        Some(live)
                            if ctx.verified.is_known_version(&key, &live.resource_version) =>
                        {
                            continue;
                        }
                        Some(_) => ctx.verification.kind_changed(kind, verify::Change::Edited),
                    }
                    let _ = trigger.unbounded_send(ObjectRef::new(&served));
                }
                if initial {
                    ctx.caches.mark_synced(kind.as_str());
                    let _ = resync_all.unbounded_send(());
                }
            }
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if status.code == 404 =>
            {
                if ctx.managed.state(kind).is_none() {
                    info!(
                        kind = kind.as_str(),
                        "kind not served by the API server; will start using it once it is"
                    );
                    ctx.managed.mark_not_served(kind);
                    ctx.caches.mark_synced(kind.as_str());
                    let _ = resync_all.unbounded_send(());
                }
            }
            Err(error) => {
                // Velero is optional and may be mid-install or mid-removal
                // (its CRD terminating): until its first list succeeds, treat
                // it as not served, so readiness and every other kind go on.
                if kind == ManagedKind::Schedule && ctx.managed.state(kind).is_none() {
                    ctx.managed.mark_not_served(kind);
                    ctx.caches.mark_synced(kind.as_str());
                    let _ = resync_all.unbounded_send(());
                }
                warn!(kind = kind.as_str(), %error, "watch of managed objects failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn profile(name: &str, uid: &str, generation: i64) -> ProductionProfile {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "baseliner.dev/v1alpha1",
            "kind": "ProductionProfile",
            "metadata": {"name": name, "uid": uid, "generation": generation},
            "spec": {"namespaces": {"selector": {"matchLabels": {"tier": "prod"}}}},
        }))
        .expect("a valid profile")
    }

    #[test]
    fn only_spec_identity_and_deletion_move_namespaces() {
        let mut versions = SpecVersions::default();
        assert!(!versions.moves_namespaces(&Event::<ProductionProfile>::Init));
        assert!(!versions.moves_namespaces(&Event::InitApply(profile("a", "u1", 1))));
        assert!(
            versions.moves_namespaces(&Event::<ProductionProfile>::InitDone),
            "the first list"
        );

        // The operator's own status write: same uid and generation.
        assert!(!versions.moves_namespaces(&Event::Apply(profile("a", "u1", 1))));
        assert!(
            versions.moves_namespaces(&Event::Apply(profile("a", "u1", 2))),
            "spec edited"
        );
        assert!(
            versions.moves_namespaces(&Event::Apply(profile("b", "u2", 1))),
            "new profile"
        );
        assert!(
            versions.moves_namespaces(&Event::Apply(profile("a", "u3", 1))),
            "deleted and created again under the same name"
        );
        let mut deleting = profile("b", "u2", 1);
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert!(versions.moves_namespaces(&Event::Apply(deleting)));
        assert!(versions.moves_namespaces(&Event::Delete(profile("b", "u2", 1))));
        // Gone from the record: seen again, it is new.
        assert!(versions.moves_namespaces(&Event::Apply(profile("b", "u2", 1))));
    }

    #[test]
    fn a_relist_forgets_profiles_it_no_longer_lists() {
        let mut versions = SpecVersions::default();
        for event in [
            Event::Init,
            Event::InitApply(profile("a", "u1", 1)),
            Event::InitApply(profile("b", "u2", 1)),
            Event::InitDone,
        ] {
            versions.moves_namespaces(&event);
        }
        // After a 410 the watch re-lists; `b` was deleted meanwhile.
        versions.moves_namespaces(&Event::<ProductionProfile>::Init);
        versions.moves_namespaces(&Event::InitApply(profile("a", "u1", 1)));
        assert!(versions.moves_namespaces(&Event::<ProductionProfile>::InitDone));
        assert!(!versions.moves_namespaces(&Event::Apply(profile("a", "u1", 1))));
        assert!(
            versions.moves_namespaces(&Event::Apply(profile("b", "u2", 1))),
            "b was forgotten at the re-list, so it is new again"
        );
    }
}
