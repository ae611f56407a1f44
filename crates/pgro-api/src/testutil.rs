//! Test helpers shared by the workspace's tests (feature `testutil`).

use serde::de::DeserializeOwned;

/// Parses a YAML manifest into a typed object, through JSON so that the same rules apply as for objects
/// read from the apiserver.
///
/// # Errors
///
/// Returns the YAML or typing error.
pub fn from_yaml<T: DeserializeOwned>(yaml: &str) -> Result<T, serde_yaml::Error> {
    let value: serde_json::Value = serde_yaml::from_str(yaml)?;
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}
