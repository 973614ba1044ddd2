//! Where kube's CEL library and the API server's disagree, the API server's
//! answer for the CEL functions the CRD's rules use.
//!
//! The API server evaluates `isCIDR` with Go's `netip.ParsePrefix`,
//! `isQuantity` / `quantity()` with `resource.ParseQuantity`, and
//! `duration()` with `time.ParseDuration`. kube's CEL library is close but not
//! the same: it accepts `010.0.0.0/8` and `10.0.0.0/08` (Go refuses leading
//! zeros), `" 1"` (it trims spaces), and durations past Go's ~2562047h; it
//! refuses `.` and `+` (Go reads both as 0). Without this module the offline
//! verdict would differ from the API server's on exactly those inputs.
//!
//! Two passes around the CEL stage: [`canonicalize_quantities`] rewrites a
//! quantity Go accepts but kube's library would not into an equal one both
//! read (for evaluation only), and [`strict_problems`] reports, at the rule
//! stage and with the rule's own message, a value kube's library let through
//! but Go refuses.

use serde_json::Value;

use super::{Problem, Stage, join_index, join_key, join_property};

/// The maps whose values the CRD checks with `isQuantity`.
const QUANTITY_MAPS: [&str; 5] = [
    "/spec/limitRange/defaultRequest",
    "/spec/limitRange/default",
    "/spec/limitRange/min",
    "/spec/limitRange/max",
    "/spec/resourceQuota/hard",
];

/// Rewrites, in the copy CEL evaluates, quantities Go accepts that kube's
/// library would refuse. `kube_accepts` is kube's `isQuantity`.
pub(crate) fn canonicalize_quantities(value: &mut Value, kube_accepts: impl Fn(&str) -> bool) {
    for pointer in QUANTITY_MAPS {
        let Some(map) = value.pointer_mut(pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        for entry in map.values_mut() {
            let Some(text) = entry.as_str() else { continue };
            if kube_accepts(text) {
                continue;
            }
            if let Some(canonical) = parse_quantity(text).ok().and_then(|q| q.canonical()) {
                *entry = Value::String(canonical);
            }
        }
    }
}

/// Problems Go's functions find that kube's let through, at the rule stage,
/// skipping fields `already` names (the CEL stage reported them).
pub(crate) fn strict_problems(
    value: &Value,
    schema: &Value,
    already: &[Problem],
    kube_accepts_quantity: impl Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |path: String, rule_hint: &str, schema_pointer: &str| {
        if already.iter().any(|p| p.path == path)
            || problems.iter().any(|p: &Problem| p.path == path)
        {
            return;
        }
        let message = rule_message(schema, schema_pointer, rule_hint)
            .unwrap_or_else(|| format!("the API server's {rule_hint} refuses this value"));
        problems.push(Problem::new(&path, message).at(Stage::Rule));
    };

    for pointer in QUANTITY_MAPS {
        let Some(map) = value.pointer(pointer).and_then(Value::as_object) else {
            continue;
        };
        let path = pointer_to_path(pointer);
        for text in map.values().filter_map(Value::as_str) {
            if parse_quantity(text).is_err() && kube_accepts_quantity(text) {
                report(path.clone(), "isQuantity", &schema_pointer(pointer));
            }
        }
    }

    let egress = value
        .pointer("/spec/networkPolicy/allowEgressTo")
        .and_then(Value::as_array);
    for (index, allow) in egress.into_iter().flatten().enumerate() {
        for field in ["cidrs", "except"] {
            let texts = allow.get(field).and_then(Value::as_array);
            if texts
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|text| !is_cidr(text))
            {
                let path = join_property(
                    &join_index("spec.networkPolicy.allowEgressTo", index),
                    field,
                );
                let pointer = format!(
                    "/properties/spec/properties/networkPolicy/properties/allowEgressTo/items/properties/{field}"
                );
                report(path, "isCIDR", &pointer);
            }
        }
    }

    if let Some(ttl) = value.pointer("/spec/backup/ttl").and_then(Value::as_str)
        && super::semantic::parse_go_duration(ttl).is_err()
    {
        report(
            "spec.backup.ttl".to_owned(),
            "duration(",
            "/properties/spec/properties/backup/properties/ttl",
        );
    }
    problems
}

/// `/spec/limitRange/min` → `spec.limitRange.min`.
fn pointer_to_path(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .fold(String::new(), |path, part| join_key(&path, part))
}

/// `/spec/limitRange/min` → the schema node of that field.
fn schema_pointer(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|part| format!("/properties/{part}"))
        .collect()
}

