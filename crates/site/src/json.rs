//! Case-insensitive JSON access (ARM property names are case-insensitive).

use serde_json::Value;

/// The member `key` of an object, matching names case-insensitively (exact match preferred).
pub(crate) fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let m = v.as_object()?;
    m.get(key)
        .or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// Follows a dotted path of member names, case-insensitively.
pub(crate) fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| get_ci(cur, k))
}
