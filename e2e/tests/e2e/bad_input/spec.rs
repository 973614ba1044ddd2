//! Bad input in the spec as a whole: not an object, a priority out of
//! range.

use baseliner_e2e::random_name;

use super::table::{Refused, refused};

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![
        refused(
            "priority-huge",
            "  priority: 1099511627776\n",
            "spec.priority",
        ),
        refused("priority-negative", "  priority: -1001\n", "spec.priority"),
        Refused {
            id: "spec-as-list".to_owned(),
            // The spec itself is the bad input here.
            yaml: format!(
                "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec: [1]\n",
                random_name("bad-spec-as-list")
            ),
            path: "spec".to_owned(),
        },
    ]
}