/// The message of the rule at `pointer` (in the CRD schema) that uses `hint`.
fn rule_message(schema: &Value, pointer: &str, hint: &str) -> Option<String> {
    schema
        .pointer(pointer)?
        .get("x-kubernetes-validations")?
        .as_array()?
        .iter()
        .find(|rule| rule["rule"].as_str().is_some_and(|r| r.contains(hint)))?
        .get("message")?
        .as_str()
        .map(str::to_owned)
}

/// kube's CEL `isQuantity`, which the offline CEL stage uses.
pub(crate) fn kube_is_quantity(text: &str) -> bool {
    use kube::core::cel::KubeCelExt;
    use kube::core::cel::cel::{Context, Program, Value as CelValue};
    static PROGRAM: std::sync::LazyLock<Option<Program>> =
        std::sync::LazyLock::new(|| Program::compile("isQuantity(a)").ok());
    let Some(program) = PROGRAM.as_ref() else {
        return false;
    };
    let mut context = Context::default().with_all();
    context.add_variable_from_value("a", text.to_owned());
    matches!(program.execute(&context), Ok(CelValue::Bool(true)))
}

/// Go's `netip.ParsePrefix`, less zones, plus the API server's refusal of
/// IPv4-mapped IPv6: what `isCIDR` accepts.
pub(crate) fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.rsplit_once('/') else {
        return false;
    };
    // Rust's parser is as strict as Go's (no leading zeros in IPv4 fields);
    // Go refuses zones in prefixes.
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let width = match address {
        std::net::IpAddr::V4(_) => 32,
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => return false,
        std::net::IpAddr::V6(_) => 128,
    };
    // Go: no sign, no leading zero, decimal, within the address width.
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return false;
    }
    bits.parse::<u32>().is_ok_and(|bits| bits <= width)
}

/// A quantity as Go's `resource.ParseQuantity` reads it (syntax only; the
/// value is kept as digits and a power of ten or two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoQuantity {
    negative: bool,
    /// Integer and fraction digits, without the point.
    digits: String,
    /// How many of `digits` are after the point.
    fraction_len: usize,
    /// Power of ten (decimal suffixes and exponents) or of two (binary).
    exponent: i64,
    binary: bool,
}

impl GoQuantity {
    /// Whether the value is a whole number, as the API server's check of
    /// counted resources sees it; `None` when too large to tell cheaply.
    pub(crate) fn is_integral(&self) -> Option<bool> {
        let digits = self.digits.trim_start_matches('0');
        if digits.is_empty() {
            return Some(true);
        }
        let trimmed = digits.trim_end_matches('0');
        let removed = (digits.len() - trimmed.len()) as i64;
        if !self.binary {
            return Some(self.exponent - self.fraction_len as i64 + removed >= 0);
        }
        // digits / 10^fraction_len * 2^exponent
        let numerator: u128 = digits.parse().ok()?;
        let numerator = numerator.checked_mul(1u128.checked_shl(self.exponent as u32)?)?;
        let denominator = 10u128.checked_pow(self.fraction_len as u32)?;
        Some(numerator % denominator == 0)
    }

    /// An equal quantity in plain `[-]DIGITSeEXP` or `[-]DIGITS<binary>`
    /// form, when one of reasonable size exists.
    fn canonical(&self) -> Option<String> {
        let sign = if self.negative { "-" } else { "" };
        let digits = self.digits.trim_start_matches('0');
        if digits.is_empty() {
            return Some("0".to_owned());
        }
        if self.binary {
            let suffix = match self.exponent {
                0 => "",
                10 => "Ki",
                20 => "Mi",
                30 => "Gi",
                40 => "Ti",
                50 => "Pi",
                60 => "Ei",
                _ => return None,
            };
            let (whole, fraction) = self.digits.split_at(self.digits.len() - self.fraction_len);
            let whole = if whole.is_empty() { "0" } else { whole };
            let point = if fraction.is_empty() { "" } else { "." };
            return Some(format!("{sign}{whole}{point}{fraction}{suffix}"));
        }
        let trimmed = digits.trim_end_matches('0');
        let exponent =
            self.exponent - self.fraction_len as i64 + (digits.len() - trimmed.len()) as i64;
        (trimmed.len() <= 30 && exponent.abs() <= 1_000)
            .then(|| format!("{sign}{trimmed}e{exponent}"))
    }
}

