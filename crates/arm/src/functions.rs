//! The template functions that depend only on their arguments (string, array, object, logical,
//! numeric, comparison, conversion, encoding and hashing functions). Functions that need the
//! deployment (parameters, variables, resourceId, reference, copyIndex, ...) live in `eval`.

use crate::hash;
use crate::json::type_name;
use base64::Engine as _;
use serde_json::{Map, Value};

type R = Result<Value, String>;

/// Calls the pure function `name` (lower case). `None` if no such pure function exists.
pub(crate) fn call_pure(name: &str, a: Vec<Value>) -> Option<R> {
    Some(match name {
        "concat" => concat(a),
        "format" => format_fn(a),
        "tolower" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(s(&a, 0)?.to_lowercase()))),
        "toupper" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(s(&a, 0)?.to_uppercase()))),
        "split" => split(a),
        "first" => first_last(a, true),
        "last" => first_last(a, false),
        "equals" => arity(&a, 2, 2).map(|_| Value::Bool(a[0] == a[1])),
        "not" => arity(&a, 1, 1).and_then(|_| Ok(Value::Bool(!b(&a, 0)?))),
        "and" => logic(a, true),
        "or" => logic(a, false),
        "true" => arity(&a, 0, 0).map(|_| Value::Bool(true)),
        "false" => arity(&a, 0, 0).map(|_| Value::Bool(false)),
        "null" => arity(&a, 0, 0).map(|_| Value::Null),
        "json" => json_fn(a),
        "uniquestring" => joined_strings(&a).map(|j| Value::String(hash::unique_string(&j))),
        "guid" => joined_strings(&a).map(|j| Value::String(hash::guid(&j))),
        "length" => length(a),
        "empty" => empty(a),
        "contains" => contains(a),
        "union" => union(a),
        "intersection" => intersection(a),
        "createarray" => Ok(Value::Array(a)),
        "array" => arity(&a, 1, 1).map(|_| match a.into_iter().next() {
            Some(Value::Array(x)) => Value::Array(x),
            Some(other) => Value::Array(vec![other]),
            None => Value::Array(vec![]),
        }),
        "createobject" => create_object(a),
        "items" => items(a),
        "string" => arity(&a, 1, 1).map(|_| Value::String(to_string(&a[0]))),
        "int" => int_fn(a),
        "bool" => bool_fn(a),
        "add" => arith(a, |x, y| {
            x.checked_add(y)
                .ok_or("the result overflows a 64-bit integer".into())
        }),
        "sub" => arith(a, |x, y| {
            x.checked_sub(y)
                .ok_or("the result overflows a 64-bit integer".into())
        }),
        "mul" => arith(a, |x, y| {
            x.checked_mul(y)
                .ok_or("the result overflows a 64-bit integer".into())
        }),
        "div" => arith(a, |x, y| {
            if y == 0 {
                Err("division by zero".into())
            } else {
                Ok(x.wrapping_div(y))
            }
        }),
        "mod" => arith(a, |x, y| {
            if y == 0 {
                Err("division by zero".into())
            } else {
                Ok(x.wrapping_rem(y))
            }
        }),
        "min" => min_max(a, true),
        "max" => min_max(a, false),
        "greater" => compare(a, |o| o == std::cmp::Ordering::Greater),
        "greaterorequals" => compare(a, |o| o != std::cmp::Ordering::Less),
        "less" => compare(a, |o| o == std::cmp::Ordering::Less),
        "lessorequals" => compare(a, |o| o != std::cmp::Ordering::Greater),
        "coalesce" => arity(&a, 1, usize::MAX)
            .map(|_| a.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null)),
        "substring" => substring(a),
        "replace" => replace(a),
        "trim" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(s(&a, 0)?.trim().to_string()))),
        "startswith" => arity(&a, 2, 2).and_then(|_| {
            Ok(Value::Bool(
                s(&a, 0)?
                    .to_lowercase()
                    .starts_with(&s(&a, 1)?.to_lowercase()),
            ))
        }),
        "endswith" => arity(&a, 2, 2).and_then(|_| {
            Ok(Value::Bool(
                s(&a, 0)?
                    .to_lowercase()
                    .ends_with(&s(&a, 1)?.to_lowercase()),
            ))
        }),
        "indexof" => index_of(a, false),
        "lastindexof" => index_of(a, true),
        "take" => take_skip(a, true),
        "skip" => take_skip(a, false),
        "range" => range(a),
        "padleft" => pad_left(a),
        "base64" => arity(&a, 1, 1).and_then(|_| {
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s(&a, 0)?.as_bytes()),
            ))
        }),
        "base64tostring" => base64_to_string(a),
        "uri" => uri(a),
        "uricomponent" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(uri_escape(s(&a, 0)?)))),
        "uricomponenttostring" => {
            arity(&a, 1, 1).and_then(|_| uri_unescape(s(&a, 0)?).map(Value::String))
        }
        "datauri" => arity(&a, 1, 1).map(|_| {
            let text = to_string(&a[0]);
            Value::String(format!(
                "data:text/plain;charset=utf8;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
            ))
        }),
        "datauritostring" => data_uri_to_string(a),
        "join" => join(a),
        "flatten" => flatten(a),
        "objectkeys" => arity(&a, 1, 1).and_then(|_| match &a[0] {
            Value::Object(m) => Ok(Value::Array(
                m.keys().map(|k| Value::String(k.clone())).collect(),
            )),
            other => Err(format!(
                "argument 1 must be an object, got {}",
                type_name(other)
            )),
        }),
        "tryget" => try_get(a),
        "extensionresourceid" => extension_resource_id(a),
        "parsecidr" => arity(&a, 1, 1).and_then(|_| crate::cidr::parse_cidr(s(&a, 0)?)),
        "cidrsubnet" => {
            arity(&a, 3, 3).and_then(|_| crate::cidr::cidr_subnet(s(&a, 0)?, n(&a, 1)?, n(&a, 2)?))
        }
        "cidrhost" => arity(&a, 2, 2).and_then(|_| crate::cidr::cidr_host(s(&a, 0)?, n(&a, 1)?)),
        _ => return None,
    })
}

