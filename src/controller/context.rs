//! What the controller's parts share: its settings ([`Config`]), its
//! running state ([`Context`]), and its errors.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::reflector::Store;
use thiserror::Error;
use tokio::sync::watch;

use super::author_rights::AuthorRights;
use super::events::EventBatcher;
use super::index::ManagedIndex;
use super::namespace::CachedNamespace;
use super::report::Reports;
use super::verified::VerifiedObjects;
use super::verify::Verification;
use crate::api::ProductionProfile;
use crate::api::exception::ProfileException;
use crate::exception::ExceptionSettings;
use crate::health::CacheSync;
use crate::metrics::Metrics;
use crate::render::RenderOptions;
use crate::selection::SelectionContext;

/// Cache names, as `/readyz` reports them.
pub const PROFILES: &str = "productionprofiles";
pub const EXCEPTIONS: &str = "profileexceptions";
pub const NAMESPACES: &str = "namespaces";
/// The author-rights policy and its binding.
pub const AUTHOR_RIGHTS: &str = "validatingadmissionpolicies";
/// Not a cache: the first verification pass over the managed objects
/// ([`super::verify`]).
pub const VERIFIED: &str = "verified-objects";

/// Errors of the controller layer.
#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "the CRD {name} is not installed; install the CRDs with `kubectl apply -f crds/` or `make install`"
    )]
    CrdMissing { name: String },
    #[error("the CRD {name} is not established yet: {reason}")]
    CrdNotEstablished { name: String, reason: String },
    #[error("{action} {object}: {source}")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl Context {
    /// Whether this replica may write.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// True once every cache a plan is made from has been listed. Before
    /// that a plan would be wrong: an object missing from the index may
    /// exist (applying it would be a needless write); with the profiles
    /// not listed every namespace looks unowned (releasing it would prune
    /// everything baseliner made there, on every restart); with the
    /// exceptions not listed a waived control would be put back and pruned
    /// again; with the author-rights policy not read, grants would be held
    /// back and reported for nothing.
    pub fn caches_complete(&self) -> bool {
        self.managed.is_ready()
            && [PROFILES, EXCEPTIONS, NAMESPACES, AUTHOR_RIGHTS]
                .into_iter()
                .all(|cache| self.caches.is_synced(cache))
    }
}

impl Error {
    /// Adapter for `map_err` that names the action and object.
    pub fn kube(
        action: &'static str,
        object: &impl std::fmt::Display,
    ) -> impl FnOnce(kube::Error) -> Error {
        let object = object.to_string();
        move |source| Error::Kube {
            action,
            object,
            source,
        }
    }
}

/// How the controller behaves; set from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every namespace is reconciled at least this often, even when quiet.
    pub resync: Duration,
    /// Namespaces reconciled at once.
    pub workers: u16,
    pub render: RenderOptions,
    pub selection: SelectionContext,
    /// Write RoleBindings and lower Pod Security even without the
    /// author-rights policy: an administrator's explicit opt-out.
    pub grant_without_author_rights_policy: bool,
    /// Bounds on exceptions.
    pub exceptions: ExceptionSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            workers: 32,
            render: RenderOptions::default(),
            selection: SelectionContext::default(),
            grant_without_author_rights_policy: false,
            exceptions: ExceptionSettings::default(),
        }
    }
}

/// Shared state of one running controller.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub profiles: Store<ProductionProfile>,
    pub exceptions: Store<ProfileException>,
    pub namespaces: Store<CachedNamespace>,
    pub managed: ManagedIndex,
    pub verified: VerifiedObjects,
    /// Which kinds' objects changed since verification last read them.
    pub verification: Verification,
    pub reports: Reports,
    pub events: EventBatcher,
    pub metrics: Arc<Metrics>,
    /// Which caches have completed their first list.
    pub caches: CacheSync,
    /// True while this replica holds the leader lease.
    pub leader: watch::Receiver<bool>,
    /// Whether RoleBindings may be written and Pod Security lowered.
    pub author_rights: watch::Receiver<AuthorRights>,
    pub(crate) failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}
