//! The template functions that depend only on their arguments (string, array, object, logical,
//! numeric, comparison, conversion, encoding and hashing functions). Functions that need the
//! deployment (parameters, variables, resourceId, reference, copyIndex, ...) live in `eval`.

use crate::budget::{json_str_len, Budget, Exceeded, Size, MAX_VALUE_BYTES, NODE_BYTES};
use crate::hash;
use crate::json::type_name;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// The most integers `range()` makes: Azure documents `count` as "non-negative integer up to
/// 10000" (and `startIndex + count` at most 2147483647), "Array functions for ARM templates".
const RANGE_COUNT: i64 = 10_000;

/// The longest string `padLeft()` pads to. Azure documents no bound; 16384 characters is far
/// longer than any name or property a template pads, and keeps one call's result small.
const PAD_LEFT_LENGTH: i64 = 16_384;

/// The widest alignment (`{0,width}`) `format()` pads to. .NET accepts up to a million; no real
/// template aligns wider than a line, and each format item stays small.
const FORMAT_ALIGNMENT: u64 = 10_000;

/// The most digits a `format()` precision (`{0:D5}`, `{0:N2}`) asks for. .NET accepts far more;
/// an int has at most 19, so anything beyond padding a table column is a mistake.
const FORMAT_DIGITS: usize = 1000;

/// Why a pure function returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The arguments do not fit the function; the text says why.
    Invalid(String),
    /// The result would be at least this many bytes of JSON, more than [`MAX_VALUE_BYTES`]; the
    /// function stopped before allocating it.
    TooLarge(usize),
    /// The evaluation's work budget ran out inside the function.
    Exhausted(Exceeded),
}

impl From<Exceeded> for Failure {
    fn from(e: Exceeded) -> Failure {
        Failure::Exhausted(e)
    }
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::Invalid(m)
    }
}

impl From<&str> for Failure {
    fn from(m: &str) -> Failure {
        Failure::Invalid(m.to_string())
    }
}

type R = Result<Value, Failure>;

/// Fails with [`Failure::TooLarge`] when a result of `bytes` bytes of JSON would be too large.
fn room(bytes: usize) -> Result<(), Failure> {
    if bytes > MAX_VALUE_BYTES {
        Err(Failure::TooLarge(bytes))
    } else {
        Ok(())
    }
}

/// Calls the pure function `name` (lower case) on arguments `a`, whose sizes are `sizes`. `None`
/// if no such pure function exists. Functions whose result can be much larger than their
/// arguments check its size before they build it; work that is not proportional to the size of
/// the arguments and the result is charged to `budget`.
pub(crate) fn call_pure(name: &str, a: Vec<Value>, sizes: &[Size], budget: &Budget) -> Option<R> {
    debug_assert_eq!(a.len(), sizes.len());
    Some(match name {
        "concat" => concat(a, sizes),
        "format" => format_fn(a),
        "tolower" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(s(&a, 0)?.to_lowercase()))),
        "toupper" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(s(&a, 0)?.to_uppercase()))),
        "split" => split(a, budget),
        "first" => first_last(a, true),
        "last" => first_last(a, false),
        "equals" => arity(&a, 2, 2).map(|_| Value::Bool(a[0] == a[1])),
        "not" => arity(&a, 1, 1).and_then(|_| Ok(Value::Bool(!b(&a, 0)?))),
        "and" => logic(a, true),
        "or" => logic(a, false),
        "true" => arity(&a, 0, 0).map(|_| Value::Bool(true)),
        "false" => arity(&a, 0, 0).map(|_| Value::Bool(false)),
        "null" => arity(&a, 0, 0).map(|_| Value::Null),
        "json" => json_fn(a, budget),
        "uniquestring" => joined_strings(&a).map(|j| Value::String(hash::unique_string(&j))),
        "guid" => joined_strings(&a).map(|j| Value::String(hash::guid(&j))),
        "length" => length(a),
        "empty" => empty(a),
        "contains" => contains(a),
        "union" => union(a),
        "intersection" => intersection(a),
        "createarray" => {
            room(2 + a.len().saturating_sub(1) + sizes.iter().map(|z| z.bytes).sum::<usize>())
                .map(|_| Value::Array(a))
        }
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
            let text = s(&a, 0)?;
            room(text.len().div_ceil(3) * 4 + 2)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            ))
        }),
        "base64tostring" => base64_to_string(a),
        "uri" => uri(a),
        "uricomponent" => arity(&a, 1, 1).and_then(|_| Ok(Value::String(uri_escape(s(&a, 0)?)?))),
        "uricomponenttostring" => {
            arity(&a, 1, 1).and_then(|_| Ok(Value::String(uri_unescape(s(&a, 0)?)?)))
        }
        "datauri" => arity(&a, 1, 1).and_then(|_| {
            const PREFIX: &str = "data:text/plain;charset=utf8;base64,";
            let text = to_string(&a[0]);
            room(PREFIX.len() + text.len().div_ceil(3) * 4 + 2)?;
            Ok(Value::String(format!(
                "{PREFIX}{}",
                base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
            )))
        }),
        "datauritostring" => data_uri_to_string(a),
        "join" => join(a),
        "flatten" => flatten(a),
        "objectkeys" => arity(&a, 1, 1).and_then(|_| match &a[0] {
            Value::Object(m) => Ok(Value::Array(
                m.keys().map(|k| Value::String(k.clone())).collect(),
            )),
            other => Err(format!("argument 1 must be an object, got {}", type_name(other)).into()),
        }),
        "tryget" => try_get(a),
        "extensionresourceid" => extension_resource_id(a),
        "parsecidr" => arity(&a, 1, 1).and_then(|_| Ok(crate::cidr::parse_cidr(s(&a, 0)?)?)),
        "cidrsubnet" => arity(&a, 3, 3)
            .and_then(|_| Ok(crate::cidr::cidr_subnet(s(&a, 0)?, n(&a, 1)?, n(&a, 2)?)?)),
        "cidrhost" => {
            arity(&a, 2, 2).and_then(|_| Ok(crate::cidr::cidr_host(s(&a, 0)?, n(&a, 1)?)?))
        }
        _ => return None,
    })
}

