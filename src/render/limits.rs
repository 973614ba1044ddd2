//! The LimitRange (container defaults and bounds) and the ResourceQuota
//! (namespace totals).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec as K8sLimitRangeSpec, ResourceQuota,
    ResourceQuotaSpec as K8sResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::context::RenderContext;
use crate::api::{LimitRangeSpec, ResourceQuotaSpec};

/// Name of the LimitRange.
pub const LIMIT_RANGE_NAME: &str = "baseliner-limits";
/// Name of the ResourceQuota.
pub const RESOURCE_QUOTA_NAME: &str = "baseliner-quota";

pub(crate) fn render_limit_range(context: &RenderContext, spec: &LimitRangeSpec) -> LimitRange {
    LimitRange {
        metadata: context.metadata(LIMIT_RANGE_NAME.to_owned()),
        spec: Some(K8sLimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: quantities(spec.default.as_ref()),
                default_request: quantities(spec.default_request.as_ref()),
                min: quantities(spec.min.as_ref()),
                max: quantities(spec.max.as_ref()),
                max_limit_request_ratio: None,
            }],
        }),
    }
}

pub(crate) fn render_resource_quota(
    context: &RenderContext,
    spec: &ResourceQuotaSpec,
) -> ResourceQuota {
    ResourceQuota {
        metadata: context.metadata(RESOURCE_QUOTA_NAME.to_owned()),
        spec: Some(K8sResourceQuotaSpec {
            hard: quantities(Some(&spec.hard)),
            ..K8sResourceQuotaSpec::default()
        }),
        status: None,
    }
}

fn quantities(values: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, Quantity>> {
    values.filter(|values| !values.is_empty()).map(|values| {
        values
            .iter()
            .map(|(resource, quantity)| (resource.clone(), Quantity(quantity.clone())))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::fixtures::*;

    #[test]
    fn limit_range_and_resource_quota_carry_quantities() {
        let spec = format!(
            "{SELECT_ALL}  limitRange:
    defaultRequest: {{cpu: 100m, memory: 128Mi}}
    default: {{cpu: 500m, memory: 512Mi}}
    min: {{cpu: 10m}}
    max: {{memory: 2Gi, ephemeral-storage: 4Gi}}
  resourceQuota:
    hard: {{requests.cpu: '8', limits.memory: 16Gi, count/services.loadbalancers: '0'}}
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(
            object(&rendered, LIMIT_RANGE_NAME),
            json!({
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": metadata(LIMIT_RANGE_NAME),
                "spec": {"limits": [{
                    "type": "Container",
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "default": {"cpu": "500m", "memory": "512Mi"},
                    "min": {"cpu": "10m"},
                    "max": {"memory": "2Gi", "ephemeral-storage": "4Gi"},
                }]},
            })
        );
        assert_eq!(
            object(&rendered, RESOURCE_QUOTA_NAME),
            json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": metadata(RESOURCE_QUOTA_NAME),
                "spec": {"hard": {
                    "requests.cpu": "8",
                    "limits.memory": "16Gi",
                    "count/services.loadbalancers": "0",
                }},
            })
        );
    }

    #[test]
    fn limit_range_leaves_unset_bounds_out() {
        let spec = format!("{SELECT_ALL}  limitRange:\n    max: {{cpu: '2'}}\n");
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(
            object(&rendered, LIMIT_RANGE_NAME)["spec"],
            json!({"limits": [{"type": "Container", "max": {"cpu": "2"}}]})
        );
    }
}
