//! Typed reads out of an evaluated resource body, with errors naming the property path.

use super::*;

/// Reads typed values out of a resource body, with errors naming the property path.
pub(super) struct Body<'b> {
    pub(super) body: &'b Value,
    pub(super) loc: Location,
}

impl<'b> Body<'b> {
    pub(super) fn at(&self, path: &str) -> Location {
        if self.loc.property.is_empty() {
            self.loc.at(path)
        } else {
            self.loc.at(format!("{}.{path}", self.loc.property))
        }
    }

    pub(super) fn value(&self, path: &str) -> Option<&'b Value> {
        let parts: Vec<&str> = path.split('.').collect();
        get_path(self.body, &parts)
    }

    pub(super) fn string(&self, path: &str) -> Result<Option<&'b str>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    pub(super) fn required_string(&self, path: &str) -> Result<&'b str, SiteError> {
        self.string(path)?
            .ok_or_else(|| invalid(self.at(path), "is required"))
    }

    pub(super) fn boolean(&self, path: &str) -> Result<Option<bool>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected a bool, got {other}"),
            )),
        }
    }

    pub(super) fn integer(&self, path: &str) -> Result<Option<i64>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an integer, got {other}"),
            )),
        }
    }

    pub(super) fn array(&self, path: &str) -> Result<&'b [Value], SiteError> {
        match self.value(path) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an array, got {}", type_name(other)),
            )),
        }
    }

    /// `{"id": "..."}` at `path`; returns the id.
    pub(super) fn id_ref(&self, path: &str) -> Result<Option<&'b str>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Object(_)) => self.string(&format!("{path}.id")).and_then(|id| {
                id.map(Some)
                    .ok_or_else(|| invalid(self.at(&format!("{path}.id")), "is required"))
            }),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an object with an id, got {}", type_name(other)),
            )),
        }
    }

    pub(super) fn sub(&self, v: &'b Value, prefix: &str) -> Body<'b> {
        let property = if self.loc.property.is_empty() {
            prefix.to_string()
        } else {
            format!("{}.{prefix}", self.loc.property)
        };
        Body {
            body: v,
            loc: self.loc.at(property),
        }
    }
}

pub(super) fn parse_prefix(s: &str, at: Location) -> Result<Ipv4Net, SiteError> {
    if s.contains(':') {
        return Err(SiteError::UnsupportedByKind {
            at,
            problem: format!("{s} is an IPv6 prefix; hybridnet sites carry IPv4 only"),
        });
    }
    let net: Ipv4Net = s.parse().map_err(|_| {
        invalid(
            at.clone(),
            format!("{s:?} is not an IPv4 prefix (a.b.c.d/n)"),
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            at,
            format!("{s} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

pub(super) fn parse_addr(s: &str, at: Location) -> Result<Ipv4Addr, SiteError> {
    s.parse()
        .map_err(|_| invalid(at, format!("{s:?} is not an IPv4 address")))
}
