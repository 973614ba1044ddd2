//! What the cluster holds, as the API server tells it: watches on the four
//! managed kinds and on the benchmark's namespaces, timestamped on arrival.
//!
//! Every event is compared with what the strict profile wants for its
//! namespace (`baseliner::render`), so "compliant" means the object is there
//! with the desired content, not that someone's status says so. Waiting on a
//! watch gives the arrival time of the decisive event itself, without
//! polling the server (which would compete with what is being measured).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use baseliner::controller::compare::{comparable_part, desired_matches_live};
use baseliner::kind::ManagedKind;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;

use crate::BENCH_LABEL;

/// The kinds the strict profile yields, plus the Namespace (its labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A kind the operator manages.
    Object(ManagedKind),
    /// The namespace itself: its Pod Security labels.
    Namespace,
}

impl Kind {
    /// The managed kinds the strict profile yields (it has no backups).
    pub const OBJECTS: [Kind; 4] = [
        Kind::Object(ManagedKind::NetworkPolicy),
        Kind::Object(ManagedKind::LimitRange),
        Kind::Object(ManagedKind::ResourceQuota),
        Kind::Object(ManagedKind::RoleBinding),
    ];

    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::OBJECTS.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Object(kind) => kind.as_str(),
            Kind::Namespace => "Namespace",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Object(kind) => kind.api_resource(),
            Kind::Namespace => ApiResource::erase::<Namespace>(&()),
        }
    }
}

/// One object (or, for [`Kind::Namespace`], a namespace's labels).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    /// Empty for [`Kind::Namespace`].
    pub name: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What one namespace must hold.
#[derive(Debug)]
pub struct Desired {
    /// Object keys with the comparable part of the desired object.
    pub objects: Vec<(Key, Value)>,
    /// Pod Security labels the namespace must carry.
    pub labels: BTreeMap<String, String>,
}

impl Desired {
    fn keys(&self, namespace: &str) -> impl Iterator<Item = Key> + '_ {
        let ns = Key {
            kind: Kind::Namespace,
            namespace: namespace.to_owned(),
            name: String::new(),
        };
        self.objects
            .iter()
            .map(|(k, _)| k.clone())
            .chain(std::iter::once(ns))
    }
}

/// The last event seen for a key.
#[derive(Clone, Debug)]
pub struct Observed {
    pub uid: String,
    pub resource_version: u64,
    /// The object holds what the profile wants (for a namespace: its labels).
    pub compliant: bool,
    /// For namespaces: whether any Pod Security label is set at all.
    pub labelled: bool,
    pub at: Instant,
}

#[derive(Default)]
pub struct State {
    desired: HashMap<String, Arc<Desired>>,
    observed: HashMap<Key, Observed>,
    /// Namespaces whose keys count towards `compliant`.
    target: HashSet<String>,
    target_keys: usize,
    compliant: usize,
    /// When `compliant` last reached `target_keys`.
    complete_at: Option<Instant>,
    /// Managed objects present (any namespace watched), and namespaces
    /// carrying Pod Security labels.
    present_objects: usize,
    labelled_namespaces: usize,
    /// Keys seen during a re-list of a kind, to drop the rest at its end.
    relisting: HashMap<Kind, HashSet<Key>>,
    synced: HashSet<Kind>,
}

impl State {
    fn counts(&self, key: &Key) -> bool {
        self.target.contains(&key.namespace)
            && self.desired.get(&key.namespace).is_some_and(|d| {
                key.kind == Kind::Namespace || d.objects.iter().any(|(k, _)| k == key)
            })
    }

    fn is_compliant(&self, key: &Key) -> bool {
        self.observed.get(key).is_some_and(|o| o.compliant)
    }

    fn upsert(&mut self, key: Key, observed: Observed) {
        let counts = self.counts(&key);
        let before = self.observed.get(&key).cloned();
        if before.as_ref().is_some_and(|b| b.compliant) && counts {
            self.compliant -= 1;
        }
        if observed.compliant && counts {
            self.compliant += 1;
        }
        match key.kind {
            Kind::Namespace => {
                self.labelled_namespaces -=
                    usize::from(before.as_ref().is_some_and(|b| b.labelled));
                self.labelled_namespaces += usize::from(observed.labelled);
            }
            _ => {
                if before.is_none() {
                    self.present_objects += 1;
                }
            }
        }
        let at = observed.at;
        self.observed.insert(key, observed);
        self.update_complete(at);
    }

    fn remove(&mut self, key: &Key, at: Instant) {
        if let Some(before) = self.observed.remove(key) {
            if before.compliant && self.counts(key) {
                self.compliant -= 1;
            }
            match key.kind {
                Kind::Namespace => self.labelled_namespaces -= usize::from(before.labelled),
                _ => self.present_objects -= 1,
            }
        }
        self.update_complete(at);
    }

    fn update_complete(&mut self, at: Instant) {
        if self.compliant == self.target_keys && self.target_keys > 0 {
            self.complete_at.get_or_insert(at);
        } else {
            self.complete_at = None;
        }
    }

