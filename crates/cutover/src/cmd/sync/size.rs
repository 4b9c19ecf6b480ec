//! Sizes on the command line (`--part-size`, `--multipart-threshold`):
//! `123`, `64KiB`, `16MiB`, `1GiB`, `10MB`.

/// Why a size did not parse; each names the size as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// It does not start with a number.
    #[error("{input:?}: expected a size like 16MiB")]
    NotANumber {
        input: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// The unit is none of B, K/KiB, M/MiB, G/GiB, KB, MB, GB.
    #[error("{input:?}: unknown unit {unit:?} (use KiB, MiB, GiB)")]
    UnknownUnit { input: String, unit: String },
    /// More bytes than a `u64` holds.
    #[error("{input:?}: too large")]
    TooLarge { input: String },
}

/// Parses `123`, `64KiB`, `16MiB`, `1GiB`, `10MB` into bytes.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|source| SizeError::NotANumber { input: s.to_string(), source })?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => return Err(SizeError::UnknownUnit { input: s.to_string(), unit: u.to_string() }),
    };
    n.checked_mul(mult).ok_or_else(|| SizeError::TooLarge { input: s.to_string() })
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn a_bad_size_names_itself_and_the_problem() {
        let e = parse_size("ten").unwrap_err();
        assert!(matches!(e, SizeError::NotANumber { .. }));
        assert_eq!(e.to_string(), r#""ten": expected a size like 16MiB"#);
        assert!(e.source().is_some(), "the integer parse error is kept");
        let e = parse_size("5XB").unwrap_err();
        assert_eq!(e, SizeError::UnknownUnit { input: "5XB".into(), unit: "XB".into() });
        assert_eq!(e.to_string(), r#""5XB": unknown unit "XB" (use KiB, MiB, GiB)"#);
        let e = parse_size("99999999999GiB").unwrap_err();
        assert_eq!(e.to_string(), r#""99999999999GiB": too large"#);
    }
}