fn arity(a: &[Value], min: usize, max: usize) -> Result<(), Failure> {
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
        return Err(format!("expects {want} {plural}, got {}", a.len()).into());
    }
    Ok(())
}

fn s(a: &[Value], i: usize) -> Result<&str, Failure> {
    match &a[i] {
        Value::String(x) => Ok(x),
        other => Err(format!(
            "argument {} must be a string, got {}",
            i + 1,
            type_name(other)
        )
        .into()),
    }
}

fn n(a: &[Value], i: usize) -> Result<i64, Failure> {
    match &a[i] {
        Value::Number(x) if x.is_i64() => Ok(x.as_i64().unwrap_or_default()),
        other => Err(format!(
            "argument {} must be an int, got {}",
            i + 1,
            type_name(other)
        )
        .into()),
    }
}

fn b(a: &[Value], i: usize) -> Result<bool, Failure> {
    match &a[i] {
        Value::Bool(x) => Ok(*x),
        other => Err(format!(
            "argument {} must be a bool, got {}",
            i + 1,
            type_name(other)
        )
        .into()),
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

/// `concat()` of strings or of arrays. The result's size follows from the arguments' sizes, so it
/// is checked before anything is copied.
fn concat(a: Vec<Value>, sizes: &[Size]) -> R {
    if a.is_empty() {
        return Ok(Value::String(String::new()));
    }
    if a[0].is_array() {
        let mut elements = 0usize;
        let mut bytes = 0usize;
        for (i, (v, z)) in a.iter().zip(sizes).enumerate() {
            match v {
                Value::Array(x) => {
                    elements += x.len();
                    bytes += z.bytes.saturating_sub(2 + x.len().saturating_sub(1));
                }
                Value::Null => {}
                other => {
                    return Err(format!(
                        "argument {} must be an array like the first one, got {}",
                        i + 1,
                        type_name(other)
                    )
                    .into())
                }
            }
        }
        room(2 + bytes + elements.saturating_sub(1))?;
        let mut out = Vec::with_capacity(elements);
        for v in a {
            if let Value::Array(x) = v {
                out.extend(x);
            }
        }
        return Ok(Value::Array(out));
    }
    let mut bytes = 2usize;
    for (i, (v, z)) in a.iter().zip(sizes).enumerate() {
        bytes += match v {
            Value::String(_) => z.bytes.saturating_sub(2),
            Value::Number(_) | Value::Bool(_) => z.bytes,
            Value::Null => 0,
            other => {
                return Err(format!(
                    "argument {} must be a string (or int) like the first one, got {}",
                    i + 1,
                    type_name(other)
                )
                .into())
            }
        };
    }
    room(bytes)?;
    let mut out = String::new();
    for v in &a {
        out.push_str(&to_string(v));
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
                )
                .into())
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
                        .filter(|w: &i64| w.unsigned_abs() <= FORMAT_ALIGNMENT)
                        .ok_or(format!(
                            "'{al}' is not a valid alignment (at most {FORMAT_ALIGNMENT} either way)"
                        ))?;
                    let len = text.chars().count() as i64;
                    if w.abs() > len {
                        let pad = " ".repeat((w.abs() - len) as usize);
                        text = if w > 0 { pad + &text } else { text + &pad };
                    }
                }
                out.push_str(&text);
                room(out.len() + 2)?;
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
    if prec.is_some_and(|p| p > FORMAT_DIGITS) {
        return Err(format!(
            "format spec '{spec}' asks for more than {FORMAT_DIGITS} digits"
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

/// `split()`. The parts are counted as they are cut, so a string of delimiters cannot become
/// millions of strings; with several delimiters each comparison is work charged to `budget`.
fn split(a: Vec<Value>, budget: &Budget) -> R {
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
            )
            .into())
        }
    };
    let delims: Vec<&str> = delims
        .iter()
        .filter(|d| !d.is_empty())
        .map(String::as_str)
        .collect();
    // the result: '[', then per part its JSON string and a ',' (one too many, for the ']')
    let mut bytes = 1usize;
    let mut parts = Vec::new();
    let mut push = |part: &str, parts: &mut Vec<Value>| -> Result<(), Failure> {
        bytes += json_str_len(part) + 1;
        room(bytes)?;
        parts.push(Value::String(part.to_string()));
        Ok(())
    };
    if let [only] = delims.as_slice() {
        let parts_count = input.matches(only).count() + 1;
        room(1 + parts_count * 3 + input.len() - parts_count.saturating_sub(1) * only.len())?;
        budget.charge(
            parts_count
                .saturating_mul(NODE_BYTES)
                .saturating_add(input.len()),
        )?;
        for part in input.split(only) {
            push(part, &mut parts)?;
        }
        return Ok(Value::Array(parts));
    }
    // several delimiters: at each position the first one (in argument order) that matches wins;
    // only those starting with the byte at hand are tried
    let mut by_first: HashMap<u8, Vec<&str>> = HashMap::new();
    for d in &delims {
        by_first.entry(d.as_bytes()[0]).or_default().push(d);
    }
    let mut start = 0;
    let mut i = 0;
    let bytes_in = input.as_bytes();
    while i < input.len() {
        let candidates = by_first.get(&bytes_in[i]).map_or(&[][..], Vec::as_slice);
        budget.charge(1 + candidates.iter().map(|d| d.len()).sum::<usize>())?;
        match candidates.iter().find(|d| input[i..].starts_with(**d)) {
            Some(d) => {
                budget.charge(NODE_BYTES + i - start)?;
                push(&input[start..i], &mut parts)?;
                i += d.len();
                start = i;
            }
            None => i += 1,
        }
    }
    budget.charge(NODE_BYTES + input.len() - start)?;
    push(&input[start..], &mut parts)?;
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
        )
        .into()),
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

