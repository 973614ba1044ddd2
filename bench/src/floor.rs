//! The floor: a plain client writing exactly the objects the operator would
//! write, with nothing else to do (no watches, no caches, no comparisons, no
//! status), as fast as the API server takes them at a given concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::tracker::Kind;

/// Field manager of the floor's writes.
pub const FLOOR_MANAGER: &str = "baseliner-bench-floor";

/// How the floor writes the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Server-side apply (PATCH, `application/apply-patch+yaml`, force), as
    /// the operator does: the same server work per object.
    ServerSideApply,
    /// POST: the cheapest way to create an object. The namespace's labels
    /// are still server-side applied (the namespace exists already).
    Create,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ServerSideApply => "server-side apply",
            Method::Create => "create (POST)",
        }
    }
}

/// One write.
pub struct Item {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub body: Value,
}

/// What one floor run did.
pub struct Outcome {
    pub requests: usize,
    pub retries: usize,
    /// From the first request to the last response.
    pub elapsed: Duration,
}

/// Sends every item with `concurrency` requests in flight, each item once
/// (retried on a transient error). The items are built beforehand, so only
/// the requests are timed.
pub async fn write_all(
    client: &Client,
    items: Arc<Vec<Item>>,
    concurrency: usize,
    method: Method,
) -> Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let items = items.clone();
        let next = next.clone();
        let retries = retries.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let mut attempt = 0;
                loop {
                    match write(&client, item, method).await {
                        Ok(()) => break,
                        Err(error) if attempt < 5 && is_transient(&error) => {
                            attempt += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                        }
                        Err(error) => bail!(
                            "{} {} {}/{}: {error}",
                            method.as_str(),
                            item.kind.as_str(),
                            item.namespace,
                            item.name
                        ),
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(Outcome {
        requests: items.len(),
        retries: retries.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

async fn write(client: &Client, item: &Item, method: Method) -> kube::Result<()> {
    let resource = item.kind.api_resource();
    let api: Api<DynamicObject> = if item.kind == Kind::Namespace {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), &item.namespace, &resource)
    };
    if method == Method::Create && item.kind != Kind::Namespace {
        let object: DynamicObject =
            serde_json::from_value(item.body.clone()).map_err(kube::Error::SerdeError)?;
        api.create(&PostParams::default(), &object).await?;
    } else {
        let params = PatchParams::apply(FLOOR_MANAGER).force();
        api.patch(&item.name, &params, &Patch::Apply(&item.body))
            .await?;
    }
    Ok(())
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
