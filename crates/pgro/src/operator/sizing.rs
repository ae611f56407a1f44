//! PVC size of a new restore (behaviour R7).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity::{self, QuantityError};

const MI: u64 = 1 << 20;

/// Inputs of [`storage_size`], all from the replica's spec and status plus the chosen snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SizingInputs<'a> {
    /// Total size of the snapshot from Kopia metadata, in bytes.
    pub snapshot_bytes: u64,
    /// `status.persistentSchemaDataSize`, counted only when persistent schemas are configured.
    pub persistent_schema_data: Option<&'a Quantity>,
    /// `spec.storageSizeOverride`.
    pub size_override: Option<&'a Quantity>,
    /// `spec.storageSizeMaximum`.
    pub maximum: &'a Quantity,
}

/// Why no size could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    /// The size is above `storageSizeMaximum`: no restore is created.
    #[error("storage size {size} exceeds storageSizeMaximum {maximum}")]
    ExceedsMaximum {
        /// The computed (or overridden) size.
        size: String,
        /// The configured maximum.
        maximum: String,
    },
    /// A quantity in the spec or status does not parse.
    #[error("{field}: {source}")]
    InvalidQuantity {
        /// Which field.
        field: &'static str,
        /// Why.
        #[source]
        source: QuantityError,
    },
}

/// The PVC size: `storageSizeOverride` when set; otherwise (snapshot size + persistent schema data) × 1.1
/// rounded up to whole Mi. Either way it must not exceed `storageSizeMaximum` — the maximum is a safety limit,
/// so an override above it is refused as well.
///
/// # Errors
///
/// [`SizingError::ExceedsMaximum`] above the limit, [`SizingError::InvalidQuantity`] for unparsable inputs.
pub fn storage_size(inputs: &SizingInputs<'_>) -> Result<Quantity, SizingError> {
    let parse = |field, q| {
        quantity::to_bytes(q).map_err(|source| SizingError::InvalidQuantity { field, source })
    };
    let maximum = parse("storageSizeMaximum", inputs.maximum)?;
    let (bytes, size) = match inputs.size_override {
        Some(q) => (parse("storageSizeOverride", q)?, q.clone()),
        None => {
            let extra = match inputs.persistent_schema_data {
                Some(q) => parse("persistentSchemaDataSize", q)?,
                None => 0,
            };
            let raw = u128::from(inputs.snapshot_bytes) + u128::from(extra);
            // × 1.1, rounded up to whole Mi, in integers: ceil(raw × 11 / (10 × Mi)) Mi.
            let mib = (raw * 11).div_ceil(10 * u128::from(MI));
            let bytes = u64::try_from(mib * u128::from(MI)).unwrap_or(u64::MAX);
            (bytes, Quantity(format!("{mib}Mi")))
        }
    };
    if bytes > maximum {
        return Err(SizingError::ExceedsMaximum {
            size: size.0,
            maximum: inputs.maximum.0.clone(),
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests;