fn arity(a: &[Value], min: usize, max: usize) -> Result<(), String> {
    if a.len() < min || a.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        let plural = if min == 1 && max == 1 {
            "argument"
        } else {
            "arguments"
        };
        return Err(format!("expects {want} {plural}, got {}", a.len()));
    }
    Ok(())
}

fn s(a: &[Value], i: usize) -> Result<&str, String> {
    match &a[i] {
        Value::String(x) => Ok(x),
        other => Err(format!(
            "argument {} must be a string, got {}",
            i + 1,
            type_name(other)
        )),
    }
}

fn n(a: &[Value], i: usize) -> Result<i64, String> {
    match &a[i] {
        Value::Number(x) if x.is_i64() => Ok(x.as_i64().unwrap_or_default()),
        other => Err(format!(
            "argument {} must be an int, got {}",
            i + 1,
            type_name(other)
        )),
    }
}

fn b(a: &[Value], i: usize) -> Result<bool, String> {
    match &a[i] {
        Value::Bool(x) => Ok(*x),
        other => Err(format!(
            "argument {} must be a bool, got {}",
            i + 1,
            type_name(other)
        )),
    }
}

/// ARM's `string()` conversion: strings as is, bools as .NET writes them (`True`/`False`),
/// arrays and objects as compact JSON, null as the empty string.
pub(crate) fn to_string(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        Value::Number(x) => x.to_string(),
        other => other.to_string(),
    }
}

