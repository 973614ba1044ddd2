//! `baseliner validate --as-user`: asks the cluster, with one
//! SubjectAccessReview per right, whether an identity holds what creating a
//! profile implies ([`crate::required_rights`]).

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::api::ProductionProfileSpec;
use crate::api::exception::ProfileExceptionSpec;
use crate::required_rights::{Requirement, Right, exception_to_create, to_create};

/// The cluster could not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cluster to ask, or the request failed.
    #[error("cannot check rights against the cluster: {0}")]
    Cluster(String),
}

/// Whose rights are checked.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user, as the API server names it.
    pub user: Option<String>,
    /// Its groups.
    pub groups: Vec<String>,
}

/// Asks the cluster in $KUBECONFIG, remembering each answer.
pub struct Reviewer {
    identity: Identity,
    runtime: tokio::runtime::Runtime,
    client: Client,
    answers: BTreeMap<Right, bool>,
}

impl Reviewer {
    /// Connects to the cluster in $KUBECONFIG (or in-cluster).
    pub fn connect(identity: Identity) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Cluster(e.to_string()))?;
        let client = runtime
            .block_on(Client::try_default())
            .map_err(|e| Error::Cluster(format!("no cluster to ask ({e}); set KUBECONFIG")))?;
        Ok(Self {
            identity,
            runtime,
            client,
            answers: BTreeMap::new(),
        })
    }

    /// One line per field whose rights the identity lacks:
    /// `FIELD: USER may not WHAT (needs RIGHT, ...)`.
    pub fn denied(&mut self, spec: &ProductionProfileSpec) -> Result<Vec<String>, Error> {
        self.denied_of(to_create(spec))
    }

    /// The same for creating an exception with `spec`.
    pub fn denied_exception(&mut self, spec: &ProfileExceptionSpec) -> Result<Vec<String>, Error> {
        self.denied_of(exception_to_create(spec))
    }

    fn denied_of(&mut self, needs: Vec<Requirement>) -> Result<Vec<String>, Error> {
        let who = self.who();
        let mut lines = Vec::new();
        for need in needs {
            let mut missing = Vec::new();
            for right in &need.rights {
                if !self.allowed(right)? {
                    missing.push(right.describe());
                }
            }
            if !missing.is_empty() {
                lines.push(format!(
                    "{}: {who} may not {} (needs {} cluster-wide)",
                    need.field,
                    need.what,
                    missing.join(", ")
                ));
            }
        }
        Ok(lines)
    }

    fn who(&self) -> String {
        match (&self.identity.user, self.identity.groups.as_slice()) {
            (Some(user), []) => user.clone(),
            (Some(user), groups) => format!("{user} (groups {})", groups.join(", ")),
            (None, groups) => format!("groups {}", groups.join(", ")),
        }
    }

    fn allowed(&mut self, right: &Right) -> Result<bool, Error> {
        if let Some(answer) = self.answers.get(right) {
            return Ok(*answer);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: self.identity.user.clone(),
                groups: (!self.identity.groups.is_empty()).then(|| self.identity.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(right.verb.to_owned()),
                    group: Some(right.group.to_owned()),
                    resource: Some(right.resource.to_owned()),
                    name: right.name.clone(),
                    namespace: right.namespace.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = self
            .runtime
            .block_on(api.create(&PostParams::default(), &review))
            .map_err(|e| Error::Cluster(format!("SubjectAccessReview: {e}")))?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.answers.insert(right.clone(), allowed);
        Ok(allowed)
    }
}
