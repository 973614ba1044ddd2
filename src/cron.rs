//! Cron expressions as Velero reads them.
//!
//! Velero parses `Schedule.spec.schedule` with robfig/cron v3's
//! `ParseStandard`: five fields (minute, hour, day of month, month, day of
//! week) or a descriptor. Each field is a comma-separated list of `*` or `?`,
//! a number or name, or a range `a-b`, each optionally followed by `/step`.
//! This checker accepts exactly that, field ranges included: notably the day
//! of week runs 0-6 (Sunday is 0; robfig rejects 7), and `L`, `W` and `#`
//! are not supported. `@every` and `TZ=` prefixes are left out because the
//! CRD's rule refuses them.
//!
//! A leaf module: the renderer (which leaves out a Schedule that would never
//! back up) and the offline validator both use it, and it uses nothing of
//! baseliner's.

const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values `min..`, in order.
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: &WEEKDAYS,
    },
];

/// Checks a schedule; the error says which field is wrong and why.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    if schedule.starts_with('@') {
        if DESCRIPTORS.contains(&schedule) {
            return Ok(());
        }
        return Err(format!(
            "unknown descriptor {schedule:?}; use one of {}",
            DESCRIPTORS.join(", ")
        ));
    }
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    if parts.len() != FIELDS.len() {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            parts.len()
        ));
    }
    let mut sets = Vec::with_capacity(FIELDS.len());
    for (text, field) in parts.iter().zip(&FIELDS) {
        sets.push(
            check_field(text, field)
                .map_err(|why| format!("{} field {text:?}: {why}", field.name))?,
        );
    }
    check_fires(&sets, &parts)
}

/// The values one field matches, as bits, and whether it is `*` or `?`.
#[derive(Clone, Copy, Debug)]
struct Matches {
    bits: u64,
    star: bool,
}

/// Days in each month, February in a leap year: robfig/cron looks five
/// years ahead, so February 29 comes.
const DAYS_IN_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A schedule that parses can still match no date (`0 0 31 2 *`): robfig
/// then finds no next run. Days of month and of week combine as robfig
/// combines them: when either is `*` both must match, so only the day of
/// month counts when the day of week is `*`; otherwise either may match, and
/// every month has every weekday.
fn check_fires(sets: &[Matches], parts: &[&str]) -> Result<(), String> {
    let (day, month, weekday) = (sets[2], sets[3], sets[4]);
    if day.star || !weekday.star {
        return Ok(());
    }
    let fires = (1..=12u32).any(|m| {
        month.bits & (1 << m) != 0
            && (1..=DAYS_IN_MONTH[m as usize - 1]).any(|d| day.bits & (1 << d) != 0)
    });
    if fires {
        Ok(())
    } else {
        Err(format!(
            "never fires: no month in {:?} has a day in {:?}, so Velero would never back up",
            parts[3], parts[2]
        ))
    }
}

fn check_field(text: &str, field: &Field) -> Result<Matches, String> {
    let mut matches = Matches {
        bits: 0,
        star: false,
    };
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty list item".to_owned());
        }
        let range = check_range(item, field)?;
        matches.bits |= range.bits;
        matches.star |= range.star;
    }
    Ok(matches)
}

