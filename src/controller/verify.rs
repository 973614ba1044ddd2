//! Verification from LISTs: learning which managed objects are in sync by
//! reading them a page at a time, not one GET each.
//!
//! The index holds metadata only, so an object the verified record does
//! not know at its current resourceVersion has to be read before it can be
//! called in sync. After a restart that is every object, and one GET each
//! was 70,000 requests at 10,000 namespaces. So once the caches are listed,
//! each kind's managed objects are listed here in pages (of up to [`PAGE_SIZE`]),
//! the kinds side by side and merged by namespace; each object is compared
//! with what its namespace's plan (made once for all its kinds) desires and
//! recorded when it is in sync, and the page is dropped, so memory is
//! bounded by a few pages. The leader's reconciles wait for this first
//! pass, and so does `/readyz`.
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
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

/// Objects per LIST page for the kind with the most objects (the others'
/// pages are smaller, see [`page_limits`]): the 30,000 network policies
/// of 10,000 namespaces in 86 requests. The merge holds up to two pages of
/// each kind; with 500 a restart's peak RSS was 5 MiB higher (at 4,000
/// namespaces, side by side), and 250 saved no more.
pub const PAGE_SIZE: u32 = 350;

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
    let total = verify_by_list(&ctx, &kinds).await;
    for (kind, error) in &total.failed {
        warn!(
            kind = kind.as_str(),
            %error,
            "verifying from a LIST failed; changed objects are read one by one"
        );
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
            let mut pass = verify_by_list(ctx, &[kind]).await;
            if let Some((_, error)) = pass.failed.pop() {
                return Err(error);
            }
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
    /// Kinds whose LIST failed part way; what was read of them counts.
    failed: Vec<(ManagedKind, kube::Error)>,
}

/// Lists the managed objects of `kinds` a page at a time and records those
/// in sync. The kinds' pages are read side by side and merged by the
/// namespace their objects serve ([`ByNamespace`]), so each namespace is
/// planned once per pass rather than once per kind.
async fn verify_by_list(ctx: &Context, kinds: &[ManagedKind]) -> Pass {
    let counts = ctx.managed.count_by_kind();
    let limits = page_limits(
        &kinds
            .iter()
            .map(|kind| counts.get(kind).copied().unwrap_or_default())
            .collect::<Vec<_>>(),
    );
    let mut merged = ByNamespace::new(limits.clone());
    let mut continue_tokens: Vec<Option<String>> = vec![None; kinds.len()];
    let mut pass = Pass::default();
    loop {
        let wanted = merged.wanted();
        let pages = join_all(
            wanted
                .iter()
                .map(|&i| list_page(ctx, kinds[i], limits[i], continue_tokens[i].as_deref())),
        )
        .await;
        for (i, page) in wanted.into_iter().zip(pages) {
            let kind = kinds[i];
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    pass.failed.push((kind, error));
                    merged.push_page(i, Vec::new(), false);
                    continue;
                }
            };
            pass.pages += 1;
            pass.listed += page.items.len();
            continue_tokens[i] = page.metadata.continue_token.filter(|t| !t.is_empty());
            let objects = page.items.into_iter().map(|item| {
                let object = Listed::new(kind, item);
                (object.served.clone(), object)
            });
            merged.push_page(i, objects.collect(), continue_tokens[i].is_some());
        }
        let ready = merged.take_ready();
        if ready.is_empty() && merged.is_done() {
            return pass;
        }
        pass.in_sync += ready
            .into_iter()
            .map(|(served, objects)| verify_serving(ctx, &served, objects))
            .sum::<usize>();
    }
}

/// One page of `kind`'s managed objects.
async fn list_page(
    ctx: &Context,
    kind: ManagedKind,
    limit: u32,
    continue_token: Option<&str>,
) -> Result<ListedPage, kube::Error> {
    let url = kube::core::Request::new(
        kube::api::Api::<kube::api::DynamicObject>::all_with(
            ctx.client.clone(),
            &kind.api_resource(),
        )
        .resource_url(),
    );
    let mut params = ListParams::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGER_NAME}"))
        .limit(limit);
    if let Some(token) = continue_token {
        params = params.continue_token(token);
    }
    let mut request = url.list(&params).map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("list");
    ctx.metrics.read(kind, "list");
    ctx.client.request(request).await
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
            let object = Listed::new(key.kind, object);
            verify_serving(ctx, &object.served.clone(), vec![object]);
            Ok(())
        }
        // Gone: the watch will say so.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// A read object, ready to compare.
struct Listed {
    /// The namespace whose plan desires it.
    served: String,
    key: ObjectKey,
    resource_version: String,
    body: Value,
}