fn concat(a: Vec<Value>) -> R {
    if a.is_empty() {
        return Ok(Value::String(String::new()));
    }
    if a[0].is_array() {
        let mut out = Vec::new();
        for (i, v) in a.into_iter().enumerate() {
            match v {
                Value::Array(x) => out.extend(x),
                Value::Null => {}
                other => {
                    return Err(format!(
                        "argument {} must be an array like the first one, got {}",
                        i + 1,
                        type_name(&other)
                    ))
                }
            }
        }
        return Ok(Value::Array(out));
    }
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {
                out.push_str(&to_string(v))
            }
            other => {
                return Err(format!(
                    "argument {} must be a string (or int) like the first one, got {}",
                    i + 1,
                    type_name(other)
                ))
            }
        }
    }
    Ok(Value::String(out))
}

/// .NET composite formatting as `format()` uses it: `{index[,alignment][:spec]}`, `{{`/`}}`.
/// Specs supported for ints: D<n>, N<n>, X<n>/x<n>, and custom zero patterns like `000`.
fn format_fn(a: Vec<Value>) -> R {
    arity(&a, 1, usize::MAX)?;
    let fmt = s(&a, 0)?.to_string();
    let args = &a[1..];
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                out.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                out.push('}');
                i += 2;
            }
            '}' => {
                return Err(format!(
                    "the format string has an unmatched '}}' at character {}",
                    i + 1
                ))
            }
            '{' => {
                let close = chars[i..].iter().position(|&c| c == '}').ok_or(format!(
                    "the format string has an unclosed '{{' at character {}",
                    i + 1
                ))?;
                let item: String = chars[i + 1..i + close].iter().collect();
                let (head, spec) = match item.split_once(':') {
                    Some((h, sp)) => (h, Some(sp)),
                    None => (item.as_str(), None),
                };
                let (idx, align) = match head.split_once(',') {
                    Some((x, al)) => (x, Some(al)),
                    None => (head, None),
                };
                let idx: usize = idx
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{{{item}}}' is not a valid format item"))?;
                let v = args.get(idx).ok_or(format!(
                    "format item {{{idx}}} refers to argument {} but only {} value(s) were given",
                    idx + 2,
                    args.len()
                ))?;
                let mut text = format_one(v, spec)?;
                if let Some(al) = align {
                    let w: i64 = al
                        .trim()
                        .parse()
                        .ok()
                        .filter(|w: &i64| w.unsigned_abs() <= 10_000)
                        .ok_or(format!(
                            "'{al}' is not a valid alignment (at most 10000 either way)"
                        ))?;
                    let len = text.chars().count() as i64;
                    if w.abs() > len {
                        let pad = " ".repeat((w.abs() - len) as usize);
                        text = if w > 0 { pad + &text } else { text + &pad };
                    }
                }
                out.push_str(&text);
                i += close + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(Value::String(out))
}

