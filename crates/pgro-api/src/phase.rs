//! Status phases. They serialise as plain strings; a value this version does not know (written by a newer
//! operator) deserialises as `Unknown` instead of failing the whole object.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of pgro does not know.
            Unknown(String),
        }

        impl $name {
            /// Every known value, in lifecycle order.
            pub const KNOWN: &'static [&'static str] = &[$(stringify!($variant)),+];

            /// The wire value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                    Self::Unknown(other) => other,
                }
            }

            /// Parses a wire value; unknown strings become [`Self::Unknown`].
            #[must_use]
            pub fn parse(value: &str) -> Self {
                match value {
                    $(stringify!($variant) => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::parse(&value))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": Self::KNOWN })
            }
        }

        impl $name {
            /// Schema of an optional phase field. schemars' `Option` adds `null` to `type` and `enum`, which
            /// the structural rewrite turns into an untyped node; Kubernetes wants `nullable` instead.
            pub(crate) fn optional_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": Self::KNOWN, "nullable": true })
            }
        }
    };
}

string_enum! {
    /// Phase of a [`crate::PostgresPhysicalReplica`] (behaviour R10).
    ReplicaPhase {
        /// No active restore yet.
        Pending,
        /// A restore is in progress.
        Restoring,
        /// An active restore serves.
        Ready,
        /// No active restore and scheduling is suspended.
        Failed,
    }
}

string_enum! {
    /// Phase of a [`crate::PostgresPhysicalRestore`] (behaviour R10):
    /// `Pending → Restoring → Ready → Switching → Active`, `Failed` from any non-terminal phase.
    RestorePhase {
        /// Created; children not yet running.
        Pending,
        /// The restore Job is copying the snapshot.
        Restoring,
        /// PostgreSQL serves the restored data and is ready for switchover.
        Ready,
        /// Persistent schemas are migrating and the Service is about to move.
        Switching,
        /// The replica's Service selects this restore.
        Active,
        /// The restore failed; see its conditions.
        Failed,
    }
}

impl RestorePhase {
    /// Whether the restore still occupies a concurrency slot (behaviour R6).
    #[must_use]
    pub fn is_in_progress(&self) -> bool {
        matches!(self, Self::Pending | Self::Restoring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_as_plain_strings() {
        for known in RestorePhase::KNOWN {
            let phase = RestorePhase::parse(known);
            assert!(!matches!(phase, RestorePhase::Unknown(_)));
            let json = serde_json::to_string(&phase).expect("serialise");
            assert_eq!(json, format!("\"{known}\""));
            let back: RestorePhase = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, phase);
        }
        for known in ReplicaPhase::KNOWN {
            let back: ReplicaPhase =
                serde_json::from_str(&format!("\"{known}\"")).expect("deserialise");
            assert_eq!(back.as_str(), *known);
        }
    }

    #[test]
    fn unknown_phase_from_newer_operator_is_kept_not_rejected() {
        let phase: ReplicaPhase = serde_json::from_str("\"Hibernating\"").expect("deserialise");
        assert_eq!(phase, ReplicaPhase::Unknown("Hibernating".into()));
        assert_eq!(
            serde_json::to_string(&phase).expect("serialise"),
            "\"Hibernating\""
        );
    }

    #[test]
    fn only_pending_and_restoring_hold_a_concurrency_slot() {
        let holding: Vec<_> = RestorePhase::KNOWN
            .iter()
            .filter(|p| RestorePhase::parse(p).is_in_progress())
            .collect();
        assert_eq!(holding, [&"Pending", &"Restoring"]);
    }
}
