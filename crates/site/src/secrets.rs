//! Secure parameter values (securestring, secureObject) never leave a site: they are masked in
//! outputs and error messages.

use serde_json::Value;

/// Every string inside a value (the parts of a secure parameter that must not be shown).
pub(crate) fn string_leaves(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(string_leaves).collect(),
        Value::Object(m) => m.values().flat_map(string_leaves).collect(),
        _ => Vec::new(),
    }
}

/// Secrets shorter than this are masked only where an output is exactly the secret: a one-letter
/// key would otherwise mask every id that happens to contain that letter.
pub(crate) const MIN_EMBEDDED_SECRET_LEN: usize = 6;

/// A message with every secret of at least [`MIN_EMBEDDED_SECRET_LEN`] characters (or the whole
/// message, if it is a shorter secret) replaced by `***`.
pub(crate) fn mask_text(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in sorted {
        if out == *s {
            return "***".into();
        }
        if s.len() >= MIN_EMBEDDED_SECRET_LEN {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Replaces any output string that is, or embeds, a secure parameter's value with `***`: Azure
/// returns such outputs, but hybridnet never shows a secret.
pub(crate) fn mask_secrets(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s)
            if secrets.iter().any(|x| {
                s == x || (x.len() >= MIN_EMBEDDED_SECRET_LEN && s.contains(x.as_str()))
            }) =>
        {
            *s = "***".into()
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_secrets(x, secrets)),
        Value::Object(m) => m.values_mut().for_each(|x| mask_secrets(x, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_mask_secrets_but_not_short_substrings() {
        let secrets = vec!["k".to_string(), "Password#1234".to_string()];
        let mut v = json!({"id": "/subscriptions/x/connections/k2", "key": "k", "pw": "user:Password#1234", "n": ["Password#1234"]});
        for x in v.as_object_mut().unwrap().values_mut() {
            mask_secrets(x, &secrets);
        }
        assert_eq!(
            v,
            json!({"id": "/subscriptions/x/connections/k2", "key": "***", "pw": "***", "n": ["***"]})
        );
    }
}