impl Listed {
    fn new(kind: ManagedKind, object: ListedObject) -> Self {
        let (metadata, body) = object.into_parts();
        let (served, key, live) = describe_object(kind, &metadata);
        Listed {
            served,
            key,
            resource_version: live.resource_version,
            body,
        }
    }
}

/// Compares objects serving one namespace with what its plan desires
/// (planned once for them all); records those in sync and notes the others
/// as read. Gives back how many were in sync.
fn verify_serving(ctx: &Context, served: &str, objects: Vec<Listed>) -> usize {
    let plan = ctx
        .namespaces
        .get(&ObjectRef::new(served))
        .filter(|namespace| !namespace.is_terminating())
        .map(|namespace| plan_from_caches(ctx, &namespace).0);
    let mut in_sync = 0;
    for object in objects {
        match plan
            .as_ref()
            .and_then(|plan| plan.in_sync_fingerprint(&object.key, &object.body))
        {
            Some(fingerprint) => {
                ctx.verified
                    .record(&object.key, &object.resource_version, fingerprint);
                in_sync += 1;
            }
            None => ctx
                .verified
                .note_read(&object.key, &object.resource_version),
        }
    }
    in_sync
}

/// Each kind's page size, from how many objects of each the index holds:
/// [`PAGE_SIZE`] for the largest, the others in proportion, so that every
/// kind's pages cover about as many namespaces and the merge keeps little
/// waiting (pages of 500 each had the quotas of 500 namespaces wait for the
/// network policies of 167: 12 MiB more at 10,000 namespaces).
fn page_limits(counts: &[usize]) -> Vec<u32> {
    let largest = counts.iter().copied().max().unwrap_or_default().max(1);
    counts
        .iter()
        .map(|&count| {
            let share = (count * PAGE_SIZE as usize).div_ceil(largest);
            u32::try_from(share)
                .unwrap_or(PAGE_SIZE)
                .clamp(MIN_PAGE_SIZE, PAGE_SIZE)
        })
        .collect()
}

/// The smallest page asked for: a kind the index holds few of (or none,
/// when it does not know yet) is read in few requests all the same.
const MIN_PAGE_SIZE: u32 = 50;

/// Several LISTs' pages, merged by the namespace each object serves.
///
/// A LIST returns a kind's objects in storage-key order, namespace then
/// name, the same order for every namespaced kind; so once every kind that
/// has more pages has been read past a namespace, all of that namespace's
/// objects are in hand and it is planned once for all of them. Memory stays
/// at about two pages a kind. Nothing depends on that order for
/// correctness, only for planning each namespace once: an object that
/// arrives out of order (a Velero Schedule lives in Velero's namespace and
/// serves another) is compared with a second plan of its namespace, and
/// when more than [`MOST_BUFFERED`] objects wait, all are compared at once.
struct ByNamespace<T> {
    kinds: Vec<Buffered<T>>,
}

/// Objects waiting to be compared, with more waiting at the server or not.
struct Buffered<T> {
    /// Each with its merge key (see [`merge_key`]), in the order listed.
    objects: VecDeque<(String, T)>,
    more: bool,
    /// The kind's page size.
    page: usize,
}

/// More objects than this waiting means their LISTs are not in namespace
/// order; they are compared as they are.
const MOST_BUFFERED: usize = 4 * PAGE_SIZE as usize * ManagedKind::ALL.len();

/// The storage key's prefix for `namespace`: `a-b/...` sorts before `a/...`
/// in storage, as `"a-b/"` does before `"a/"` but not `"a-b"` after `"a"`.
fn merge_key(namespace: &str) -> String {
    format!("{namespace}/")
}

/// How far every kind with more pages has been read.
enum Bound<'a> {
    /// A kind with more pages has nothing waiting: nothing is complete.
    Nothing,
    /// Namespaces sorting before this are complete.
    Below(&'a str),
    /// Every LIST is done.
    All,
}

impl<T> ByNamespace<T> {
    /// A merge of LISTs whose pages hold `pages[i]` objects.
    fn new(pages: Vec<u32>) -> Self {
        ByNamespace {
            kinds: pages
                .into_iter()
                .map(|page| Buffered {
                    objects: VecDeque::new(),
                    more: true,
                    page: page as usize,
                })
                .collect(),
        }
    }

    /// Adds a page of kind `i`, each object keyed by the namespace it serves.
    fn push_page(&mut self, i: usize, page: Vec<(String, T)>, more: bool) {
        let kind = &mut self.kinds[i];
        kind.objects
            .extend(page.into_iter().map(|(served, t)| (merge_key(&served), t)));
        kind.more = more;
    }

