//! Verification from LISTs: learning which managed objects are in sync by
//! reading them a page at a time, not one GET each.
//!
//! The index holds metadata only, so an object the verified record does
//! not know at its current resourceVersion has to be read before it can be
//! called in sync. After a restart that is every object, and one GET each
//! was 70,000 requests at 10,000 namespaces. So once the caches are listed,
//! each kind's managed objects are listed here in pages of [`PAGE_SIZE`];
//! each object is compared with what its namespace's plan desires and
//! recorded when it is in sync, and the page is dropped, so memory is
//! bounded by a page. The leader's reconciles wait for this first pass, and
//! so does `/readyz`.
//!
//! Every replica does this, standbys included, and keeps its record current
//! afterwards: once a kind whose objects changed (the leader's writes,
//! people's edits, a watch that re-listed) has been quiet for [`QUIET`],
//! the versions not read yet are read by whichever takes fewer requests, a
//! LIST of the kind or one GET each. A standby that takes over has nothing
//! left to read. The leader reads a single changed object in its reconcile
//! at once, as it must to heal it, so here it only ever lists, and only
//! when many changed together (after a watch re-listed). A replica that
//! becomes leader first reads what changed since its last look (by LIST
//! where that is cheaper) and only then lets its reconciles run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::future::join_all;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::Context;
use super::index::{ObjectKey, WatchState, describe_object};
use super::reconcile::plan_from_caches;
use crate::api::{MANAGED_BY_LABEL, MANAGER_NAME};
use crate::kind::ManagedKind;

/// Objects per LIST page: 10,000 namespaces' objects of one kind in 20
/// requests, and a page's bodies (without managedFields) in about 1 MiB.
pub const PAGE_SIZE: u32 = 500;

/// How long a kind's objects must stay unchanged before the changed ones
/// are read: a convergence changes thousands within seconds, and reading
/// each as it changes would be a read per write.
pub const QUIET: Duration = Duration::from_secs(2);

/// The longest a kind that keeps changing waits to be read.
const MOST_DEFERRED: Duration = Duration::from_secs(30);

/// How a kind's objects changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Watch events: someone else's writes (people, the leader,
    /// kube-controller-manager's quota status). The leader's reconciles
    /// read those objects themselves as they come, one GET each, so only a
    /// standby reads them here.
    Edited,
    /// The watch re-listed: any number may have changed at once, and a
    /// LIST reads them cheaper than a GET each, on the leader too.
    Relisted,
}

/// Which kinds changed since they were last read (and whether by a
/// re-list), shared by the watches (which say so) and the task that reads.
/// The first pass is over once [`super::VERIFIED`] is marked synced, which
/// `/readyz` waits for too: a new replica of a rollout is ready once warm.
#[derive(Default)]
pub struct Verification {
    changed_kinds: Mutex<HashMap<ManagedKind, Change>>,
    changed: Notify,
    /// This replica leads and has read what changed while it did not.
    warm_leader: AtomicBool,
}

impl Verification {
    /// True once this replica, as leader, has read what changed before it
    /// led (the first pass, or the catch-up at a takeover): its reconciles
    /// wait for that, so they read nothing one by one that a LIST reads.
    pub fn is_warm_leader(&self) -> bool {
        self.warm_leader.load(Ordering::Acquire)
    }

    /// Objects of `kind` changed in a way that is not our own write's echo.
    pub fn kind_changed(&self, kind: ManagedKind, change: Change) {
        let mut changed = self.changed_kinds.lock().unwrap_or_else(|e| e.into_inner());
        let entry = changed.entry(kind).or_insert(change);
        if change == Change::Relisted {
            *entry = Change::Relisted;
        }
        drop(changed);
        self.changed.notify_one();
    }

