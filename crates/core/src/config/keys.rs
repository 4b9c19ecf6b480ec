//! Unknown keys, explained: the line they are on, and the known key at the
//! same level they are closest to ("did you mean").
//!
//! The known keys come from the serde types of [`RawConfig`] themselves: a
//! deserializer that feeds every type empty values records the fields of each
//! struct it is asked for, by path, so the list can never drift from the
//! types.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::raw::RawConfig;

type Known = BTreeMap<String, Vec<&'static str>>;

/// The fields of every struct of the configuration, by path without indexes
/// (`""`, `probe`, `backends`, `backends.credentials`, ...).
pub fn known_keys() -> Known {
    let out = RefCell::new(Known::new());
    let _ = RawConfig::deserialize(Walk { path: String::new(), out: &out });
    out.into_inner()
}

/// One step of a path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The steps of a path that serde_ignored reports.
pub fn segments(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Seq { parent, index } => {
            let mut s = segments(parent);
            s.push(Seg::Index(*index));
            s
        }
        P::Map { parent, key } => {
            let mut s = segments(parent);
            s.push(Seg::Key(key.clone()));
            s
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => segments(parent),
    }
}

/// The message for an unknown key at `segs` in `text`.
pub fn explain(text: &str, segs: &[Seg], known: &Known) -> String {
    let Some(Seg::Key(key)) = segs.last() else { return "unknown key".into() };
    let parent: Vec<&str> = segs[..segs.len() - 1]
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    let mut msg = String::from("unknown key");
    if let Some(line) = line_of(text, segs) {
        msg += &format!(" at line {line}");
    }
    let fields = known.get(&parent.join(".")).map(Vec::as_slice).unwrap_or(&[]);
    match closest(key, fields) {
        Some(k) => msg += &format!(" (did you mean \"{k}\"?)"),
        None if !fields.is_empty() => msg += &format!(" (known keys here: {})", fields.join(", ")),
        None => msg += " (check the spelling; see examples/cutover.toml)",
    }
    msg
}

/// The known key closest to `key`, if it is close enough to be a typo.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known.iter().map(|k| (distance(key, k), *k)).filter(|(d, _)| *d <= limit).min().map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The line (1-based) of the key at `segs`, from the parsed document's spans.
pub fn line_of(text: &str, segs: &[Seg]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    let mut span = None;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                let t = match value {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    Some(_) => return None,
                };
                let (key, v) = t.iter().find(|(name, _)| name.get_ref() == k)?;
                span = Some(key.span());
                table = t;
                value = Some(v.get_ref());
            }
            Seg::Index(i) => match value {
                Some(DeValue::Array(a)) => value = Some(a.get(*i)?.get_ref()),
                _ => return None,
            },
        }
    }
    let start = span?.start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}

/// A deserializer that gives every type empty values and records the fields
/// of every struct.
struct Walk<'a> {
    path: String,
    out: &'a RefCell<Known>,
}

type Error = de::value::Error;

impl<'de> de::Deserializer<'de> for Walk<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(One(Some(self)))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        v.visit_seq(One(Some(self)))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, v: V) -> Result<V::Value, Error> {
        v.visit_seq(One(Some(self)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_map(Fields { fields: &[], next: 0, walk: self })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.out.borrow_mut().entry(self.path.clone()).or_default().extend(fields.iter().copied());
        v.visit_map(Fields { fields, next: 0, walk: self })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom("enums are not walked"))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
}

/// A sequence of one element, so the element type is walked.
struct One<'a>(Option<Walk<'a>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|w| seed.deserialize(w)).transpose()
    }
}

/// A struct's fields, each with an empty value walked in turn.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    walk: Walk<'a>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.fields.get(self.next) {
            Some(f) => seed.deserialize((*f).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.fields[self.next];
        self.next += 1;
        let path = if self.walk.path.is_empty() { field.to_string() } else { format!("{}.{field}", self.walk.path) };
        seed.deserialize(Walk { path, out: self.walk.out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_keys_come_from_the_types() {
        let k = known_keys();
        assert!(k[""].contains(&"backends") && k[""].contains(&"probe"), "{k:?}");
        assert!(k["probe"].contains(&"timeout"), "{k:?}");
        assert!(k.contains_key("backends"), "{k:?}");
    }

    #[test]
    fn a_typo_gets_the_closest_key_and_its_line() {
        let text = "[probe]\ninterval = \"1s\"\ntimout = \"2s\"\n";
        let segs = vec![Seg::Key("probe".into()), Seg::Key("timout".into())];
        let msg = explain(text, &segs, &known_keys());
        assert_eq!(msg, "unknown key at line 3 (did you mean \"timeout\"?)");
        assert_eq!(closest("zzzzzzzz", &["timeout"]), None);
    }
}