/// Go's `resource.ParseQuantity`, as far as accepting or refusing goes.
pub(crate) fn parse_quantity(text: &str) -> Result<GoQuantity, &'static str> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err("empty");
    }
    let mut pos = 0;
    let mut negative = false;
    match bytes[0] {
        b'-' => {
            negative = true;
            pos = 1;
        }
        b'+' => pos = 1,
        _ => {}
    }
    let digit_run = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let number_start = pos;
    let integer_end = digit_run(pos);
    let mut fraction = "";
    pos = integer_end;
    if pos < bytes.len() && bytes[pos] == b'.' {
        let fraction_end = digit_run(pos + 1);
        fraction = &text[pos + 1..fraction_end];
        pos = fraction_end;
    }
    let integer = &text[number_start..integer_end];
    let value_text = &text[..pos];

    // The suffix: letters from "eEinumkKMGTP", then an optional sign and
    // digits (a decimal exponent); anything else is malformed.
    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() {
        if matches!(bytes[pos], b'-' | b'+') {
            pos += 1;
        }
        pos = digit_run(pos);
        if pos < bytes.len() {
            return Err("malformed");
        }
    }
    let suffix = &text[suffix_start..];

    let (exponent, binary) = match suffix {
        "" => (0, false),
        "n" => (-9, false),
        "u" => (-6, false),
        "m" => (-3, false),
        "k" => (3, false),
        "M" => (6, false),
        "G" => (9, false),
        "T" => (12, false),
        "P" => (15, false),
        "E" => (18, false),
        "Ki" => (10, true),
        "Mi" => (20, true),
        "Gi" => (30, true),
        "Ti" => (40, true),
        "Pi" => (50, true),
        "Ei" => (60, true),
        _ => {
            let rest = suffix
                .strip_prefix(['e', 'E'])
                .filter(|r| !r.is_empty())
                .ok_or("unknown suffix")?;
            let parsed: i64 = rest.parse().map_err(|_| "unknown suffix")?;
            // Go keeps the exponent as an int32.
            (i64::from(parsed as i32), false)
        }
    };

    // Go's fast path needs no digits; its slow path (big numbers, or a
    // scale below nano, or a binary suffix with a fraction) parses the
    // number part with inf.Dec, which needs at least one.
    let integer_significant = integer.trim_start_matches('0');
    let integer_len = if integer_significant.is_empty() {
        1
    } else {
        integer_significant.len()
    };
    let precision: i64 = if binary {
        if fraction.is_empty() {
            15 - integer_len as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1
        } else {
            -1
        }
    } else {
        18 - (integer_len + fraction.len()) as i64
    };
    let scale = if binary { 0 } else { exponent } - fraction.len() as i64;
    let fast = precision >= 0 && scale >= -9;
    if !fast && !value_text.bytes().any(|b| b.is_ascii_digit()) {
        return Err("no digits");
    }
    Ok(GoQuantity {
        negative,
        digits: format!("{integer}{fraction}"),
        fraction_len: fraction.len(),
        exponent,
        binary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_as_the_api_server_reads_them() {
        for ok in [
            "10.0.0.0/8",
            "10.1.2.3/8",
            "0.0.0.0/0",
            "fd00::/8",
            "::/0",
            "::1.2.3.4/128",
            "2001:DB8::/32",
        ] {
            assert!(is_cidr(ok), "{ok}");
        }
        for bad in [
            "010.0.0.0/8",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "10.0.0.0",
            "10.0.0.0/33",
            "::ffff:10.0.0.0/104",
            "fe80::1%eth0/64",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn quantities_as_the_api_server_reads_them() {
        for ok in [
            "0",
            "1",
            "500m",
            "1.5",
            "1.",
            ".5",
            ".",
            "+",
            "-",
            "-0",
            "+1",
            "1e3",
            "1E3",
            "1e-3",
            "1E",
            "1Ki",
            "1.5Gi",
            "1.G",
            "1n",
            "0.0001m",
            "9223372036854775808",
            "1e99999999999",
        ] {
            assert!(parse_quantity(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", " 1", "1 ", "1K", "1.5.5", "1m5", "1e", "1ki", "--1", "+-1", "0x10", "1_000",
            "1e3.5", "+.e-10",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_numbers() {
        let integral = |text: &str| parse_quantity(text).ok().and_then(|q| q.is_integral());
        for whole in ["0", "5", "1.0", "1k", "1e3", "0.5Ki", "20", "1.500e3"] {
            assert_eq!(integral(whole), Some(true), "{whole}");
        }
        for fraction in ["500m", "1.5", "1e-1", "0.1Ki", "1001m"] {
            assert_eq!(integral(fraction), Some(false), "{fraction}");
        }
    }

    #[test]
    fn canonical_quantities_keep_their_value() {
        let canonical = |text: &str| parse_quantity(text).ok().and_then(|q| q.canonical());
        assert_eq!(canonical(".").as_deref(), Some("0"));
        assert_eq!(canonical("+").as_deref(), Some("0"));
        assert_eq!(canonical("1.5k").as_deref(), Some("15e2"));
        assert_eq!(canonical("-2500m").as_deref(), Some("-25e-1"));
        assert_eq!(canonical("1.5Gi").as_deref(), Some("1.5Gi"));
        assert_eq!(
            canonical(&format!("1{}", "0".repeat(50))).as_deref(),
            Some("1e50")
        );
    }
}
