//! Kubernetes syntax, in one place: DNS-1123 names, label keys and values,
//! label selector operators, CIDRs, quantities and durations, each as the
//! API server (Go) reads it, with typed errors.
//!
//! The offline validator, the renderer, the CLI and the comparison of live
//! objects all use these, so two copies of a rule cannot disagree. A leaf
//! module: it uses nothing else of baseliner's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

// ---------------------------------------------------------------------------
// Names

/// Whether `name` is a DNS-1123 label: at most 63 lowercase letters, digits
/// and '-', starting and ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63
        && is_label_shaped(
            name,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
            |b| b == b'-',
        )
}

/// Whether `name` is a DNS-1123 subdomain, as Go's `IsDNS1123Subdomain`
/// checks it: at most 253 characters of dot-separated parts, each of
/// lowercase letters, digits and '-', starting and ending with a letter or
/// digit.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            is_label_shaped(
                part,
                |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
                |b| b == b'-',
            )
        })
}

/// Non-empty, `edge` bytes at both ends, `edge` or `inner` bytes between.
fn is_label_shaped(text: &str, edge: impl Fn(u8) -> bool, inner: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            edge(first) && edge(last) && bytes.iter().all(|&b| edge(b) || inner(b))
        }
        _ => false,
    }
}

/// The name part of a label key or a label value: letters, digits, and
/// '-', '_' or '.' between them.
fn is_qualified_name_part(text: &str) -> bool {
    is_label_shaped(
        text,
        |b| b.is_ascii_alphanumeric(),
        |b| matches!(b, b'-' | b'_' | b'.'),
    )
}

// ---------------------------------------------------------------------------
// Labels

/// Why a label key is refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LabelKeyError {
    /// The part before `/` is not a DNS subdomain.
    #[error("prefix {0:?} must be a DNS subdomain such as example.com")]
    Prefix(String),
    /// The part after `/` (or the whole key) is malformed.
    #[error(
        "the name part must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )]
    Name,
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
pub fn check_label_key(key: &str) -> Result<(), LabelKeyError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        return Err(LabelKeyError::Prefix(prefix.to_owned()));
    }
    if name.len() > 63 || !is_qualified_name_part(name) {
        return Err(LabelKeyError::Name);
    }
    Ok(())
}

/// Why a label value is refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)]
pub struct LabelValueError;

/// A label value: empty, or at most 63 characters of the label name set.
pub fn check_label_value(value: &str) -> Result<(), LabelValueError> {
    if value.len() > 63 || !(value.is_empty() || is_qualified_name_part(value)) {
        return Err(LabelValueError);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Label selectors

/// The operator of a label selector's `matchExpressions` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label's value is one of the values.
    In,
    /// The label is missing or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is missing.
    DoesNotExist,
}

/// Why a `matchExpressions` entry is refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RequirementError {
    /// An operator other than In, NotIn, Exists, DoesNotExist.
    #[error("unknown operator `{0}`; use In, NotIn, Exists or DoesNotExist")]
    UnknownOperator(String),
    /// In or NotIn without values.
    #[error("operator {0} needs at least one value")]
    MissingValues(String),
    /// Exists or DoesNotExist with values.
    #[error("operator {0} takes no values")]
    UnexpectedValues(String),
}

impl SelectorOperator {
    /// Reads an operator and checks the values it comes with, as the API
    /// server does.
    pub fn parse(operator: &str, values: &[String]) -> Result<Self, RequirementError> {
        let parsed = match operator {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            other => return Err(RequirementError::UnknownOperator(other.to_owned())),
        };
        match (parsed.takes_values(), values.is_empty()) {
            (true, true) => Err(RequirementError::MissingValues(operator.to_owned())),
            (false, false) => Err(RequirementError::UnexpectedValues(operator.to_owned())),
            _ => Ok(parsed),
        }
    }

    /// Whether the operator needs values (In, NotIn) or takes none.
    pub fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

// ---------------------------------------------------------------------------
// CIDRs

/// An IPv4 or IPv6 range, with host bits cleared, read as Go's
/// `netip.ParsePrefix` reads it (less zones) plus the API server's refusal
/// of IPv4-mapped IPv6: what the CRD's `isCIDR` accepts. So `10.0.0.0/08`
/// and `010.0.0.0/8` are refused, `10.1.2.3/8` is `10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    prefix_len: u8,
    is_v6: bool,
}

