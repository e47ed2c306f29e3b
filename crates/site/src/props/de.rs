//! A serde `Deserializer` that reads an evaluated ARM value the way ARM does: property names
//! match case-insensitively (the exact spelling preferred), `null` means absent, an absent
//! `properties` object reads as `{}`, `"true"` / `"false"` are bools and numeric strings are
//! integers. Its refusals are the words hybridnet's errors use (`expected a string, got a
//! number`); the path to the value is added by `serde_path_to_error`.

use std::fmt;
use std::sync::LazyLock;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Why a value could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PropError {
    /// A required property is absent; its name completes the path.
    #[error("is required")]
    Missing(&'static str),
    /// The value has the wrong type, spelling or format.
    #[error("{0}")]
    Invalid(String),
}

impl de::Error for PropError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PropError::Invalid(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        PropError::Missing(field)
    }
}

/// How a value's type is named in messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn refuse(problem: String) -> PropError {
    PropError::Invalid(problem)
}

/// What an absent `properties` object reads as.
static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| Value::Object(Map::new()));

/// An evaluated ARM value, read as the module documentation says.
pub(crate) struct ArmValue<'a>(pub &'a Value);

impl<'de> de::Deserializer<'de> for ArmValue<'de> {
    type Error = PropError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(a) => visitor.visit_seq(Elements(a.iter())),
            Value::Object(m) => visitor.visit_map(Members::new(
                m.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            )),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => visitor.visit_bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => visitor.visit_bool(false),
            other => Err(refuse(format!("expected a bool, got {other}"))),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        let parsed = match self.0 {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match parsed {
            Some(i) => visitor.visit_i64(i),
            None => Err(refuse(format!("expected an integer, got {}", self.0))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            other => Err(refuse(format!(
                "expected a string, got {}",
                type_name(other)
            ))),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        match self.0 {
            Value::Array(a) => visitor.visit_seq(Elements(a.iter())),
            other => Err(refuse(format!(
                "expected an array, got {}",
                type_name(other)
            ))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PropError> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(Members::new(declared(m, fields))),
            other if fields == ["id"] => Err(refuse(format!(
                "expected an object with an id, got {}",
                type_name(other)
            ))),
            other => Err(refuse(format!(
                "expected an object, got {}",
                type_name(other)
            ))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PropError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct map enum identifier ignored_any
    }
}

/// The members of `m` a struct with these fields reads, under the fields' own spelling: per
/// field the exactly spelled member, else the first one spelled alike ignoring case; `null`
/// members are left out, and an absent `properties` is an empty object.
fn declared<'a>(
    m: &'a Map<String, Value>,
    fields: &'static [&'static str],
) -> Vec<(&'static str, &'a Value)> {
    fields
        .iter()
        .filter_map(|&f| {
            let member = m.get(f).or_else(|| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(f))
                    .map(|(_, v)| v)
            });
            match member {
                Some(Value::Null) | None if f == "properties" => Some((f, &*EMPTY_OBJECT)),
                Some(Value::Null) | None => None,
                Some(v) => Some((f, v)),
            }
        })
        .collect()
}

struct Members<'de> {
    entries: std::vec::IntoIter<(&'de str, &'de Value)>,
    value: Option<&'de Value>,
}

impl<'de> Members<'de> {
    fn new(entries: Vec<(&'de str, &'de Value)>) -> Self {
        Members {
            entries: entries.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = PropError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PropError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, PropError> {
        let value = self.value.take().unwrap_or(&Value::Null);
        seed.deserialize(ArmValue(value))
    }
}

struct Elements<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for Elements<'de> {
    type Error = PropError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PropError> {
        self.0
            .next()
            .map(|v| seed.deserialize(ArmValue(v)))
            .transpose()
    }
}