fn format_one(v: &Value, spec: Option<&str>) -> Result<String, String> {
    let Some(spec) = spec.filter(|x| !x.is_empty()) else {
        return Ok(to_string(v));
    };
    let Some(num) = v.as_i64() else {
        return Err(format!(
            "format spec '{spec}' needs an int, got {}",
            type_name(v)
        ));
    };
    let kind = spec.chars().next().unwrap_or('D');
    let digits: Option<usize> = spec[kind.len_utf8()..].parse().ok();
    let prec = if spec.len() > 1 { digits } else { None };
    if prec.is_some_and(|p| p > 1000) {
        return Err(format!(
            "format spec '{spec}' asks for more than 1000 digits"
        ));
    }
    match kind {
        'D' | 'd' => {
            let body = num.unsigned_abs().to_string();
            let body = format!("{body:0>width$}", width = prec.unwrap_or(0));
            Ok(if num < 0 { format!("-{body}") } else { body })
        }
        'N' | 'n' => {
            let digits = num.unsigned_abs().to_string();
            let mut grouped = String::new();
            for (k, c) in digits.chars().enumerate() {
                if k > 0 && (digits.len() - k) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            let p = prec.unwrap_or(2);
            if p > 0 {
                grouped.push('.');
                grouped.push_str(&"0".repeat(p));
            }
            Ok(if num < 0 {
                format!("-{grouped}")
            } else {
                grouped
            })
        }
        'X' | 'x' => {
            let h = if kind == 'X' {
                format!("{num:X}")
            } else {
                format!("{num:x}")
            };
            Ok(format!("{h:0>width$}", width = prec.unwrap_or(0)))
        }
        _ if spec.chars().all(|c| c == '0' || c == '#') => {
            let zeros = spec.chars().filter(|&c| c == '0').count();
            let body = format!("{:0>width$}", num.unsigned_abs(), width = zeros);
            Ok(if num < 0 { format!("-{body}") } else { body })
        }
        _ => Err(format!("unsupported format spec '{spec}'")),
    }
}

fn split(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let input = s(&a, 0)?;
    let delims: Vec<String> = match &a[1] {
        Value::String(d) => vec![d.clone()],
        Value::Array(ds) => ds
            .iter()
            .map(|d| {
                d.as_str()
                    .map(str::to_string)
                    .ok_or("argument 2 must be a string or an array of strings".to_string())
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "argument 2 must be a string or an array of strings, got {}",
                type_name(other)
            ))
        }
    };
    let delims: Vec<&String> = delims.iter().filter(|d| !d.is_empty()).collect();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut rest = input;
    'outer: while !rest.is_empty() {
        for d in &delims {
            if let Some(after) = rest.strip_prefix(d.as_str()) {
                parts.push(Value::String(std::mem::take(&mut cur)));
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        cur.push(c);
        rest = &rest[c.len_utf8()..];
    }
    parts.push(Value::String(cur));
    Ok(Value::Array(parts))
}

fn first_last(a: Vec<Value>, first: bool) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::Array(x) => Ok((if first { x.first() } else { x.last() })
            .cloned()
            .unwrap_or(Value::Null)),
        Value::String(x) => Ok(Value::String(
            (if first {
                x.chars().next()
            } else {
                x.chars().last()
            })
            .map(String::from)
            .unwrap_or_default(),
        )),
        other => Err(format!(
            "argument 1 must be an array or a string, got {}",
            type_name(other)
        )),
    }
}

fn logic(a: Vec<Value>, all: bool) -> R {
    arity(&a, 2, usize::MAX)?;
    let mut acc = all;
    for i in 0..a.len() {
        let v = b(&a, i)?;
        acc = if all { acc && v } else { acc || v };
    }
    Ok(Value::Bool(acc))
}

fn json_fn(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let text = s(&a, 0)?;
    serde_json::from_str::<Value>(text).map_err(|e| format!("argument 1 is not valid JSON: {e}"))
}

fn joined_strings(a: &[Value]) -> Result<String, String> {
    arity(a, 1, usize::MAX)?;
    let mut parts = Vec::new();
    for i in 0..a.len() {
        parts.push(s(a, i)?);
    }
    Ok(parts.join("-"))
}

fn length(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::String(x) => Ok(Value::from(x.encode_utf16().count() as i64)),
        Value::Array(x) => Ok(Value::from(x.len() as i64)),
        Value::Object(x) => Ok(Value::from(x.len() as i64)),
        other => Err(format!(
            "argument 1 must be a string, array or object, got {}",
            type_name(other)
        )),
    }
}

fn empty(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::Null => Ok(Value::Bool(true)),
        Value::String(x) => Ok(Value::Bool(x.is_empty())),
        Value::Array(x) => Ok(Value::Bool(x.is_empty())),
        Value::Object(x) => Ok(Value::Bool(x.is_empty())),
        other => Err(format!(
            "argument 1 must be a string, array, object or null, got {}",
            type_name(other)
        )),
    }
}

