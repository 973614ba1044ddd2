//! kube-apiserver killed while the operator converges 200 namespaces and
//! prunes what a profile change and relabelled namespaces no longer want.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, strict_objects};
use baseliner_e2e::random_name;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::{
    CASE_LABEL, CaseNamespaces, Expected, Faults, Profile, concurrently, secs, start_operator,
    summary, wait_converged, wait_observed,
};

const NAMESPACES: usize = 200;
/// Namespaces relabelled so that the profile no longer selects them.
const LEAVING: usize = 20;
/// How long the apiserver stays down.
const OUTAGE: Duration = Duration::from_secs(5);

#[tokio::test]
#[ignore = "stops the control plane's processes: run with `make test-faults`"]
async fn apiserver_killed_mid_convergence_operator_reconnects_and_converges() -> Result<()> {
    let faults = Faults::new().await?;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-api").await?;
    let case = random_name("fapi");
    let namespaces = CaseNamespaces::create(&faults, &case, NAMESPACES).await?;
    let profile = Profile::apply(&faults.env, "faults-api", &case, STRICT_SPEC).await?;
    let mut operator = start_operator(&identity, home.name(), &[])?;
    let pid = operator.pid();

    let first_version = NAMESPACES * strict_objects().len();
    let under_way = wait_observed(
        &client,
        &[&case],
        "convergence to be a quarter done",
        Duration::from_secs(180),
        |o| o.count_of(&profile.name) >= first_version / 4,
    )
    .await?;

    // Mid-convergence, the profile drops a policy (to prune everywhere it
    // was created) and some namespaces stop matching (to release entirely);
    // then the apiserver dies before the operator is through.
    let trimmed = STRICT_SPEC.replace("    allowSameNamespace: true\n", "");
    profile.update(&faults.env, &trimmed).await?;
    let leaving: Vec<String> = namespaces.names[..LEAVING].to_vec();
    let api: Api<Namespace> = Api::all(client.clone());
    let moved = format!("{case}-left");
    concurrently(leaving.clone(), |name| {
        let api = api.clone();
        let patch = json!({"metadata": {"labels": {CASE_LABEL: moved}}});
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await?;
    let stopped = faults.stop("apiserver", true).await?;
    let down = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    stopped.start().await?;
    let outage = down.elapsed();

    let mut wanted = strict_objects();
    wanted.remove(&(
        "NetworkPolicy".to_owned(),
        "baseliner-allow-same-namespace".to_owned(),
    ));
    let mut expected = Expected::default();
    expected.own(&profile.name, &namespaces.names[LEAVING..], &wanted);
    expected.released = leaving.iter().cloned().collect();
    let (took, _) = wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(240),
        &operator,
    )
    .await?;
    ensure!(
        operator.is_running() && operator.pid() == pid,
        "the operator did not survive the outage; log: {}",
        operator.log.display()
    );
    summary(
        "apiserver killed",
        &format!(
            "SIGKILL at {} of {first_version} objects, down {}; converged {} after it served again, \
             same operator process; checked {} namespaces ({} owned, {LEAVING} released), {} objects: \
             none missing, none extra, none left to prune",
            under_way.count_of(&profile.name),
            secs(outage),
            secs(took),
            expected.namespace_count(),
            expected.owned.len(),
            expected.object_count(),
        ),
    );

    operator.terminate(Duration::from_secs(10))?;
    profile.delete(&faults.env).await?;
    namespaces.cleanup().await?;
    home.cleanup().await
}