    fn bound(&self) -> Bound<'_> {
        let mut bound = Bound::All;
        for kind in self.kinds.iter().filter(|kind| kind.more) {
            match kind.objects.back() {
                None => return Bound::Nothing,
                Some((key, _)) => match bound {
                    Bound::Below(lowest) if lowest <= key.as_str() => {}
                    _ => bound = Bound::Below(key),
                },
            }
        }
        bound
    }

    /// The kinds whose next page is read now: those holding back the
    /// namespaces that could complete, and any with less than a page
    /// waiting, so the kinds' pages are read side by side.
    fn wanted(&self) -> Vec<usize> {
        let lowest = match self.bound() {
            Bound::All => return Vec::new(),
            Bound::Nothing => None,
            Bound::Below(key) => Some(key.to_owned()),
        };
        self.kinds
            .iter()
            .enumerate()
            .filter(|(_, kind)| kind.more)
            .filter(|(_, kind)| match kind.objects.back() {
                None => true,
                Some((key, _)) => lowest.as_ref() == Some(key) || kind.objects.len() < kind.page,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The complete namespaces' objects, taken out, grouped by namespace.
    fn take_ready(&mut self) -> BTreeMap<String, Vec<T>> {
        let waiting: usize = self.kinds.iter().map(|kind| kind.objects.len()).sum();
        let below = match self.bound() {
            _ if waiting > MOST_BUFFERED => None,
            Bound::All => None,
            Bound::Nothing => return BTreeMap::new(),
            Bound::Below(key) => Some(key.to_owned()),
        };
        let mut ready: BTreeMap<String, Vec<T>> = BTreeMap::new();
        for kind in &mut self.kinds {
            while let Some((key, _)) = kind.objects.front() {
                if below.as_ref().is_some_and(|below| key >= below) {
                    break;
                }
                let Some((mut key, object)) = kind.objects.pop_front() else {
                    break;
                };
                key.pop(); // the merge key's '/'
                ready.entry(key).or_default().push(object);
            }
        }
        ready
    }

    fn is_done(&self) -> bool {
        self.kinds
            .iter()
            .all(|kind| !kind.more && kind.objects.is_empty())
    }
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

/// A listed object as far as comparing looks at it (see
/// [`crate::controller::compare::comparable_part`]): managedFields (half an
/// object's size) and status are skipped while parsing, not parsed and
/// dropped, and the rest stays JSON.
#[derive(serde::Deserialize)]
struct ListedObject {
    metadata: ListedMeta,
    #[serde(default, rename = "status")]
    _status: serde::de::IgnoredAny,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// The metadata fields describing and comparing an object read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl ListedObject {
    /// The object's metadata, and its body with that metadata in it.
    fn into_parts(self) -> (ObjectMeta, Value) {
        let ListedMeta {
            name,
            namespace,
            resource_version,
            labels,
            annotations,
            owner_references,
        } = self.metadata;
        let metadata = ObjectMeta {
            name,
            namespace,
            resource_version,
            labels,
            annotations,
            owner_references,
            ..ObjectMeta::default()
        };
        let mut object = self.rest;
        object.insert(
            "metadata".to_owned(),
            serde_json::to_value(&metadata).unwrap_or_default(),
        );
        (metadata, Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_objects_are_read_the_cheaper_way() {
        use Reader::*;
        // 10,000 objects: a LIST is 29 pages.
        assert_eq!(read_by(0, 10_000, Standby), ReadBy::Nothing);
        assert_eq!(read_by(29, 10_000, Standby), ReadBy::Gets);
        assert_eq!(read_by(30, 10_000, Standby), ReadBy::List);
        assert_eq!(read_by(30, 10_000, LeaderAfterRelist), ReadBy::List);
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

    /// Feeds `lists` (each kind's pages of served namespaces) through a
    /// merge as the pass would, and gives back the namespaces in the order
    /// they were completed, each with the objects compared with its plan.
    fn merge(lists: &[&[&[&str]]]) -> Vec<(String, Vec<(usize, String)>)> {
        let pages = lists
            .iter()
            .map(|pages| {
                pages
                    .iter()
                    .map(|page| page.len() as u32)
                    .max()
                    .unwrap_or(1)
            })
            .collect();
        let mut merged = ByNamespace::new(pages);
        let mut next_page = vec![0; lists.len()];
        let mut completed = Vec::new();
        let mut most_waiting = 0;
        loop {
            for i in merged.wanted() {
                let page = lists[i][next_page[i]];
                next_page[i] += 1;
                let objects = page.iter().map(|ns| (ns.to_string(), (i, ns.to_string())));
                merged.push_page(i, objects.collect(), next_page[i] < lists[i].len());
            }
            let waiting: usize = merged.kinds.iter().map(|kind| kind.objects.len()).sum();
            most_waiting = most_waiting.max(waiting);
            let ready = merged.take_ready();
            if ready.is_empty() && merged.is_done() {
                break;
            }
            completed.extend(ready);
        }
        let two_pages_a_kind: usize = lists
            .iter()
            .map(|pages| 2 * pages.iter().map(|page| page.len()).max().unwrap_or(0))
            .sum();
        assert!(
            most_waiting <= two_pages_a_kind,
            "at most about two pages a kind wait: {most_waiting}"
        );
        completed
    }

    #[test]
    fn each_namespace_is_planned_once_for_every_kind_listed() {
        // Three kinds in storage order ("a-b/..." sorts before "a/..."), with
        // pages of different widths: network policies three a namespace,
        // quotas one, role bindings two.
        let mut storage_order = vec!["a", "a-b", "c"];
        storage_order.sort_by_key(|ns| merge_key(ns));
        assert_eq!(storage_order, ["a-b", "a", "c"]);
        let policies: &[&[&str]] = &[&["a-b", "a-b", "a-b"], &["a", "a", "a"], &["c", "c", "c"]];
        let quotas: &[&[&str]] = &[&["a-b", "a", "c"]];
        let bindings: &[&[&str]] = &[&["a-b", "a-b"], &["a", "a"], &["c", "c"]];
        let completed = merge(&[policies, quotas, bindings]);
        let namespaces: Vec<&str> = completed.iter().map(|(ns, _)| ns.as_str()).collect();
        assert_eq!(
            namespaces,
            ["a-b", "a", "c"],
            "planned once each, as completed"
        );
        for (namespace, objects) in &completed {
            assert_eq!(
                objects.len(),
                6,
                "{namespace}: every kind's objects at once"
            );
            assert!(objects.iter().all(|(_, served)| served == namespace));
        }
    }

    #[test]
    fn every_kinds_pages_cover_about_as_many_namespaces() {
        // 10,000 namespaces: three policies, two bindings, a limit range and
        // a quota each, and no Schedules (none listed yet, or none desired).
        assert_eq!(
            page_limits(&[30_000, 20_000, 10_000, 10_000, 0]),
            [350, 234, 117, 117, MIN_PAGE_SIZE]
        );
        assert_eq!(page_limits(&[0, 0]), [MIN_PAGE_SIZE, MIN_PAGE_SIZE]);
        assert_eq!(
            page_limits(&[7]),
            [PAGE_SIZE],
            "alone, a kind is read in full pages"
        );
        assert_eq!(page_limits(&[1_000_000, 100]), [PAGE_SIZE, MIN_PAGE_SIZE]);
    }

    #[test]
    fn objects_out_of_namespace_order_are_still_each_compared_once() {
        // Schedules live in Velero's namespace and serve others, in name order.
        let schedules: &[&[&str]] = &[&["c", "a"], &["b"]];
        let quotas: &[&[&str]] = &[&["a"], &["b"], &["c"]];
        let completed = merge(&[schedules, quotas]);
        let mut objects: Vec<(usize, String)> = completed
            .into_iter()
            .flat_map(|(_, objects)| objects)
            .collect();
        objects.sort();
        let each_once: Vec<(usize, String)> =
            [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c")]
                .into_iter()
                .map(|(i, ns)| (i, ns.to_owned()))
                .collect();
        assert_eq!(objects, each_once);
    }

    #[test]
    fn a_listed_page_keeps_what_comparing_needs_and_its_continue_token() {
        let page = r#"{"kind":"LimitRangeList","apiVersion":"v1",
            "metadata":{"resourceVersion":"90","continue":"abc"},
            "items":[{"metadata":{"name":"baseliner-limits","namespace":"shop","resourceVersion":"42",
                "labels":{"app.kubernetes.io/managed-by":"baseliner"},
                "managedFields":[{"manager":"baseliner","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
              "spec":{"limits":[{"type":"Container","default":{"cpu":"500m"}}]},
              "status":{"used":{"pods":"1"}}}]}"#;
        let page: ListedPage = serde_json::from_str(page).unwrap();
        assert_eq!(page.metadata.continue_token.as_deref(), Some("abc"));
        let [object] = <[ListedObject; 1]>::try_from(page.items).ok().unwrap();
        let (_, value) = object.into_parts();
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        assert_eq!(value["metadata"]["name"], "baseliner-limits");
        assert!(value["metadata"].get("managedFields").is_none());
        assert!(value.get("status").is_none());
        assert_eq!(value["spec"]["limits"][0]["default"]["cpu"], "500m");

        let last: ListedPage =
            serde_json::from_str(r#"{"metadata":{"resourceVersion":"91"},"items":[]}"#).unwrap();
        assert_eq!(last.metadata.continue_token, None);
    }
}