fn contains(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    match &a[0] {
        Value::String(x) => match &a[1] {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                Ok(Value::Bool(x.contains(&to_string(&a[1]))))
            }
            other => Err(format!(
                "argument 2 must be a string when searching a string, got {}",
                type_name(other)
            )),
        },
        Value::Array(x) => Ok(Value::Bool(x.contains(&a[1]))),
        Value::Object(m) => match &a[1] {
            Value::String(k) => Ok(Value::Bool(m.keys().any(|key| key.eq_ignore_ascii_case(k)))),
            other => Err(format!(
                "argument 2 must be a string (a property name), got {}",
                type_name(other)
            )),
        },
        other => Err(format!(
            "argument 1 must be a string, array or object, got {}",
            type_name(other)
        )),
    }
}

fn deep_merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        let existing = into.keys().find(|x| x.eq_ignore_ascii_case(k)).cloned();
        match (existing.as_ref().and_then(|e| into.get_mut(e)), v) {
            (Some(Value::Object(dst)), Value::Object(src)) => deep_merge(dst, src),
            _ => {
                if let Some(e) = existing {
                    into.remove(&e);
                }
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn union(a: Vec<Value>) -> R {
    arity(&a, 1, usize::MAX)?;
    match &a[0] {
        Value::Object(_) => {
            let mut out = Map::new();
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::Object(m) => deep_merge(&mut out, m),
                    Value::Null => {}
                    other => {
                        return Err(format!(
                            "argument {} must be an object like the first one, got {}",
                            i + 1,
                            type_name(other)
                        ))
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(_) => {
            let mut out: Vec<Value> = Vec::new();
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::Array(x) => {
                        for item in x {
                            if !out.contains(item) {
                                out.push(item.clone());
                            }
                        }
                    }
                    Value::Null => {}
                    other => {
                        return Err(format!(
                            "argument {} must be an array like the first one, got {}",
                            i + 1,
                            type_name(other)
                        ))
                    }
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(format!(
            "argument 1 must be an array or an object, got {}",
            type_name(other)
        )),
    }
}

fn intersection(a: Vec<Value>) -> R {
    arity(&a, 2, usize::MAX)?;
    match &a[0] {
        Value::Object(first) => {
            let mut others = Vec::new();
            for (i, v) in a.iter().enumerate().skip(1) {
                match v {
                    Value::Object(m) => others.push(m),
                    other => {
                        return Err(format!(
                            "argument {} must be an object like the first one, got {}",
                            i + 1,
                            type_name(other)
                        ))
                    }
                }
            }
            let mut out = Map::new();
            for (k, v) in first {
                if others.iter().all(|m| m.get(k) == Some(v)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(first) => {
            let mut others = Vec::new();
            for (i, v) in a.iter().enumerate().skip(1) {
                match v {
                    Value::Array(x) => others.push(x),
                    other => {
                        return Err(format!(
                            "argument {} must be an array like the first one, got {}",
                            i + 1,
                            type_name(other)
                        ))
                    }
                }
            }
            let mut out: Vec<Value> = Vec::new();
            for item in first {
                if others.iter().all(|o| o.contains(item)) && !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(format!(
            "argument 1 must be an array or an object, got {}",
            type_name(other)
        )),
    }
}

fn create_object(a: Vec<Value>) -> R {
    if !a.len().is_multiple_of(2) {
        return Err(format!(
            "expects key/value pairs (an even number of arguments), got {}",
            a.len()
        ));
    }
    let mut out = Map::new();
    for pair in a.chunks(2) {
        match &pair[0] {
            Value::String(k) => {
                out.insert(k.clone(), pair[1].clone());
            }
            other => return Err(format!("keys must be strings, got {}", type_name(other))),
        }
    }
    Ok(Value::Object(out))
}

fn items(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let Value::Object(m) = &a[0] else {
        return Err(format!(
            "argument 1 must be an object, got {}",
            type_name(&a[0])
        ));
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by_key(|k| k.to_ascii_lowercase());
    Ok(Value::Array(
        keys.into_iter()
            .map(|k| serde_json::json!({"key": k, "value": m[k]}))
            .collect(),
    ))
}

fn int_fn(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::Number(x) if x.is_i64() => Ok(a[0].clone()),
        Value::Number(x) => x
            .as_f64()
            .map(|f| Value::from(f.trunc() as i64))
            .ok_or("not a number".into()),
        Value::String(x) => x
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{x}' cannot be converted to an int")),
        other => Err(format!(
            "argument 1 must be a string or an int, got {}",
            type_name(other)
        )),
    }
}

fn bool_fn(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::Bool(_) => Ok(a[0].clone()),
        Value::String(x) if x.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(x) if x.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        Value::String(x) => Err(format!(
            "'{x}' cannot be converted to a bool (expected 'true' or 'false')"
        )),
        Value::Number(x) if x.is_i64() => Ok(Value::Bool(x.as_i64() != Some(0))),
        other => Err(format!(
            "argument 1 must be a string, int or bool, got {}",
            type_name(other)
        )),
    }
}

fn arith(a: Vec<Value>, f: impl Fn(i64, i64) -> Result<i64, String>) -> R {
    arity(&a, 2, 2)?;
    f(n(&a, 0)?, n(&a, 1)?).map(Value::from)
}

fn min_max(a: Vec<Value>, min: bool) -> R {
    arity(&a, 1, usize::MAX)?;
    let nums: Vec<i64> = if let [Value::Array(x)] = a.as_slice() {
        x.iter()
            .map(|v| {
                v.as_i64()
                    .ok_or(format!("the array must hold ints, found {}", type_name(v)))
            })
            .collect::<Result<_, _>>()?
    } else {
        (0..a.len()).map(|i| n(&a, i)).collect::<Result<_, _>>()?
    };
    let r = if min {
        nums.iter().min()
    } else {
        nums.iter().max()
    };
    r.map(|x| Value::from(*x))
        .ok_or("the array is empty".into())
}

fn compare(a: Vec<Value>, f: impl Fn(std::cmp::Ordering) -> bool) -> R {
    arity(&a, 2, 2)?;
    match (&a[0], &a[1]) {
        (Value::Number(_), Value::Number(_)) => Ok(Value::Bool(f(n(&a, 0)?.cmp(&n(&a, 1)?)))),
        (Value::String(x), Value::String(y)) => Ok(Value::Bool(f(x.cmp(y)))),
        (x, y) => Err(format!(
            "both arguments must be ints or both strings, got {} and {}",
            type_name(x),
            type_name(y)
        )),
    }
}

fn substring(a: Vec<Value>) -> R {
    arity(&a, 2, 3)?;
    let chars: Vec<char> = s(&a, 0)?.chars().collect();
    let start = n(&a, 1)?;
    let len = if a.len() == 3 {
        n(&a, 2)?
    } else {
        chars.len() as i64 - start
    };
    if start < 0 || start > chars.len() as i64 {
        return Err(format!(
            "start index {start} is outside the string (length {})",
            chars.len()
        ));
    }
    if len < 0 || start + len > chars.len() as i64 {
        return Err(format!(
            "length {len} from index {start} goes past the end of the string (length {})",
            chars.len()
        ));
    }
    Ok(Value::String(
        chars[start as usize..(start + len) as usize]
            .iter()
            .collect(),
    ))
}

fn replace(a: Vec<Value>) -> R {
    arity(&a, 3, 3)?;
    let (x, old, new) = (s(&a, 0)?, s(&a, 1)?, s(&a, 2)?);
    if old.is_empty() {
        return Err("the string to replace (argument 2) must not be empty".into());
    }
    Ok(Value::String(x.replace(old, new)))
}

fn index_of(a: Vec<Value>, last: bool) -> R {
    arity(&a, 2, 2)?;
    match &a[0] {
        Value::String(hay) => {
            let needle = s(&a, 1)?.to_lowercase();
            let hay = hay.to_lowercase();
            let found = if last {
                hay.rfind(&needle)
            } else {
                hay.find(&needle)
            };
            Ok(Value::from(
                found
                    .map(|byte| hay[..byte].chars().count() as i64)
                    .unwrap_or(-1),
            ))
        }
        Value::Array(x) => {
            let found = if last {
                x.iter().rposition(|v| *v == a[1])
            } else {
                x.iter().position(|v| *v == a[1])
            };
            Ok(Value::from(found.map(|i| i as i64).unwrap_or(-1)))
        }
        other => Err(format!(
            "argument 1 must be a string or an array, got {}",
            type_name(other)
        )),
    }
}

fn take_skip(a: Vec<Value>, take: bool) -> R {
    arity(&a, 2, 2)?;
    let count = n(&a, 1)?.max(0) as usize;
    match &a[0] {
        Value::Array(x) => {
            let k = count.min(x.len());
            Ok(Value::Array(if take {
                x[..k].to_vec()
            } else {
                x[k..].to_vec()
            }))
        }
        Value::String(x) => {
            let chars: Vec<char> = x.chars().collect();
            let k = count.min(chars.len());
            Ok(Value::String(if take {
                chars[..k].iter().collect()
            } else {
                chars[k..].iter().collect()
            }))
        }
        other => Err(format!(
            "argument 1 must be an array or a string, got {}",
            type_name(other)
        )),
    }
}

fn range(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let (start, count) = (n(&a, 0)?, n(&a, 1)?);
    if !(0..=10_000).contains(&count) {
        return Err(format!("count {count} must be between 0 and 10000"));
    }
    if start
        .checked_add(count)
        .is_none_or(|end| end > i32::MAX as i64)
    {
        return Err("start + count must not exceed 2147483647".into());
    }
    Ok(Value::Array(
        (start..start + count).map(Value::from).collect(),
    ))
}

fn pad_left(a: Vec<Value>) -> R {
    arity(&a, 2, 3)?;
    let value = match &a[0] {
        Value::String(x) => x.clone(),
        Value::Number(x) if x.is_i64() => x.to_string(),
        other => {
            return Err(format!(
                "argument 1 must be a string or an int, got {}",
                type_name(other)
            ))
        }
    };
    let total = n(&a, 1)?;
    if !(0..=16_384).contains(&total) {
        return Err(format!("total length {total} must be between 0 and 16384"));
    }
    let pad = if a.len() == 3 {
        let p = s(&a, 2)?;
        let mut cs = p.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => c,
            _ => {
                return Err(format!(
                    "the padding character must be exactly one character, got '{p}'"
                ))
            }
        }
    } else {
        ' '
    };
    let len = value.chars().count();
    let total = total as usize;
    Ok(Value::String(if len >= total {
        value
    } else {
        pad.to_string().repeat(total - len) + &value
    }))
}

fn base64_to_string(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s(&a, 0)?.trim())
        .map_err(|e| format!("argument 1 is not valid base64: {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "the decoded bytes are not UTF-8 text".into())
}

/// `uri(base, relative)` as documented: a base ending in '/' is followed by the relative part;
/// otherwise a relative part starting with '/' replaces the base's path, and any other relative
/// part replaces the base's last segment. An absolute relative URI wins.
fn uri(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let (base, rel) = (s(&a, 0)?, s(&a, 1)?);
    let scheme_end = base
        .find("://")
        .ok_or(format!("'{base}' is not an absolute URI"))?;
    if rel.contains("://") {
        return Ok(Value::String(rel.to_string()));
    }
    let after_scheme = scheme_end + 3;
    let authority_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    let out = if base.ends_with('/') {
        format!("{base}{}", rel.trim_start_matches('/'))
    } else if let Some(r) = rel.strip_prefix('/') {
        format!("{}/{r}", &base[..authority_end])
    } else {
        let last_slash = base[authority_end..].rfind('/').map(|i| authority_end + i);
        match last_slash {
            Some(i) => format!("{}/{rel}", &base[..i]),
            None => format!("{base}/{rel}"),
        }
    };
    Ok(Value::String(out))
}

fn uri_escape(x: &str) -> String {
    let mut out = String::new();
    for byte in x.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn uri_unescape(x: &str) -> Result<String, String> {
    let bytes = x.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = x
                .get(i + 1..i + 3)
                .ok_or(format!("incomplete escape at character {}", i + 1))?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("'%{hex}' is not a valid escape"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded bytes are not UTF-8 text".into())
}

fn data_uri_to_string(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let uri = s(&a, 0)?;
    let rest = uri
        .strip_prefix("data:")
        .ok_or(format!("'{uri}' is not a data URI"))?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or(format!("'{uri}' is not a data URI (no ',')"))?;
    if meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("the data URI's base64 payload is invalid: {e}"))?;
        String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| "the decoded bytes are not UTF-8 text".into())
    } else {
        uri_unescape(data).map(Value::String)
    }
}

fn join(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let Value::Array(items) = &a[0] else {
        return Err(format!(
            "argument 1 must be an array, got {}",
            type_name(&a[0])
        ));
    };
    let delim = s(&a, 1)?;
    let mut parts = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => parts.push(to_string(v)),
            other => {
                return Err(format!(
                    "element {i} of the array must be a string, int or bool, got {}",
                    type_name(other)
                ))
            }
        }
    }
    Ok(Value::String(parts.join(delim)))
}

fn flatten(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let Value::Array(items) = &a[0] else {
        return Err(format!(
            "argument 1 must be an array of arrays, got {}",
            type_name(&a[0])
        ));
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::Array(inner) => out.extend(inner.iter().cloned()),
            other => {
                return Err(format!(
                    "element {i} must be an array, got {}",
                    type_name(other)
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

fn try_get(a: Vec<Value>) -> R {
    arity(&a, 2, usize::MAX)?;
    let mut cur = &a[0];
    for (i, key) in a.iter().enumerate().skip(1) {
        let next = match (cur, key) {
            (Value::Object(m), Value::String(k)) => crate::json::get_ci(m, k),
            (Value::Array(arr), Value::Number(n)) => n.as_u64().and_then(|i| arr.get(i as usize)),
            (_, Value::String(_) | Value::Number(_)) => None,
            (_, other) => {
                return Err(format!(
                    "argument {} must be a string or an int, got {}",
                    i + 1,
                    type_name(other)
                ))
            }
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(Value::Null),
        }
    }
    Ok(cur.clone())
}

fn extension_resource_id(a: Vec<Value>) -> R {
    arity(&a, 3, usize::MAX)?;
    let mut strs = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        strs.push(s(&a, i)?);
    }
    let base = strs[0].trim_end_matches('/');
    if !base.starts_with('/') {
        return Err(format!(
            "'{base}' is not a resource id (it must start with '/')"
        ));
    }
    let ty = strs[1].trim_matches('/');
    let segs: Vec<&str> = ty.split('/').collect();
    let names: Vec<&str> = strs[2..].iter().flat_map(|n| n.split('/')).collect();
    if segs.len() < 2 || names.len() != segs.len() - 1 {
        return Err(format!(
            "resource type '{ty}' needs {} name segment(s), got {}",
            segs.len().saturating_sub(1),
            names.len()
        ));
    }
    let mut out = format!("{base}/providers/{}", segs[0]);
    for (t, n) in segs[1..].iter().zip(&names) {
        out.push_str(&format!("/{t}/{n}"));
    }
    Ok(Value::String(out))
}
