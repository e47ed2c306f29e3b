//! ARM resource properties as typed structs. Each resource type's module declares the
//! properties hybridnet reads; [`parse`] reads them from an evaluated resource body with the
//! ARM reading rules of [`de`], and a failure names the template path of the offending property
//! (`resources[3] (…).properties.subnets[1].properties.addressPrefix: …`). What the values mean
//! for the site (references, addresses, the kind's rules) is checked afterwards, in `plan`.

pub(crate) mod connection;
mod de;
pub(crate) mod gateway;
pub(crate) mod local_gateway;
pub(crate) mod nic;
pub(crate) mod nsg;
pub(crate) mod public_ip;
pub(crate) mod vm;
pub(crate) mod vnet;

use std::fmt::Write;

use ipnet::Ipv4Net;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Location, SiteError};
use de::{ArmValue, PropError};

pub(crate) use de::type_name;

/// Reads a resource body (as the template evaluated it) into `T`; errors name the property.
pub(crate) fn parse<T: DeserializeOwned>(body: &Value, loc: &Location) -> Result<T, SiteError> {
    serde_path_to_error::deserialize(ArmValue(body)).map_err(|e| {
        let mut path = String::new();
        for segment in e.path() {
            let name = match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    let _ = write!(path, "[{index}]");
                    continue;
                }
                serde_path_to_error::Segment::Map { key } => key.as_str(),
                serde_path_to_error::Segment::Enum { variant } => variant.as_str(),
                serde_path_to_error::Segment::Unknown => "?",
            };
            push_member(&mut path, name);
        }
        let problem = e.into_inner();
        if let PropError::Missing(field) = problem {
            push_member(&mut path, field);
        }
        SiteError::InvalidProperty {
            at: loc.at(path),
            problem: problem.to_string(),
        }
    })
}

fn push_member(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

/// `{"id": "…"}`: a reference to another resource by its id.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdRef {
    /// The resource id.
    pub id: String,
}

/// An address prefix as written: IPv4 (without host bits), or IPv6, which sites do not carry
/// and the planner refuses with the path.
#[derive(Debug, Clone)]
pub(crate) enum Prefix {
    /// An IPv4 prefix.
    V4(Ipv4Net),
    /// Anything with a `:`, as given.
    V6(String),
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.contains(':') {
            return Ok(Prefix::V6(s));
        }
        let net: Ipv4Net = s
            .parse()
            .map_err(|_| D::Error::custom(format!("{s:?} is not an IPv4 prefix (a.b.c.d/n)")))?;
        if net.trunc() != net {
            return Err(D::Error::custom(format!(
                "{s} has host bits set; did you mean {}?",
                net.trunc()
            )));
        }
        Ok(Prefix::V4(net))
    }
}

/// An ARM enumeration read from its (case-insensitive) spelling, with the refusal for any
/// other value.
pub(crate) trait Spelling: Sized {
    /// The value spelled `s`, if ARM knows it.
    fn from_arm(s: &str) -> Option<Self>;
    /// Why `s` is refused.
    fn unknown(s: &str) -> String;
}

/// `deserialize_with` for an optional [`Spelling`] (use with `#[serde(default)]`).
pub(crate) fn spelled<'de, D: Deserializer<'de>, T: Spelling>(d: D) -> Result<Option<T>, D::Error> {
    spelled_required(d).map(Some)
}

/// `deserialize_with` for a required [`Spelling`].
pub(crate) fn spelled_required<'de, D: Deserializer<'de>, T: Spelling>(
    d: D,
) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    T::from_arm(&s).ok_or_else(|| D::Error::custom(T::unknown(&s)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        properties: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
        enabled: Option<bool>,
        count: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        address_prefix: Prefix,
        subnet: Option<IdRef>,
    }

    fn loc() -> Location {
        Location {
            resource_path: "resources[0]".into(),
            resource_type: "T".into(),
            name: "n".into(),
            property: String::new(),
        }
    }

    fn err(v: serde_json::Value) -> String {
        parse::<Outer>(&v, &loc()).unwrap_err().to_string()
    }

    #[test]
    fn names_are_case_insensitive_and_nulls_absent() {
        let o: Outer = parse(
            &json!({"Properties": {"NAME": "x", "name2": 1, "enabled": "TRUE", "count": " 7 ", "items": [{"addressprefix": "10.0.0.0/8", "subnet": null}]}}),
            &loc(),
        )
        .unwrap();
        assert_eq!(o.properties.name, "x");
        assert_eq!(o.properties.enabled, Some(true));
        assert_eq!(o.properties.count, Some(7));
        assert!(o.properties.items[0].subnet.is_none());
        assert!(matches!(
            o.properties.items[0].address_prefix,
            Prefix::V4(_)
        ));
    }

    #[test]
    fn errors_name_the_path() {
        assert_eq!(
            err(json!({})),
            "resources[0] (T 'n').properties.name: is required"
        );
        assert_eq!(
            err(json!({"properties": {"name": 3}})),
            "resources[0] (T 'n').properties.name: expected a string, got a number"
        );
        assert_eq!(
            err(json!({"properties": {"name": "x", "items": [{"addressPrefix": "10.0.0.0/8"}, {"addressPrefix": "10.0.0.1/8"}]}})),
            "resources[0] (T 'n').properties.items[1].addressPrefix: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            err(json!({"properties": {"name": "x", "items": [{"addressPrefix": "10.0.0.0/8", "subnet": "s"}]}})),
            "resources[0] (T 'n').properties.items[0].subnet: expected an object with an id, got a string"
        );
        assert_eq!(
            err(
                json!({"properties": {"name": "x", "items": [{"addressPrefix": "10.0.0.0/8", "subnet": {}}]}})
            ),
            "resources[0] (T 'n').properties.items[0].subnet.id: is required"
        );
        assert_eq!(
            err(json!({"properties": {"name": "x", "enabled": "yes"}})),
            "resources[0] (T 'n').properties.enabled: expected a bool, got \"yes\""
        );
        assert_eq!(
            err(json!({"properties": {"name": "x", "count": 1.5}})),
            "resources[0] (T 'n').properties.count: expected an integer, got 1.5"
        );
        assert_eq!(
            err(json!({"properties": {"name": "x", "items": {}}})),
            "resources[0] (T 'n').properties.items: expected an array, got an object"
        );
    }
}