/// A string that is not a CIDR.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a CIDR such as 10.0.0.0/8")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        Self::parse(text).ok_or_else(|| CidrError(text.to_owned()))
    }
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, bits) = text.rsplit_once('/')?;
        // Rust's parser is as strict as Go's (no leading zeros in IPv4
        // fields); Go refuses zones in prefixes.
        let (address, is_v6) = match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => return None,
            IpAddr::V6(v6) => (u128::from(v6), true),
        };
        // Go: no sign, no leading zero, decimal, within the address width.
        if bits.is_empty()
            || bits.len() > 3
            || !bits.bytes().all(|b| b.is_ascii_digit())
            || (bits.len() > 1 && bits.starts_with('0'))
        {
            return None;
        }
        let mut cidr = Self {
            bits: address,
            prefix_len: bits.parse().ok()?,
            is_v6,
        };
        if cidr.prefix_len > cidr.width() {
            return None;
        }
        cidr.bits &= cidr.mask();
        Some(cidr)
    }

    /// The prefix length, e.g. 8 for `10.0.0.0/8`.
    pub fn prefix_len(self) -> u8 {
        self.prefix_len
    }

    fn width(self) -> u8 {
        if self.is_v6 { 128 } else { 32 }
    }

    fn mask(self) -> u128 {
        if self.prefix_len == 0 {
            return 0;
        }
        let all = if self.is_v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        (u128::MAX << (self.width() - self.prefix_len)) & all
    }

    /// Whether every address of `other` is in this range (equal ranges included).
    pub fn covers(self, other: Cidr) -> bool {
        self.is_v6 == other.is_v6
            && other.prefix_len >= self.prefix_len
            && other.bits & self.mask() == self.bits
    }

    /// Whether `other` lies strictly inside this range, as the API server
    /// requires of an `except` entry.
    pub fn strictly_covers(self, other: Cidr) -> bool {
        self.covers(other) && other.prefix_len > self.prefix_len
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.bits), self.prefix_len)
        } else {
            // Lossless: an IPv4 range only ever holds 32 bits.
            let address = Ipv4Addr::from(u32::try_from(self.bits).unwrap_or_default());
            write!(f, "{address}/{}", self.prefix_len)
        }
    }
}

// ---------------------------------------------------------------------------
// Quantities

/// Why a string is not a quantity.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum QuantityError {
    /// Nothing at all.
    #[error("empty")]
    Empty,
    /// Characters after the number and suffix.
    #[error("malformed")]
    Malformed,
    /// A suffix Kubernetes does not know.
    #[error("unknown suffix")]
    UnknownSuffix,
    /// A number Go reads with its slow path and that has no digits.
    #[error("no digits")]
    NoDigits,
}

/// A quantity as Go's `resource.ParseQuantity` reads it (syntax only; the
/// value is kept as digits and a power of ten or two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// Integer and fraction digits, without the point.
    digits: String,
    /// How many of `digits` are after the point.
    fraction_len: usize,
    /// Power of ten (decimal suffixes and exponents) or of two (binary).
    exponent: i64,
    binary: bool,
}

impl Quantity {
    /// Whether the value is a whole number, as the API server's check of
    /// counted resources sees it; `None` when too large to tell cheaply.
    pub fn is_integral(&self) -> Option<bool> {
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
    pub fn canonical(&self) -> Option<String> {
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

/// The power of ten (or, binary, of two) a quantity suffix stands for.
fn suffix_exponent(suffix: &str) -> Result<(i64, bool), QuantityError> {
    Ok(match suffix {
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
                .ok_or(QuantityError::UnknownSuffix)?;
            let parsed: i64 = rest.parse().map_err(|_| QuantityError::UnknownSuffix)?;
            // Go keeps the exponent as an int32.
            (i64::from(parsed as i32), false)
        }
    })
}

/// Go's `resource.ParseQuantity`, as far as accepting or refusing goes.
pub fn parse_quantity(text: &str) -> Result<Quantity, QuantityError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(QuantityError::Empty);
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
            return Err(QuantityError::Malformed);
        }
    }
    let suffix = &text[suffix_start..];

    let (exponent, binary) = suffix_exponent(suffix)?;

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
        return Err(QuantityError::NoDigits);
    }
    Ok(Quantity {
        negative,
        digits: format!("{integer}{fraction}"),
        fraction_len: fraction.len(),
        exponent,
        binary,
    })
}

