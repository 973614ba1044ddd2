use baseliner::api::ProductionProfile;
use kube::CustomResourceExt;

fn main() {
    print!(
        "{}",
        serde_saphyr::to_string(&ProductionProfile::crd()).unwrap()
    );
}
