//! Kubernetes resource quantities (`128Mi`, `0.5`, `500m`, `1e3`) turned into the integers podman
//! takes. Only the two resources podswarm enforces are needed: memory in bytes, CPU in millicores.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid quantity: {reason}")]
pub struct QuantityError {
    pub value: String,
    pub reason: &'static str,
}

/// Parses a quantity into a value scaled by `scale` (1 for bytes, 1000 for millicores), rounding up
/// as Kubernetes does when it converts to integers.
fn scaled(value: &str, scale: u128) -> Result<u128, QuantityError> {
    let err = |reason| QuantityError {
        value: value.to_owned(),
        reason,
    };
    let s = value.trim();
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(err("it has no number"));
    }
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.contains('.') || frac_part.contains('.') || frac_part.contains('+') {
        return Err(err("the number is malformed"));
    }
    // value = digits / 10^frac_len * multiplier, with the multiplier as numerator/denominator.
    let (num_mult, den_mult): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..]
                .parse()
                .map_err(|_| err("the exponent is malformed"))?;
            if exp > 18 {
                return Err(err("the exponent is too large"));
            }
            (10u128.pow(exp), 1)
        }
        _ => return Err(err("the suffix is unknown")),
    };
    if frac_part.len() > 9 {
        return Err(err("it has more than 9 decimal places"));
    }
    let digits: u128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| err("the number is too large"))?;
    let den = 10u128.pow(frac_part.len() as u32) * den_mult;
    let num = digits
        .checked_mul(num_mult)
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| err("the number is too large"))?;
    Ok(num.div_ceil(den))
}

/// Memory quantity in bytes.
pub fn memory_bytes(value: &str) -> Result<u64, QuantityError> {
    let v = scaled(value, 1)?;
    u64::try_from(v).map_err(|_| QuantityError {
        value: value.to_owned(),
        reason: "the number is too large",
    })
}

/// CPU quantity in millicores.
pub fn cpu_millis(value: &str) -> Result<u64, QuantityError> {
    let v = scaled(value, 1000)?;
    u64::try_from(v).map_err(|_| QuantityError {
        value: value.to_owned(),
        reason: "the number is too large",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("128Mi"), Ok(134_217_728));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(memory_bytes("1e3"), Ok(1000));
        assert_eq!(memory_bytes("64"), Ok(64));
        assert!(memory_bytes("12 parsecs").is_err());
        assert!(memory_bytes("").is_err());
        assert!(memory_bytes("-1Mi").is_err());
        assert!(memory_bytes("99999999999999999999999Ei").is_err());
    }

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("500m"), Ok(500));
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("0.25"), Ok(250));
        assert_eq!(cpu_millis("1m"), Ok(1));
        assert_eq!(cpu_millis("0.0001"), Ok(1));
        assert!(cpu_millis("1x").is_err());
    }
}