impl Quantity {
    /// The value in billionths of its unit, when that is a whole number
    /// that fits: what comparing two spellings of one quantity needs
    /// (`1000m` and `1`, `1Gi` and `1073741824`).
    pub fn nanos(&self) -> Option<i128> {
        let digits: i128 = if self.digits.is_empty() {
            0
        } else {
            self.digits.parse().ok()?
        };
        let fraction = i128::from(u32::try_from(self.fraction_len).ok()?);
        let value = if self.binary {
            let scaled = digits
                .checked_mul(1_000_000_000)?
                .checked_mul(1i128.checked_shl(u32::try_from(self.exponent).ok()?)?)?;
            let divisor = 10i128.checked_pow(u32::try_from(fraction).ok()?)?;
            (scaled % divisor == 0).then(|| scaled / divisor)?
        } else {
            let power = 9 + self.exponent - fraction as i64;
            if power >= 0 {
                digits.checked_mul(10i128.checked_pow(u32::try_from(power).ok()?)?)?
            } else {
                let divisor = 10i128.checked_pow(u32::try_from(-power).ok()?)?;
                (digits % divisor == 0).then(|| digits / divisor)?
            }
        };
        Some(if self.negative { -value } else { value })
    }
}

/// Whether two strings are the same quantity (`500m` and `0.5`). False when
/// either is not a quantity or cannot be compared exactly.
pub fn quantities_equal(a: &str, b: &str) -> bool {
    let nanos = |text: &str| parse_quantity(text).ok().and_then(|q| q.nanos());
    match (nanos(a), nanos(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Durations

/// Why a string is not a Go duration.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing at all.
    #[error("empty duration")]
    Empty,
    /// A unit without a number before it.
    #[error("expected a number")]
    ExpectedNumber,
    /// A number without a unit.
    #[error("missing unit (use h, m, s or ms)")]
    MissingUnit,
    /// A unit Go does not know.
    #[error("unknown unit {0:?} (use h, m, s or ms)")]
    UnknownUnit(String),
    /// A number past what Go holds.
    #[error("number too large")]
    TooLarge,
    /// A duration past what Go holds.
    #[error("longer than Go durations allow (about 2562047h)")]
    TooLong,
}

/// Parses a duration as Go's `time.ParseDuration` does, in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = &rest[..digits];
        rest = &rest[digits..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after_dot[..fraction_digits];
            rest = &after_dot[fraction_digits..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::ExpectedNumber);
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(DurationError::MissingUnit),
            other => return Err(DurationError::UnknownUnit(other.to_owned())),
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::TooLarge)?
        };
        let mut value = whole.checked_mul(scale).ok_or(DurationError::TooLarge)?;
        let mut divisor: u128 = 1;
        for digit in fraction.bytes().take(30) {
            divisor *= 10;
            value += u128::from(digit - b'0') * scale / divisor;
        }
        total = total.checked_add(value).ok_or(DurationError::TooLarge)?;
        if total > i64::MAX as u128 {
            return Err(DurationError::TooLong);
        }
    }
    let total = total as i64;
    Ok(if negative { -total } else { total })
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
            assert!(ok.parse::<Cidr>().is_ok(), "{ok}");
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
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
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

    #[test]
    fn dns1123_cases() {
        let labels = [
            ("a", true),
            ("a-1", true),
            ("1a", true),
            (&*"a".repeat(63), true),
            (&*"a".repeat(64), false),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("A", false),
            ("a.b", false),
            ("a_b", false),
        ];
        for (name, expected) in labels {
            assert_eq!(is_dns1123_label(name), expected, "label {name:?}");
        }
        let subdomains = [
            ("a.b-c.d", true),
            ("a", true),
            ("production-strict", true),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("a.B", false),
            ("prod_1", false),
            ("", false),
            (
                &*[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(61),
                ]
                .join("."),
                true,
            ),
            (
                &*[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(62),
                ]
                .join("."),
                false,
            ),
        ];
        for (name, expected) in subdomains {
            assert_eq!(is_dns1123_subdomain(name), expected, "subdomain {name:?}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for key in ["team", "app.kubernetes.io/name", "a_b.c-d", "x"] {
            assert_eq!(check_label_key(key), Ok(()), "{key}");
        }
        for key in [
            "",
            "-a",
            "a-",
            "Example.com/x",
            "/x",
            "a/",
            "a/b/c",
            &"k".repeat(64),
        ] {
            assert!(check_label_key(key).is_err(), "{key}");
        }
        assert_eq!(
            check_label_key("Example.com/x"),
            Err(LabelKeyError::Prefix("Example.com".to_owned()))
        );
        for value in ["", "prod", "A_b.c-1"] {
            assert_eq!(check_label_value(value), Ok(()), "{value}");
        }
        for value in ["-x", "x y", "a/b", &"v".repeat(64)] {
            assert!(check_label_value(value).is_err(), "{value}");
        }
    }

    #[test]
    fn selector_operators() {
        let values = vec!["a".to_owned()];
        let cases: [(&str, &[String], Result<SelectorOperator, RequirementError>); 6] = [
            ("In", &values, Ok(SelectorOperator::In)),
            ("NotIn", &values, Ok(SelectorOperator::NotIn)),
            ("Exists", &[], Ok(SelectorOperator::Exists)),
            (
                "In",
                &[],
                Err(RequirementError::MissingValues("In".to_owned())),
            ),
            (
                "DoesNotExist",
                &values,
                Err(RequirementError::UnexpectedValues(
                    "DoesNotExist".to_owned(),
                )),
            ),
            (
                "in",
                &values,
                Err(RequirementError::UnknownOperator("in".to_owned())),
            ),
        ];
        for (operator, values, expected) in cases {
            assert_eq!(
                SelectorOperator::parse(operator, values),
                expected,
                "{operator}"
            );
        }
    }

    #[test]
    fn cidr_arithmetic() {
        let cidr = |text: &str| text.parse::<Cidr>().expect("a CIDR");
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("2001:DB8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!(cidr("10.0.0.0/8").covers(cidr("10.1.0.0/16")));
        assert!(cidr("10.0.0.0/8").covers(cidr("10.0.0.0/8")));
        assert!(!cidr("10.0.0.0/8").strictly_covers(cidr("10.0.0.0/8")));
        assert!(cidr("10.0.0.0/8").strictly_covers(cidr("10.1.0.0/16")));
        assert!(!cidr("10.1.0.0/16").covers(cidr("10.0.0.0/8")));
        assert!(!cidr("0.0.0.0/0").covers(cidr("::/0")));
        assert_eq!(
            "10.0.0.0/08".parse::<Cidr>(),
            Err(CidrError("10.0.0.0/08".to_owned()))
        );
    }

    #[test]
    fn quantities_in_nanos() {
        let cases = [
            ("1", Some(1_000_000_000)),
            ("500m", Some(500_000_000)),
            ("0.5", Some(500_000_000)),
            ("1.5Gi", Some(1_000_000_000i128 * 3 * (1 << 29))),
            ("2k", Some(2_000_000_000_000)),
            ("1e3", Some(1_000_000_000_000)),
            ("-1", Some(-1_000_000_000)),
            ("abc", None),
            ("", None),
            ("1Xi", None),
            ("0.0000000001", None),
        ];
        for (text, expected) in cases {
            let nanos = parse_quantity(text).ok().and_then(|q| q.nanos());
            assert_eq!(nanos, expected, "{text}");
        }
        assert!(quantities_equal("1000m", "1"));
        assert!(quantities_equal("1Gi", "1073741824"));
        assert!(!quantities_equal("1Gi", "1G"));
        assert!(!quantities_equal("x", "x"));
    }

    #[test]
    fn go_durations() {
        let hour = 3_600_000_000_000_i64;
        let ok = [
            ("720h", 720 * hour),
            ("72h30m", 72 * hour + hour / 2),
            ("1.5h", hour + hour / 2),
            ("90s", 90_000_000_000),
            ("250ms", 250_000_000),
            ("1h0m0s", hour),
            ("0", 0),
            ("-1h", -hour),
            (".5h", hour / 2),
        ];
        for (text, nanos) in ok {
            assert_eq!(parse_duration(text), Ok(nanos), "{text}");
        }
        for text in ["", "h", "10", "10d", "1h30", "1..5h", "9999999999h", "1 h"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_duration("10d").map_err(|e| e.to_string()),
            Err("unknown unit \"d\" (use h, m, s or ms)".to_owned())
        );
    }
}
