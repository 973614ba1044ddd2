//! What the cluster holds, read once for `baseliner plan`, `why` and
//! `report`: the namespaces, the profiles, every managed object's body, the
//! author-rights policy and whether Velero is served.
//!
//! Everything is read with paginated LISTs (one request per page of
//! [`PAGE_SIZE`] objects, label-filtered like the operator's watches), never
//! one GET per object, so reading 10,000 namespaces' baseline costs a few
//! hundred requests. Nothing is written.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, DynamicObject, ListParams, ObjectList};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::exception::ProfileException;
use crate::api::{MANAGED_BY_LABEL, MANAGER_NAME, NAMESPACE_LABEL, ProductionProfile};
use crate::controller::author_rights::{AuthorRights, POLICY_NAMES, assess_all};
use crate::controller::index::{LiveObject, ObjectKey, describe_object};
use crate::controller::namespace::CachedNamespace;
use crate::kind::ManagedKind;

/// Objects per LIST request.
pub const PAGE_SIZE: u32 = 500;

/// Where the operator's Events about profiles are (kube's recorder puts
/// those of cluster-scoped objects here).
const EVENTS_NAMESPACE: &str = "default";

/// One managed object as listed.
#[derive(Clone, Debug)]
pub struct ListedObject {
    /// The namespace it serves.
    pub served: String,
    /// Its index entry, as the operator's index would hold it.
    pub live: LiveObject,
    /// Its body, without `managedFields`, as JSON text: a parsed `Value`
    /// takes about ten times the memory, and 70,000 of them are held at
    /// 10,000 namespaces. [`ListedObject::body`] parses it when needed.
    pub json: Box<str>,
}

impl ListedObject {
    /// The body.
    pub fn body(&self) -> Value {
        // Written by serde_json from a parsed object: it parses.
        serde_json::from_str(&self.json).unwrap_or_default()
    }
}

/// The cluster as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Namespaces, by name.
    pub namespaces: BTreeMap<String, CachedNamespace>,
    /// Every ProductionProfile.
    pub profiles: Vec<ProductionProfile>,
    /// Every ProfileException (none when its CRD is not installed).
    pub exceptions: Vec<Arc<ProfileException>>,
    /// Every object carrying the managed-by label.
    pub objects: BTreeMap<ObjectKey, ListedObject>,
    /// Whether the API server serves Velero Schedules.
    pub schedules_served: bool,
    /// Whether the operator may grant, as it would judge from the
    /// author-rights policy it reads.
    pub author_rights: AuthorRights,
    /// Requests this snapshot took.
    pub requests: u32,
}

/// What to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    Cluster,
    /// One namespace and what serves it.
    Namespace(String),
}

/// The cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cluster to connect to.
    #[error("cannot connect to a cluster: {0} (set KUBECONFIG or pass --context)")]
    Connect(String),
    /// A request was refused or failed.
    #[error("cannot {verb} {what}: {source}{hint}")]
    Request {
        /// `list` or `get`.
        verb: &'static str,
        /// What was read.
        what: String,
        /// Why.
        source: kube::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The namespace asked about does not exist.
    #[error("namespace {0:?} not found")]
    NoSuchNamespace(String),
}

impl Error {
    fn request(verb: &'static str, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| {
            let hint = match &source {
                kube::Error::Api(status) if status.code == 404 && what == "productionprofiles" => {
                    " (is the ProductionProfile CRD installed? `make install` or `kubectl apply -f crds/`)"
                }
                kube::Error::Api(status) if status.code == 403 => {
                    " (reading the cluster needs get and list on namespaces, productionprofiles, profileexceptions, the managed kinds, validatingadmissionpolicies and their bindings, and events: the ClusterRole baseliner-reader in config/rbac grants exactly that)"
                }
                _ => "",
            };
            Self::Request {
                verb,
                what,
                source,
                hint,
            }
        }
    }
}

/// A client for `context` of $KUBECONFIG (its current context if `None`),
/// or the in-cluster configuration.
pub async fn connect(context: Option<&str>) -> Result<Client, Error> {
    let config = match context {
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Connect(e.to_string()))?,
        Some(context) => {
            let options = kube::config::KubeConfigOptions {
                context: Some(context.to_owned()),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| Error::Connect(e.to_string()))?
        }
    };
    Client::try_from(config).map_err(|e| Error::Connect(e.to_string()))
}