    /// Every key of the target namespaces is compliant: when that happened.
    pub fn complete_at(&self) -> Option<Instant> {
        self.complete_at
    }

    pub fn compliant_keys(&self) -> (usize, usize) {
        (self.compliant, self.target_keys)
    }

    /// No managed object and no Pod Security label anywhere watched.
    pub fn is_clean(&self) -> bool {
        self.present_objects == 0 && self.labelled_namespaces == 0
    }

    pub fn present(&self) -> (usize, usize) {
        (self.present_objects, self.labelled_namespaces)
    }

    /// When the namespace last became fully compliant, if it is.
    pub fn namespace_compliant_at(&self, namespace: &str) -> Option<Instant> {
        let desired = self.desired.get(namespace)?;
        let mut latest = None;
        for key in desired.keys(namespace) {
            let observed = self.observed.get(&key).filter(|o| o.compliant)?;
            latest = latest.max(Some(observed.at));
        }
        latest
    }

    pub fn observed(&self, key: &Key) -> Option<&Observed> {
        self.observed.get(key)
    }

    /// The object keys the profile wants in `namespace`, in render order.
    pub fn desired_keys(&self, namespace: &str) -> Vec<Key> {
        self.desired
            .get(namespace)
            .map(|d| d.objects.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// A field of the desired object, by path.
    pub fn desired_field(&self, key: &Key, path: &[&str]) -> Option<Value> {
        let desired = self.desired.get(&key.namespace)?;
        let (_, want) = desired.objects.iter().find(|(k, _)| k == key)?;
        path.iter()
            .try_fold(want, |v, field| v.get(*field))
            .cloned()
    }

    pub fn is_synced(&self) -> bool {
        self.synced.len() == Kind::OBJECTS.len() + 1
    }
}

/// The shared view, fed by the watch tasks.
pub struct Tracker {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Tracker {
    /// Starts the watches. Returns once every watch has listed once.
    pub async fn start(client: &Client) -> Result<Arc<Self>> {
        let (changed, _) = watch::channel(0);
        let tracker = Arc::new(Tracker {
            state: Mutex::new(State::default()),
            changed,
        });
        for kind in Kind::OBJECTS {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
            let config = watcher::Config::default()
                .labels(&format!(
                    "{}={}",
                    baseliner::api::MANAGED_BY_LABEL,
                    baseliner::api::MANAGER_NAME
                ))
                .page_size(1000);
            tokio::spawn(tracker.clone().follow(kind, api, config));
        }
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &Kind::Namespace.api_resource());
        let config = watcher::Config::default()
            .labels(&format!("{BENCH_LABEL}=true"))
            .page_size(1000);
        tokio::spawn(tracker.clone().follow(Kind::Namespace, api, config));
        tracker
            .wait(
                "the benchmark's watches to list",
                Duration::from_secs(120),
                |s| s.is_synced().then_some(()),
            )
            .await?;
        Ok(tracker)
    }

    async fn follow(self: Arc<Self>, kind: Kind, api: Api<DynamicObject>, config: watcher::Config) {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(event) => self.apply(kind, event, at),
                Err(error) => eprintln!(
                    "bench: watch of {} failed, retrying: {error}",
                    kind.as_str()
                ),
            }
        }
    }

    fn apply(&self, kind: Kind, event: watcher::Event<DynamicObject>, at: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(obj) => {
                let (key, observed) = describe(&state, kind, &obj, at);
                state.upsert(key, observed);
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(kind, &obj);
                state.remove(&key, at);
            }
            watcher::Event::Init => {
                state.relisting.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(obj) => {
                let (key, observed) = describe(&state, kind, &obj, at);
                state.relisting.entry(kind).or_default().insert(key.clone());
                state.upsert(key, observed);
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.remove(&kind).unwrap_or_default();
                let gone: Vec<Key> = state
                    .observed
                    .keys()
                    .filter(|k| k.kind == kind && !listed.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    state.remove(&key, at);
                }
                state.synced.insert(kind);
            }
        }
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Registers what `namespace` must hold. Register before the objects
    /// can appear: compliance is judged when an event arrives.
    pub fn set_desired(&self, namespace: &str, desired: Desired) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .desired
            .insert(namespace.to_owned(), Arc::new(desired));
    }

    pub fn forget_desired(&self, namespace: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.desired.remove(namespace);
        state.target.remove(namespace);
        recount(&mut state);
    }

    /// The namespaces whose compliance [`State::complete_at`] is about.
    pub fn set_target<'a>(&self, namespaces: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.target = namespaces.into_iter().map(str::to_owned).collect();
        recount(&mut state);
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until `check` returns `Some`, re-checking after every event.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if let Some(found) = self.with(&mut check) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the watches stopped while waiting for {what}"),
                Err(_) => {
                    let (compliant, target) = self.with(State::compliant_keys);
                    let (objects, labelled) = self.with(State::present);
                    bail!(
                        "timed out after {timeout:?} waiting for {what} \
                         ({compliant}/{target} keys compliant; {objects} managed objects and {labelled} labelled namespaces present)"
                    )
                }
            }
        }
    }
}

