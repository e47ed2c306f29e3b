//! Keeps securestring / secureObject values out of errors and Debug output.

use serde_json::Value;

/// Text shown in place of a secure value.
pub(crate) const MASK: &str = "***";

/// Replaces every occurrence of any secret in `s` with [`MASK`] (longest secrets first, so a
/// secret that contains another is masked whole).
pub(crate) fn redact_str(s: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|x| !x.is_empty()).collect();
    sorted.sort_by_key(|x| std::cmp::Reverse(x.len()));
    let mut out = s.to_string();
    for secret in sorted {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Returns a copy of `v` in which every string containing a secret has the secret masked.
pub(crate) fn redact_value(v: &Value, secrets: &[String]) -> Value {
    match v {
        Value::String(s) => Value::String(redact_str(s, secrets)),
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_value(x, secrets)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), redact_value(x, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Collects the string leaves of a secure value: these are what must never be shown.
pub(crate) fn collect_secrets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_secrets(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_secrets(x, out)),
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_longest_first_and_inside_values() {
        let secrets = vec!["abc".to_string(), "abc123".to_string()];
        assert_eq!(
            redact_str("key abc123 and abc", &secrets),
            "key *** and ***"
        );
        let v = redact_value(&json!({"a": ["xabc123y", 5]}), &secrets);
        assert_eq!(v, json!({"a": ["x***y", 5]}));
    }
}