/// `json()`. Parsing can make a short text into many values (`[0,0,0,...]` holds one per two
/// bytes), so their memory is charged to `budget` before parsing: at most one value per
/// separator or opening bracket, plus the text.
fn json_fn(a: Vec<Value>, budget: &Budget) -> R {
    arity(&a, 1, 1)?;
    let text = s(&a, 0)?;
    let nodes = 1 + text
        .bytes()
        .filter(|b| matches!(b, b',' | b'[' | b'{'))
        .count();
    budget.charge(nodes.saturating_mul(NODE_BYTES).saturating_add(text.len()))?;
    serde_json::from_str::<Value>(text)
        .map_err(|e| format!("argument 1 is not valid JSON: {e}").into())
}

fn joined_strings(a: &[Value]) -> Result<String, Failure> {
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
        )
        .into()),
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
        )
        .into()),
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
            )
            .into()),
        },
        Value::Array(x) => Ok(Value::Bool(x.contains(&a[1]))),
        Value::Object(m) => match &a[1] {
            Value::String(k) => Ok(Value::Bool(m.keys().any(|key| key.eq_ignore_ascii_case(k)))),
            other => Err(format!(
                "argument 2 must be a string (a property name), got {}",
                type_name(other)
            )
            .into()),
        },
        other => Err(format!(
            "argument 1 must be a string, array or object, got {}",
            type_name(other)
        )
        .into()),
    }
}