    fn take_changed(&self) -> HashMap<ManagedKind, Change> {
        std::mem::take(&mut *self.changed_kinds.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs verification on this replica until the process ends: the first
/// pass once the caches are complete (then `resync_all`, so the leader
/// reconciles with what it learnt), then whatever changes.
pub async fn run(ctx: std::sync::Arc<Context>, resync_all: mpsc::UnboundedSender<()>) {
    while !ctx.caches_complete() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let kinds: Vec<ManagedKind> = ManagedKind::ALL
        .into_iter()
        .filter(|kind| ctx.managed.state(*kind) == Some(WatchState::Synced))
        .collect();
    let passes = join_all(kinds.iter().map(|kind| verify_by_list(&ctx, *kind))).await;
    let mut total = Pass::default();
    for (kind, pass) in kinds.iter().zip(passes) {
        match pass {
            Ok(pass) => total.add(&pass),
            Err(error) => warn!(
                kind = kind.as_str(),
                %error,
                "verifying from a LIST failed; changed objects are read one by one"
            ),
        }
    }
    ctx.caches.mark_synced(super::VERIFIED);
    let unverified = update_unverified(&ctx);
    info!(
        objects = total.listed,
        in_sync = total.in_sync,
        pages = total.pages,
        unverified,
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "verified the managed objects from LISTs"
    );
    let mut leadership = ctx.leader.clone();
    let leading = *leadership.borrow_and_update();
    ctx.verification
        .warm_leader
        .store(leading, Ordering::Release);
    let _ = resync_all.unbounded_send(());

    loop {
        tokio::select! {
            () = ctx.verification.changed.notified() => {
                wait_until_quiet(&ctx, &mut leadership).await;
                for (kind, change) in ctx.verification.take_changed() {
                    read_changed_logged(&ctx, kind, change).await;
                }
            }
            changed = leadership.changed() => if changed.is_err() { return },
        }
        let leading = *leadership.borrow_and_update();
        if leading && !ctx.verification.is_warm_leader() {
            // Taking over: what changed since the last look is read now,
            // by LIST where that is cheaper, before the reconciles start.
            let started = Instant::now();
            for kind in ManagedKind::ALL {
                read_changed_logged(&ctx, kind, Change::Relisted).await;
            }
            ctx.verification.warm_leader.store(true, Ordering::Release);
            info!(
                seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                "leading with every changed object read"
            );
            let _ = resync_all.unbounded_send(());
        } else if !leading {
            ctx.verification.warm_leader.store(false, Ordering::Release);
        }
        update_unverified(&ctx);
    }
}

/// Returns once no object changed for [`QUIET`], after [`MOST_DEFERRED`]
/// at most, or when leadership changes.
async fn wait_until_quiet(ctx: &Context, leadership: &mut tokio::sync::watch::Receiver<bool>) {
    let since = Instant::now();
    while since.elapsed() < MOST_DEFERRED {
        tokio::select! {
            () = ctx.verification.changed.notified() => {}
            () = tokio::time::sleep(QUIET) => return,
            _ = leadership.changed() => return,
        }
    }
}

async fn read_changed_logged(ctx: &Context, kind: ManagedKind, change: Change) {
    if let Err(error) = read_changed(ctx, kind, change).await {
        debug!(kind = kind.as_str(), %error, "reading changed objects failed");
    }
}

/// Reads the objects of `kind` whose current version has not been read, by
/// the cheaper of a LIST and one GET each ([`read_by`]).
async fn read_changed(ctx: &Context, kind: ManagedKind, change: Change) -> Result<(), kube::Error> {
    let reader = match (ctx.is_leader(), change) {
        (false, _) => Reader::Standby,
        (true, Change::Relisted) => Reader::LeaderAfterRelist,
        (true, Change::Edited) => Reader::Leader,
    };
    // Counting the unread would be wasted on the leader's edits.
    if reader == Reader::Leader || ctx.managed.state(kind) != Some(WatchState::Synced) {
        return Ok(());
    }
    // A GET each only for fewer than a LIST's pages.
    let most_gets = pages_for(ctx.managed.len());
    let versions =
        ctx.managed
            .unknown_versions(kind, |key, rv| ctx.verified.is_read(key, rv), most_gets);
    match read_by(versions.unknown, versions.objects, reader) {
        ReadBy::Nothing => {}
        ReadBy::List => {
            let pass = verify_by_list(ctx, kind).await?;
            debug!(
                kind = kind.as_str(),
                unread = versions.unknown,
                pages = pass.pages,
                in_sync = pass.in_sync,
                "re-verified from a LIST"
            );
        }
        ReadBy::Gets => {
            for (_, key) in versions.some_unknown {
                verify_by_get(ctx, &key).await?;
            }
        }
    }
    Ok(())
}

/// How a kind's unread versions are read.
#[derive(Debug, PartialEq, Eq)]
enum ReadBy {
    Nothing,
    /// One LIST of the kind, page by page.
    List,
    /// One GET per unread object.
    Gets,
}

/// Who reads, which decides what is left to its reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Standby,
    /// Its reconciles read each edited object as the edit arrives (and heal
    /// it), so reading them here too would read them twice: during a
    /// convergence kube-controller-manager updates every quota's status.
    Leader,
    /// After a re-list, when any number may be unread at once.
    LeaderAfterRelist,
}

/// The cheaper way to read `unread` of a kind's `objects`: a LIST when it
/// takes fewer requests than a GET each. The leader leaves edits, and
/// single objects, to its reconciles, which read (and heal) them at once.
fn read_by(unread: usize, objects: usize, reader: Reader) -> ReadBy {
    match (unread, reader) {
        (0, _) | (_, Reader::Leader) => ReadBy::Nothing,
        (n, _) if n > pages_for(objects) => ReadBy::List,
        (_, Reader::LeaderAfterRelist) => ReadBy::Nothing,
        (_, Reader::Standby) => ReadBy::Gets,
    }
}

/// Requests a LIST of `objects` takes.
fn pages_for(objects: usize) -> usize {
    objects / PAGE_SIZE as usize + 1
}

/// Recounts the objects whose current version is unread, for the metric.
fn update_unverified(ctx: &Context) -> usize {
    let unverified = ManagedKind::ALL
        .into_iter()
        .map(|kind| {
            ctx.managed
                .unknown_versions(kind, |key, rv| ctx.verified.is_read(key, rv), 0)
                .unknown
        })
        .sum();
    ctx.metrics.set_unverified_objects(unverified);
    unverified
}

/// What a pass read and learnt.
#[derive(Debug, Default)]
struct Pass {
    pages: usize,
    listed: usize,
    in_sync: usize,
}

impl Pass {
    fn add(&mut self, other: &Pass) {
        self.pages += other.pages;
        self.listed += other.listed;
        self.in_sync += other.in_sync;
    }
}

/// Lists `kind`'s managed objects a page at a time and records those in sync.
async fn verify_by_list(ctx: &Context, kind: ManagedKind) -> Result<Pass, kube::Error> {
    let resource = kind.api_resource();
    let url = kube::core::Request::new(
        kube::api::Api::<kube::api::DynamicObject>::all_with(ctx.client.clone(), &resource)
            .resource_url(),
    );
    let mut params = ListParams::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGER_NAME}"))
        .limit(PAGE_SIZE);
    let mut pass = Pass::default();
    loop {
        let mut request = url.list(&params).map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("list");
        ctx.metrics.read(kind, "list");
        let page: ListedPage = ctx.client.request(request).await?;
        pass.pages += 1;
        pass.listed += page.items.len();
        pass.in_sync += verify_listed(ctx, kind, page.items);
        match page.metadata.continue_token {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(pass),
        }
    }
}

/// Reads one object and records it if it is in sync.
async fn verify_by_get(ctx: &Context, key: &ObjectKey) -> Result<(), kube::Error> {
    let api = kube::api::Api::<kube::api::DynamicObject>::namespaced_with(
        ctx.client.clone(),
        &key.namespace,
        &key.kind.api_resource(),
    );
    let url = kube::core::Request::new(api.resource_url());
    let mut request = url
        .get(&key.name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("get");
    ctx.metrics.read(key.kind, "get");
    match ctx.client.request::<ListedObject>(request).await {
        Ok(object) => {
            verify_listed(ctx, key.kind, vec![object]);
            Ok(())
        }
        // Gone: the watch will say so.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Compares each object with what its namespace's plan desires; records
/// those in sync and notes the others as read. Gives back how many were in
/// sync. Objects are grouped by the namespace they serve (a LIST comes in
/// namespace order), so each namespace is planned once per page.
fn verify_listed(ctx: &Context, kind: ManagedKind, items: Vec<ListedObject>) -> usize {
    let mut by_served: BTreeMap<String, Vec<(ObjectKey, String, Value)>> = BTreeMap::new();
    for item in items {
        let (served, key, live) = describe_object(kind, &item.metadata);
        by_served
            .entry(served)
            .or_default()
            .push((key, live.resource_version, item.into_value()));
    }
    let mut in_sync = 0;
    for (served, objects) in by_served {
        let namespace = ctx.namespaces.get(&ObjectRef::new(&served));
        let plan = namespace
            .filter(|namespace| !namespace.is_terminating())
            .map(|namespace| plan_from_caches(ctx, &namespace).0);
        for (key, rv, body) in objects {
            match plan
                .as_ref()
                .and_then(|plan| plan.in_sync_fingerprint(&key, &body))
            {
                Some(fingerprint) => {
                    ctx.verified.record(&key, &rv, fingerprint);
                    in_sync += 1;
                }
                None => ctx.verified.note_read(&key, &rv),
            }
        }
    }
    in_sync
}

/// One page of a LIST, as verification reads it.
#[derive(serde::Deserialize)]
struct ListedPage {
    #[serde(default)]
    metadata: ListedPageMetadata,
    #[serde(default)]
    items: Vec<ListedObject>,
}

#[derive(Default, serde::Deserialize)]
struct ListedPageMetadata {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// A listed object without what comparing never looks at: `ObjectMeta`
/// keeps no managedFields (half an object's size), and the rest stays JSON.
#[derive(serde::Deserialize)]
struct ListedObject {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl ListedObject {
    fn into_value(self) -> Value {
        let mut object = self.rest;
        let mut metadata = self.metadata;
        metadata.managed_fields = None;
        object.insert(
            "metadata".to_owned(),
            serde_json::to_value(metadata).unwrap_or_default(),
        );
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_objects_are_read_the_cheaper_way() {
        use Reader::*;
        // 10,000 objects: a LIST is 21 pages.
        assert_eq!(read_by(0, 10_000, Standby), ReadBy::Nothing);
        assert_eq!(read_by(21, 10_000, Standby), ReadBy::Gets);
        assert_eq!(read_by(22, 10_000, Standby), ReadBy::List);
        assert_eq!(read_by(22, 10_000, LeaderAfterRelist), ReadBy::List);
        assert_eq!(
            read_by(3, 10_000, LeaderAfterRelist),
            ReadBy::Nothing,
            "the leader's reconciles read a few themselves"
        );
        assert_eq!(
            read_by(9_000, 10_000, Leader),
            ReadBy::Nothing,
            "edits reach the leader's reconciles, which read them"
        );
        assert_eq!(read_by(1, 10, Standby), ReadBy::Gets);
        assert_eq!(read_by(2, 10, Standby), ReadBy::List);
    }

    #[test]
    fn a_listed_page_keeps_what_comparing_needs_and_its_continue_token() {
        let page = r#"{"kind":"LimitRangeList","apiVersion":"v1",
            "metadata":{"resourceVersion":"90","continue":"abc"},
            "items":[{"metadata":{"name":"baseliner-limits","namespace":"shop","resourceVersion":"42",
                "labels":{"app.kubernetes.io/managed-by":"baseliner"},
                "managedFields":[{"manager":"baseliner","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
              "spec":{"limits":[{"type":"Container","default":{"cpu":"500m"}}]}}]}"#;
        let page: ListedPage = serde_json::from_str(page).unwrap();
        assert_eq!(page.metadata.continue_token.as_deref(), Some("abc"));
        let [object] = <[ListedObject; 1]>::try_from(page.items).ok().unwrap();
        let value = object.into_value();
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        assert_eq!(value["metadata"]["name"], "baseliner-limits");
        assert!(value["metadata"].get("managedFields").is_none());
        assert_eq!(value["spec"]["limits"][0]["default"]["cpu"], "500m");

        let last: ListedPage =
            serde_json::from_str(r#"{"metadata":{"resourceVersion":"91"},"items":[]}"#).unwrap();
        assert_eq!(last.metadata.continue_token, None);
    }
}
