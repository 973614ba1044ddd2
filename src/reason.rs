//! The reasons baseliner gives: for a namespace not being compliant (in
//! `status.nonCompliant` and the Stalled condition), for the conditions it
//! sets, and for the Events it sends. One documented vocabulary, so a
//! reason is spelled once and tests can ask which reasons stall a profile.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// A CamelCase reason, as written to status and Events.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &'static [Reason] = &[$(Self::$variant),*];

            /// The reason as written, e.g. `RoleNotAllowed`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    // Why a namespace is not compliant.
    /// Audit mode: a managed object or label differs from the profile (also
    /// the Ready condition's reason for an Audit profile that finds drift,
    /// and a warning Event).
    Drifted = "Drifted",
    /// The API server refused a rendered object (e.g. a LimitRange default
    /// above its max); it will refuse it until the profile changes.
    Rejected = "Rejected",
    /// A request to the API server failed; the namespace is retried.
    ApiError = "ApiError",
    /// Velero is not installed, so the namespace has no backup Schedule.
    BackupsUnavailable = "BackupsUnavailable",
    /// A RoleBinding names a ClusterRole off the operator's allow list.
    RoleNotAllowed = "RoleNotAllowed",
    /// A RoleBinding subject is invalid once its templates are filled in.
    InvalidSubject = "InvalidSubject",
    /// A CIDR of an egress allow cannot be parsed.
    InvalidCidr = "InvalidCIDR",
    /// Every CIDR of an egress allow is removed again by `except`.
    EgressAllowsNothing = "EgressAllowsNothing",
    /// The backup schedule is not a cron Velero reads, or never fires.
    InvalidSchedule = "InvalidSchedule",
    /// The namespace is selected, but a higher-priority profile owns it.
    Conflict = "Conflict",
    /// A RoleBinding write or a lowering of Pod Security is held back: the
    /// author-rights policy is not in force (also a warning Event).
    AuthorRightsNotEnforced = "AuthorRightsNotEnforced",

    // Reasons of the conditions only.
    /// Ready/Reconciling: not every namespace is reconciled at this generation.
    Progressing = "Progressing",
    /// Ready: every owned namespace complies.
    Compliant = "Compliant",
    /// Ready (Enforce mode): some owned namespace does not comply.
    NotCompliant = "NotCompliant",
    /// Reconciling: the generation is applied to every namespace.
    Reconciled = "Reconciled",
    /// Stalled: no problem needs a change to the profile.
    NotStalled = "NotStalled",

    // Reasons of a ProfileException's InForce condition, and of its Events.
    /// The exception applies.
    InForce = "InForce",
    /// The exception applies and ends within the warning time (also a
    /// warning Event).
    ExpiringSoon = "ExpiringSoon",
    /// The exception has ended; its controls are enforced again (also an
    /// Event).
    Expired = "Expired",
    /// The exception names a profile that does not exist.
    ProfileNotFound = "ProfileNotFound",
    /// The exception waives or replaces a control its profile does not have.
    ControlNotInProfile = "ControlNotInProfile",
    /// The exception runs longer than `--max-exception-days` allows.
    ExpiryTooFar = "ExpiryTooFar",

    // Reasons of Normal Events: what the operator did.
    /// A missing object was created.
    Created = "Created",
    /// A drifted object was put back.
    Healed = "Healed",
    /// A RoleBinding was deleted and created again (its roleRef changed).
    Replaced = "Replaced",
    /// A namespace's Pod Security labels were set or given up.
    Labelled = "Labelled",
    /// An object no longer desired was deleted.
    Pruned = "Pruned",
    /// An object no longer desired was left in place without our labels.
    Orphaned = "Orphaned",
}

impl Reason {
    /// Whether a namespace problem with this reason stalls its profile: it
    /// persists until someone changes the profile or the operator's
    /// configuration, so retrying cannot help (kstatus `Stalled=True`).
    pub fn stalls_profile(self) -> bool {
        matches!(
            self,
            Self::Rejected
                | Self::AuthorRightsNotEnforced
                | Self::RoleNotAllowed
                | Self::InvalidSubject
                | Self::BackupsUnavailable
                | Self::InvalidSchedule
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A string that names no [`Reason`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a reason baseliner gives")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|reason| reason.as_str() == text)
            .ok_or_else(|| UnknownReason(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(*reason));
            assert_eq!(
                serde_json::to_value(reason).expect("serializes"),
                serde_json::json!(reason.as_str())
            );
        }
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        assert!("Bogus".parse::<Reason>().is_err());
    }

    #[test]
    fn stalling_reasons() {
        let stalling: Vec<&str> = Reason::ALL
            .iter()
            .filter(|r| r.stalls_profile())
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            stalling,
            [
                "Rejected",
                "BackupsUnavailable",
                "RoleNotAllowed",
                "InvalidSubject",
                "InvalidSchedule",
                "AuthorRightsNotEnforced"
            ]
        );
    }
}