/// Merges `from` into `into` as `union()` does for objects: names match ignoring case, nested
/// objects merge, anything else is replaced. An index of lower-cased names keeps this linear.
fn deep_merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    let mut names: HashMap<String, String> = HashMap::with_capacity(into.len());
    for k in into.keys() {
        names
            .entry(k.to_ascii_lowercase())
            .or_insert_with(|| k.clone());
    }
    for (k, v) in from {
        let lower = k.to_ascii_lowercase();
        let existing = names.get(&lower).cloned();
        match (existing.as_ref().and_then(|e| into.get_mut(e)), v) {
            (Some(Value::Object(dst)), Value::Object(src)) => deep_merge(dst, src),
            _ => {
                if let Some(e) = existing {
                    into.remove(&e);
                }
                into.insert(k.clone(), v.clone());
                names.insert(lower, k.clone());
            }
        }
    }
}

/// Feeds `v` to `h` so that equal values (`==`, object members in any order) hash alike.
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(u) = n.as_u64() {
                (0u8, u).hash(h);
            } else if let Some(i) = n.as_i64() {
                (1u8, i).hash(h);
            } else {
                let f = n.as_f64().unwrap_or_default();
                (2u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h);
            }
        }
        Value::String(x) => (3u8, x).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            a.iter().for_each(|x| hash_value(x, h));
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            let mut members = 0u64;
            for (k, x) in m {
                let mut eh = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut eh);
                hash_value(x, &mut eh);
                members = members.wrapping_add(eh.finish());
            }
            members.hash(h);
        }
    }
}

/// A set of values with linear-time membership, for `union()` and `intersection()` of arrays.
#[derive(Default)]
struct ValueSet<'a> {
    buckets: HashMap<u64, Vec<&'a Value>>,
}

impl<'a> ValueSet<'a> {
    fn key(v: &Value) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        hash_value(v, &mut h);
        h.finish()
    }

    fn contains(&self, v: &Value) -> bool {
        self.buckets
            .get(&Self::key(v))
            .is_some_and(|b| b.contains(&v))
    }

    /// Adds `v`; false if an equal value was there already.
    fn insert(&mut self, v: &'a Value) -> bool {
        let bucket = self.buckets.entry(Self::key(v)).or_default();
        if bucket.contains(&v) {
            return false;
        }
        bucket.push(v);
        true
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
                        )
                        .into())
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(_) => {
            let mut out: Vec<Value> = Vec::new();
            let mut seen = ValueSet::default();
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::Array(x) => {
                        for item in x {
                            if seen.insert(item) {
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
                        )
                        .into())
                    }
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(format!(
            "argument 1 must be an array or an object, got {}",
            type_name(other)
        )
        .into()),
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
                        )
                        .into())
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
                        )
                        .into())
                    }
                }
            }
            let sets: Vec<ValueSet> = others
                .iter()
                .map(|o| {
                    let mut set = ValueSet::default();
                    o.iter().for_each(|x| {
                        set.insert(x);
                    });
                    set
                })
                .collect();
            let mut out: Vec<Value> = Vec::new();
            let mut seen = ValueSet::default();
            for item in first {
                if sets.iter().all(|set| set.contains(item)) && seen.insert(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        other => Err(format!(
            "argument 1 must be an array or an object, got {}",
            type_name(other)
        )
        .into()),
    }
}

fn create_object(a: Vec<Value>) -> R {
    if !a.len().is_multiple_of(2) {
        return Err(format!(
            "expects key/value pairs (an even number of arguments), got {}",
            a.len()
        )
        .into());
    }
    let mut out = Map::new();
    for pair in a.chunks(2) {
        match &pair[0] {
            Value::String(k) => {
                out.insert(k.clone(), pair[1].clone());
            }
            other => return Err(format!("keys must be strings, got {}", type_name(other)).into()),
        }
    }
    Ok(Value::Object(out))
}

fn items(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let Value::Object(m) = &a[0] else {
        return Err(format!("argument 1 must be an object, got {}", type_name(&a[0])).into());
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
            .ok_or_else(|| "not a number".into()),
        Value::String(x) => x
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{x}' cannot be converted to an int").into()),
        other => Err(format!(
            "argument 1 must be a string or an int, got {}",
            type_name(other)
        )
        .into()),
    }
}

