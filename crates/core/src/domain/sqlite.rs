//! SQLite columns of the closed sets: stored as their TEXT form.

use std::str::FromStr;

use rusqlite::types::{FromSqlError, FromSqlResult, ValueRef};

use super::UnknownValue;

/// Parses a TEXT column into a closed set; another type or an unknown word
/// is a conversion error that names the value.
pub(super) fn parse<T: FromStr<Err = UnknownValue>>(value: ValueRef<'_>) -> FromSqlResult<T> {
    let text = value.as_str()?;
    T::from_str(text).map_err(|e| FromSqlError::Other(Box::new(e)))
}