impl Snapshot {
    /// Reads `scope` of the cluster.
    pub async fn read(client: &Client, scope: &Scope) -> Result<Self, Error> {
        let mut snapshot = Snapshot::default();
        let mut requests = 0;
        match scope {
            Scope::Cluster => {
                let api = Api::<Namespace>::all(client.clone());
                let mut params = ListParams::default().limit(PAGE_SIZE);
                loop {
                    requests += 1;
                    let page = api
                        .list_metadata(&params)
                        .await
                        .map_err(Error::request("list", "namespaces"))?;
                    for namespace in page.items {
                        let namespace = CachedNamespace::from(namespace);
                        snapshot.namespaces.insert(namespace.name_any(), namespace);
                    }
                    match next_page(&page.metadata.continue_) {
                        Some(token) => params = params.continue_token(token),
                        None => break,
                    }
                }
            }
            Scope::Namespace(name) => {
                requests += 1;
                let namespace = Api::<Namespace>::all(client.clone())
                    .get_metadata_opt(name)
                    .await
                    .map_err(Error::request("get", format!("namespace {name}")))?
                    .ok_or_else(|| Error::NoSuchNamespace(name.clone()))?;
                snapshot
                    .namespaces
                    .insert(name.clone(), CachedNamespace::from(namespace));
            }
        }
        let profiles = list_all(
            &Api::<ProductionProfile>::all(client.clone()),
            ListParams::default(),
            &mut requests,
        )
        .await
        .map_err(Error::request("list", "productionprofiles"))?;
        snapshot.profiles = profiles
            .into_iter()
            .map(|mut profile| {
                profile.metadata.managed_fields = None;
                profile
            })
            .collect();

        let exceptions = list_all(
            &Api::<ProfileException>::all(client.clone()),
            ListParams::default(),
            &mut requests,
        )
        .await;
        snapshot.exceptions = match exceptions {
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            other => other.map_err(Error::request("list", "profileexceptions"))?,
        }
        .into_iter()
        .map(|mut exception| {
            exception.metadata.managed_fields = None;
            Arc::new(exception)
        })
        .collect();

        snapshot.schedules_served = true;
        for kind in ManagedKind::ALL {
            let managed = format!("{MANAGED_BY_LABEL}={MANAGER_NAME}");
            let (api, labels) = match (scope, kind) {
                (Scope::Cluster, _) => (
                    Api::<DynamicObject>::all_with(client.clone(), &kind.api_resource()),
                    managed,
                ),
                // A namespace's Schedules live in Velero's namespace.
                (Scope::Namespace(name), ManagedKind::Schedule) => (
                    Api::all_with(client.clone(), &kind.api_resource()),
                    format!("{managed},{NAMESPACE_LABEL}={name}"),
                ),
                (Scope::Namespace(name), _) => (
                    Api::namespaced_with(client.clone(), name, &kind.api_resource()),
                    managed,
                ),
            };
            let listed = list_all(&api, ListParams::default().labels(&labels), &mut requests).await;
            let objects = match listed {
                Err(kube::Error::Api(status))
                    if status.code == 404 && kind == ManagedKind::Schedule =>
                {
                    snapshot.schedules_served = false;
                    continue;
                }
                other => other.map_err(Error::request("list", kind.api_resource().plural))?,
            };
            for mut object in objects {
                object.metadata.managed_fields = None;
                let (served, key, live) = describe_object(kind, &object.metadata);
                let json = serde_json::to_string(&object).unwrap_or_default().into();
                snapshot
                    .objects
                    .insert(key, ListedObject { served, live, json });
            }
        }

        let mut installed = Vec::new();
        for name in POLICY_NAMES {
            requests += 2;
            let policy = Api::<ValidatingAdmissionPolicy>::all(client.clone())
                .get_opt(name)
                .await
                .map_err(Error::request(
                    "get",
                    format!("validatingadmissionpolicy {name}"),
                ))?;
            let binding = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                .get_opt(name)
                .await
                .map_err(Error::request(
                    "get",
                    format!("validatingadmissionpolicybinding {name}"),
                ))?;
            installed.push((
                policy.and_then(|p| serde_json::to_value(p).ok()),
                binding.and_then(|b| serde_json::to_value(b).ok()),
            ));
        }
        snapshot.author_rights = assess_all(&installed);
        snapshot.requests = requests;
        Ok(snapshot)
    }

    /// The listed objects serving `namespace`, as the operator's index
    /// would give them to its plan.
    pub fn live_serving(&self, namespace: &str) -> BTreeMap<ObjectKey, LiveObject> {
        self.objects
            .iter()
            .filter(|(_, object)| object.served == namespace)
            .map(|(key, object)| (key.clone(), object.live.clone()))
            .collect()
    }

    /// Every listed object by the namespace it serves.
    pub fn serving_by_namespace(&self) -> BTreeMap<&str, BTreeMap<ObjectKey, LiveObject>> {
        let mut by_namespace: BTreeMap<&str, BTreeMap<ObjectKey, LiveObject>> = BTreeMap::new();
        for (key, object) in &self.objects {
            by_namespace
                .entry(object.served.as_str())
                .or_default()
                .insert(key.clone(), object.live.clone());
        }
        by_namespace
    }
}

/// The operator's Events about profiles, oldest first.
pub async fn profile_events(client: &Client) -> Result<Vec<Event>, Error> {
    let api = Api::<Event>::namespaced(client.clone(), EVENTS_NAMESPACE);
    let params = ListParams::default().fields("involvedObject.kind=ProductionProfile");
    let mut requests = 0;
    let mut events = list_all(&api, params, &mut requests)
        .await
        .map_err(Error::request("list", "events"))?;
    events.sort_by_key(event_time);
    Ok(events)
}

/// When an Event last happened.
pub fn event_time(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
}

async fn list_all<K>(
    api: &Api<K>,
    params: ListParams,
    requests: &mut u32,
) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut params = params.limit(PAGE_SIZE);
    let mut items = Vec::new();
    loop {
        *requests += 1;
        let page: ObjectList<K> = api.list(&params).await?;
        items.extend(page.items);
        match next_page(&page.metadata.continue_) {
            Some(token) => params = params.continue_token(token),
            None => return Ok(items),
        }
    }
}

fn next_page(token: &Option<String>) -> Option<&str> {
    token.as_deref().filter(|t| !t.is_empty())
}