fn bool_fn(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    match &a[0] {
        Value::Bool(_) => Ok(a[0].clone()),
        Value::String(x) if x.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(x) if x.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        Value::String(x) => {
            Err(format!("'{x}' cannot be converted to a bool (expected 'true' or 'false')").into())
        }
        Value::Number(x) if x.is_i64() => Ok(Value::Bool(x.as_i64() != Some(0))),
        other => Err(format!(
            "argument 1 must be a string, int or bool, got {}",
            type_name(other)
        )
        .into()),
    }
}

fn arith(a: Vec<Value>, f: impl Fn(i64, i64) -> Result<i64, String>) -> R {
    arity(&a, 2, 2)?;
    Ok(Value::from(f(n(&a, 0)?, n(&a, 1)?)?))
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
        )
        .into()),
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
        )
        .into());
    }
    if len < 0 || start + len > chars.len() as i64 {
        return Err(format!(
            "length {len} from index {start} goes past the end of the string (length {})",
            chars.len()
        )
        .into());
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
    if new.len() > old.len() {
        let grown = x.matches(old).count().saturating_mul(new.len() - old.len());
        room(x.len().saturating_add(grown).saturating_add(2))?;
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
        )
        .into()),
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
        )
        .into()),
    }
}

fn range(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let (start, count) = (n(&a, 0)?, n(&a, 1)?);
    if !(0..=RANGE_COUNT).contains(&count) {
        return Err(format!("count {count} must be between 0 and {RANGE_COUNT}").into());
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
            )
            .into())
        }
    };
    let total = n(&a, 1)?;
    if !(0..=PAD_LEFT_LENGTH).contains(&total) {
        return Err(format!("total length {total} must be between 0 and {PAD_LEFT_LENGTH}").into());
    }
    let pad = if a.len() == 3 {
        let p = s(&a, 2)?;
        let mut cs = p.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => c,
            _ => {
                return Err(format!(
                    "the padding character must be exactly one character, got '{p}'"
                )
                .into())
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

/// Percent-encodes everything but unreserved characters; each other byte becomes three, so the
/// size is checked first.
fn uri_escape(x: &str) -> Result<String, Failure> {
    let kept = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
    let escaped = x.bytes().filter(|&b| !kept(b)).count();
    room(x.len() + 2 * escaped + 2)?;
    let mut out = String::with_capacity(x.len() + 2 * escaped);
    for byte in x.bytes() {
        if kept(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
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
        Ok(Value::String(uri_unescape(data)?))
    }
}

fn join(a: Vec<Value>) -> R {
    arity(&a, 2, 2)?;
    let Value::Array(items) = &a[0] else {
        return Err(format!("argument 1 must be an array, got {}", type_name(&a[0])).into());
    };
    let delim = s(&a, 1)?;
    let mut parts = Vec::with_capacity(items.len());
    let mut len = delim.len().saturating_mul(items.len().saturating_sub(1));
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                len = len.saturating_add(match v {
                    Value::String(x) => x.len(),
                    _ => to_string(v).len(),
                });
                parts.push(v);
            }
            other => {
                return Err(format!(
                    "element {i} of the array must be a string, int or bool, got {}",
                    type_name(other)
                )
                .into())
            }
        }
    }
    room(len.saturating_add(2))?;
    let mut out = String::with_capacity(len);
    for (i, v) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push_str(delim);
        }
        match v {
            Value::String(x) => out.push_str(x),
            other => out.push_str(&to_string(other)),
        }
    }
    Ok(Value::String(out))
}

fn flatten(a: Vec<Value>) -> R {
    arity(&a, 1, 1)?;
    let Value::Array(items) = &a[0] else {
        return Err(format!(
            "argument 1 must be an array of arrays, got {}",
            type_name(&a[0])
        )
        .into());
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::Array(inner) => out.extend(inner.iter().cloned()),
            other => {
                return Err(
                    format!("element {i} must be an array, got {}", type_name(other)).into(),
                )
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
                )
                .into())
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
        return Err(format!("'{base}' is not a resource id (it must start with '/')").into());
    }
    let ty = strs[1].trim_matches('/');
    let segs: Vec<&str> = ty.split('/').collect();
    let names: Vec<&str> = strs[2..].iter().flat_map(|n| n.split('/')).collect();
    if segs.len() < 2 || names.len() != segs.len() - 1 {
        return Err(format!(
            "resource type '{ty}' needs {} name segment(s), got {}",
            segs.len().saturating_sub(1),
            names.len()
        )
        .into());
    }
    let mut out = format!("{base}/providers/{}", segs[0]);
    for (t, n) in segs[1..].iter().zip(&names) {
        out.push_str(&format!("/{t}/{n}"));
    }
    Ok(Value::String(out))
}
