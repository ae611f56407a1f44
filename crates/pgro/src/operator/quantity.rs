//! Kubernetes quantities as byte counts (`1.5Gi`, `500M`, `2Ti`, `1e9`, `1610612736`).
//!
//! Grammar from `k8s.io/apimachinery/pkg/api/resource`: `<sign><number><suffix>` with binary suffixes
//! `Ki…Ei`, decimal suffixes `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`, or a decimal exponent `e<n>`/`E<n>`.
//! Fractions of a byte round up, as the apiserver rounds quantities up.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity that is not a non-negative byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not follow the quantity grammar.
    #[error("{value:?} is not a quantity such as 500Mi, 20Gi or 2Ti")]
    Malformed {
        /// The rejected text.
        value: String,
    },
    /// The quantity is negative.
    #[error("{value:?} is negative")]
    Negative {
        /// The rejected text.
        value: String,
    },
    /// The quantity does not fit in 2^63 - 1, the Kubernetes limit.
    #[error("{value:?} is too large")]
    TooLarge {
        /// The rejected text.
        value: String,
    },
}

/// Largest value a Kubernetes quantity may hold.
const MAX: u128 = i64::MAX as u128;

/// The number of bytes a quantity denotes, rounded up to a whole byte.
///
/// # Errors
///
/// [`QuantityError`] when the text is malformed, negative or above 2^63 - 1.
pub fn to_bytes(quantity: &Quantity) -> Result<u64, QuantityError> {
    parse(quantity.0.trim())
}

/// A byte count in the largest binary unit that represents it exactly (`1024` → `1Ki`).
#[must_use]
pub fn from_bytes(bytes: u64) -> Quantity {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, suffix) in SUFFIXES.iter().enumerate() {
        let unit = 1u64 << (10 * (SUFFIXES.len() - i));
        if bytes != 0 && bytes.is_multiple_of(unit) {
            return Quantity(format!("{}{suffix}", bytes / unit));
        }
    }
    Quantity(bytes.to_string())
}

fn parse(text: &str) -> Result<u64, QuantityError> {
    let malformed = || QuantityError::Malformed {
        value: text.to_owned(),
    };
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(malformed());
    }
    // value = digits / 10^frac_len × num / den
    let digits: u128 =
        format!("{int_part}{frac_part}")
            .parse()
            .map_err(|_| QuantityError::TooLarge {
                value: text.to_owned(),
            })?;
    let (num, den) = scale(suffix).ok_or_else(malformed)?;
    let frac_len = u32::try_from(frac_part.len()).map_err(|_| malformed())?;
    let den = 10u128
        .checked_pow(frac_len)
        .and_then(|p| p.checked_mul(den))
        .ok_or_else(malformed)?;
    let numerator = digits
        .checked_mul(num)
        .ok_or_else(|| QuantityError::TooLarge {
            value: text.to_owned(),
        })?;
    let bytes = numerator.div_ceil(den);
    if negative && bytes != 0 {
        return Err(QuantityError::Negative {
            value: text.to_owned(),
        });
    }
    if bytes > MAX {
        return Err(QuantityError::TooLarge {
            value: text.to_owned(),
        });
    }
    u64::try_from(bytes).map_err(|_| QuantityError::TooLarge {
        value: text.to_owned(),
    })
}

/// The multiplier of a suffix as a fraction `num / den`.
fn scale(suffix: &str) -> Option<(u128, u128)> {
    let binary = |power: u32| Some((1u128 << (10 * power), 1));
    let decimal = |exp: i32| {
        let p = 10u128.checked_pow(exp.unsigned_abs())?;
        Some(if exp >= 0 { (p, 1) } else { (1, p) })
    };
    match suffix {
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exp if exp.starts_with(['e', 'E']) => {
            let digits = &exp[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(digits.parse().ok()?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