fn recount(state: &mut State) {
    let mut target_keys = 0;
    let mut compliant = 0;
    for namespace in &state.target {
        if let Some(desired) = state.desired.get(namespace) {
            for key in desired.keys(namespace) {
                target_keys += 1;
                compliant += usize::from(state.is_compliant(&key));
            }
        }
    }
    state.target_keys = target_keys;
    state.compliant = compliant;
    state.complete_at = None;
    if compliant == target_keys && target_keys > 0 {
        // Already complete: when the last of them arrived.
        let latest = state
            .target
            .iter()
            .filter_map(|ns| state.namespace_compliant_at(ns))
            .max();
        state.complete_at = latest;
    }
}

fn key_of(kind: Kind, obj: &DynamicObject) -> Key {
    match kind {
        Kind::Namespace => Key {
            kind,
            namespace: obj.name_any(),
            name: String::new(),
        },
        _ => Key {
            kind,
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        },
    }
}

fn describe(state: &State, kind: Kind, obj: &DynamicObject, at: Instant) -> (Key, Observed) {
    let key = key_of(kind, obj);
    let desired = state.desired.get(&key.namespace);
    let (compliant, labelled) = match kind {
        Kind::Namespace => {
            let labels = obj.labels();
            let compliant =
                desired.is_some_and(|d| d.labels.iter().all(|(k, v)| labels.get(k) == Some(v)));
            let labelled = labels
                .keys()
                .any(|k| k.starts_with("pod-security.kubernetes.io/"));
            (compliant, labelled)
        }
        _ => {
            let want = desired.and_then(|d| d.objects.iter().find(|(k, _)| *k == key));
            let compliant = want.is_some_and(|(_, want)| {
                serde_json::to_value(obj).is_ok_and(|live| desired_matches_live(want, &live))
            });
            (compliant, false)
        }
    };
    let observed = Observed {
        uid: obj.uid().unwrap_or_default(),
        resource_version: obj
            .resource_version()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or_default(),
        compliant,
        labelled,
        at,
    };
    (key, observed)
}

/// The comparable desired objects and labels for one namespace, from the
/// rendered profile. Owner references are left out: they name the profile
/// object's uid, which changes each time the benchmark re-applies it.
pub fn desired_from(rendered: &baseliner::render::RenderedNamespace) -> Desired {
    let objects = rendered
        .objects
        .iter()
        .filter_map(|object| {
            let kind = Kind::from_kind(object.kind())?;
            let mut want = comparable_part(&object.to_json());
            if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("ownerReferences");
            }
            Some((
                Key {
                    kind,
                    namespace: object.namespace().to_owned(),
                    name: object.name().to_owned(),
                },
                want,
            ))
        })
        .collect();
    Desired {
        objects,
        labels: rendered.namespace_labels.clone(),
    }
}

/// Lists every managed object and the namespaces, and checks that each of
/// `namespaces` holds exactly what the profile wants: the check that does
/// not rely on the watch (nor on anyone's status).
pub async fn verify_by_listing(
    client: &Client,
    tracker: &Tracker,
    namespaces: &[String],
) -> Result<()> {
    let selector = format!(
        "{}={}",
        baseliner::api::MANAGED_BY_LABEL,
        baseliner::api::MANAGER_NAME
    );
    let mut live: HashMap<Key, Value> = HashMap::new();
    for kind in Kind::OBJECTS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        for object in list_all(&api, &selector).await? {
            live.insert(key_of(kind, &object), serde_json::to_value(&object)?);
        }
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &Kind::Namespace.api_resource());
    let namespace_labels: HashMap<String, BTreeMap<String, String>> =
        list_all(&api, &format!("{BENCH_LABEL}=true"))
            .await?
            .into_iter()
            .map(|ns| (ns.name_any(), ns.labels().clone()))
            .collect();
    let mut problems = Vec::new();
    tracker.with(|state| {
        for namespace in namespaces {
            let Some(desired) = state.desired.get(namespace) else {
                problems.push(format!("{namespace}: nothing desired"));
                continue;
            };
            for (key, want) in &desired.objects {
                match live.get(key) {
                    None => problems.push(format!("{key} missing")),
                    Some(have) if !desired_matches_live(want, have) => {
                        problems.push(format!("{key} differs from the profile"))
                    }
                    Some(_) => {}
                }
            }
            let labels = namespace_labels.get(namespace);
            if !desired
                .labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                problems.push(format!("Namespace {namespace} lacks Pod Security labels"));
            }
        }
    });
    if !problems.is_empty() {
        bail!(
            "listing shows {} problems, e.g. {}",
            problems.len(),
            problems
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

async fn list_all(api: &Api<DynamicObject>, selector: &str) -> Result<Vec<DynamicObject>> {
    let mut params = kube::api::ListParams::default()
        .labels(selector)
        .limit(1000);
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}
