//! Human durations such as `500ms`, `2s`, `10m`, `1h30m`.

use std::num::ParseIntError;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but blanks.
    #[error("empty duration (write e.g. \"2s\", \"500ms\", \"10m\")")]
    Empty,
    /// A part does not start with a number (`s`, `-1s`, `2s x`).
    #[error("{text:?} is not a duration (write e.g. \"2s\", \"500ms\", \"10m\")")]
    NotADuration { text: String },
    /// A number does not fit in 64 bits.
    #[error("{text:?}: number too large")]
    NumberTooLarge {
        text: String,
        #[source]
        source: ParseIntError,
    },
    /// A number without a unit (`5`).
    #[error("{text:?} has no unit (write e.g. \"{number}s\" or \"{number}ms\")")]
    NoUnit { text: String, number: u64 },
    /// A unit other than `ms`, `s`, `m`, `h` and `d`.
    #[error("{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)")]
    UnknownUnit { text: String, unit: String },
}

/// Parses a duration written as one or more `<number><unit>` pairs, with units
/// `ms`, `s`, `m`, `h` and `d`. Returns a message that names the problem.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotADuration { text: text.to_string() });
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|source| DurationError::NumberTooLarge { text: text.to_string(), source })?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => return Err(DurationError::NoUnit { text: text.to_string(), number: n }),
            other => return Err(DurationError::UnknownUnit { text: text.to_string(), unit: other.to_string() }),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 { format!("{ms}ms") } else { format!("{}s", ms / 1000) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration(" 1d ").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        let err = |text: &str| parse_duration(text).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("5").contains("no unit"));
        assert!(err("5x").contains("unknown unit"));
        assert!(err("s").contains("not a duration"));
        assert!(err("-1s").contains("not a duration"));
        assert_eq!(err("5"), r#""5" has no unit (write e.g. "5s" or "5ms")"#);
        let e = parse_duration("99999999999999999999999s").unwrap_err();
        assert!(std::error::Error::source(&e).is_some(), "the integer error is kept: {e:?}");
    }

    #[test]
    fn formats_round_trip() {
        for d in ["250ms", "3s", "0ms"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }
}
