//! JSON helpers: comment-tolerant parsing with line:column errors, case-insensitive member lookup
//! (ARM treats names case-insensitively) and ARM type names for messages.

use crate::ArmError;
use serde_json::{Map, Value};

/// Parses a JSON document the way ARM reads templates: `//` and `/* */` comments are allowed.
/// Malformed input yields [`ArmError::Json`] with the 1-based line and column of the problem.
pub(crate) fn parse_document(text: &str, what: &'static str) -> Result<Value, ArmError> {
    let cleaned = strip_comments(text);
    serde_json::from_str::<Value>(&cleaned).map_err(|e| ArmError::Json {
        what,
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line X column Y"; the error already carries the numbers.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Blanks out comments outside string literals, keeping every newline and character offset so
/// JSON error positions still point at the original text.
fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_str = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            out.push_str("  ");
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(if chars[i] == '\n' { '\n' } else { ' ' });
                i += 1;
            }
            if i < chars.len() {
                out.push_str("  ");
                i += 2;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Looks a member up by name ignoring ASCII case, as ARM does for every name.
pub(crate) fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// ARM's name for a JSON value's type, used in messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Short rendering of a value for an error message (strings quoted, long values cut).
pub(crate) fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_ignored_and_positions_kept() {
        let v = parse_document("{\n // c\n \"a\": /* x */ 1\n}", "template").unwrap();
        assert_eq!(v["a"], 1);
        let e = parse_document("{\n // c\n \"a\": 1,,\n}", "template").unwrap_err();
        match e {
            ArmError::Json { line, column, .. } => assert_eq!((line, column), (3, 9)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        let v = parse_document(r#"{"u": "http://x/*y*/", "q": "a\"//b"}"#, "t").unwrap();
        assert_eq!(v["u"], "http://x/*y*/");
        assert_eq!(v["q"], "a\"//b");
    }

    #[test]
    fn case_insensitive_lookup() {
        let v: Value = serde_json::json!({"FooBar": 1});
        assert_eq!(
            get_ci(v.as_object().unwrap(), "foobar"),
            Some(&Value::from(1))
        );
    }
}