fn check_range(item: &str, field: &Field) -> Result<Matches, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let mut step_size = 1;
    if let Some(step) = step {
        if step.contains('/') {
            return Err(format!("too many slashes in {item:?}"));
        }
        step_size = number(step).ok_or_else(|| format!("step {step:?} is not a number"))?;
        if step_size == 0 {
            return Err("step must be a positive number".to_owned());
        }
    }
    let (start, end, star) = if range == "*" || range == "?" {
        // robfig: `*/2` is not a star any more.
        (field.min, field.max, step_size == 1)
    } else {
        match range.split_once('-') {
            Some((start, end)) => {
                if end.contains('-') {
                    return Err(format!("too many hyphens in {item:?}"));
                }
                (value(start, field)?, value(end, field)?, false)
            }
            // robfig: `5/15` runs from 5 to the field's end.
            None if step.is_some() => (value(range, field)?, field.max, false),
            None => {
                let single = value(range, field)?;
                (single, single, false)
            }
        }
    };
    if start > end {
        return Err(format!("range start {start} is after its end {end}"));
    }
    let bits = (start..=end)
        .step_by(step_size.min(64) as usize)
        .fold(0u64, |bits, v| bits | (1 << v));
    Ok(Matches { bits, star })
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    if let Some(position) = field
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(field.min + position as u32);
    }
    let number = number(text).ok_or_else(|| {
        if text.contains(['L', 'W', '#']) {
            format!("{text:?}: L, W and # are not supported by Velero's cron parser")
        } else {
            format!("{text:?} is not a number{}", name_hint(field))
        }
    })?;
    if number < field.min || number > field.max {
        let hint = if field.name == "day of week" && number == 7 {
            " (Sunday is 0)"
        } else {
            ""
        };
        return Err(format!(
            "{number} is out of range {}-{}{hint}",
            field.min, field.max
        ));
    }
    Ok(number)
}

fn name_hint(field: &Field) -> String {
    match (field.names.first(), field.names.last()) {
        (Some(first), Some(last)) => format!(
            " or a name {}-{}",
            first.to_uppercase(),
            last.to_uppercase()
        ),
        _ => String::new(),
    }
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for schedule in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0-23/2 * * *",
            "30 4 1,15 * ?",
            "0 3 * JAN-MAR mon-fri",
            "0 3 * * 0",
            "0 3 * * 6",
            "5 4 31 12 SUN",
            "0 1/2 * * *",
            "0 0 29 2 *",
            "0 0 31 2 1",
            "0 0 30 1-2 *",
            "0 0 31 */2 *",
            "0 0 */31 2 *",
            "@daily",
            "@midnight",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert_eq!(check_schedule(schedule), Ok(()), "{schedule}");
        }
    }

    #[test]
    fn refused() {
        let cases = [
            ("0 2 * *", "expected 5 fields"),
            ("0 0 2 * * *", "found 6"),
            ("60 2 * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("0 24 * * *", "hour field \"24\": 24 is out of range 0-23"),
            (
                "0 2 0 * *",
                "day of month field \"0\": 0 is out of range 1-31",
            ),
            ("0 2 32 * *", "out of range 1-31"),
            ("0 2 * 13 *", "month field \"13\": 13 is out of range 1-12"),
            (
                "0 2 * * 7",
                "day of week field \"7\": 7 is out of range 0-6 (Sunday is 0)",
            ),
            ("0 2 * * L", "L, W and # are not supported"),
            ("0 2 * * 5#3", "L, W and # are not supported"),
            ("0 2 * FOO *", "\"FOO\" is not a number or a name JAN-DEC"),
            ("*/0 * * * *", "step must be a positive number"),
            ("5-1 * * * *", "range start 5 is after its end 1"),
            ("1-2-3 * * * *", "too many hyphens"),
            ("*/2/3 * * * *", "too many slashes"),
            ("1,,2 * * * *", "empty list item"),
            ("-1 * * * *", "\"\" is not a number"),
            ("@every 1h", "unknown descriptor"),
            (
                "0 0 31 2 *",
                "never fires: no month in \"2\" has a day in \"31\"",
            ),
            ("0 0 30 2 ?", "never fires"),
            ("0 0 31 4,6,9,11 *", "never fires"),
            ("0 0 30-31 FEB *", "never fires"),
            ("0 0 31 4/5 *", "never fires"),
            ("@reboot", "unknown descriptor"),
        ];
        for (schedule, fragment) in cases {
            let error = check_schedule(schedule).expect_err(schedule);
            assert!(error.contains(fragment), "{schedule}: {error}");
        }
    }
}
