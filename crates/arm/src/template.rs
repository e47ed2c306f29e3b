//! The parsed (not yet evaluated) template: its sections checked for shape, parameters typed.

use crate::json::{get_ci, parse_document, type_name};
use crate::ArmError;
use serde_json::{Map, Value};

/// The declared type of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterType {
    /// `string`
    String,
    /// `securestring`: a string that never appears in errors, Debug output or deployment records.
    SecureString,
    /// `int`
    Int,
    /// `bool`
    Bool,
    /// `array`
    Array,
    /// `object`
    Object,
    /// `secureObject`: an object whose contents are secret.
    SecureObject,
}

impl ParameterType {
    fn parse(s: &str) -> Option<ParameterType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "string" => ParameterType::String,
            "securestring" => ParameterType::SecureString,
            "int" => ParameterType::Int,
            "bool" => ParameterType::Bool,
            "array" => ParameterType::Array,
            "object" => ParameterType::Object,
            "secureobject" => ParameterType::SecureObject,
            _ => return None,
        })
    }

    /// Whether values of this type are secret.
    pub fn is_secure(self) -> bool {
        matches!(
            self,
            ParameterType::SecureString | ParameterType::SecureObject
        )
    }

    /// The name as ARM spells it.
    pub fn name(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::SecureString => "securestring",
            ParameterType::Int => "int",
            ParameterType::Bool => "bool",
            ParameterType::Array => "array",
            ParameterType::Object => "object",
            ParameterType::SecureObject => "secureObject",
        }
    }
}

/// One entry of the template's `parameters` section.
#[derive(Debug, Clone)]
pub struct ParameterDef {
    /// Name as declared (lookups ignore case).
    pub name: String,
    /// Declared type.
    pub kind: ParameterType,
    /// `defaultValue`, unevaluated (it may be an expression).
    pub default_value: Option<Value>,
    /// `allowedValues`, if any.
    pub allowed_values: Option<Vec<Value>>,
    /// `minValue` (ints).
    pub min_value: Option<i64>,
    /// `maxValue` (ints).
    pub max_value: Option<i64>,
    /// `minLength` (strings and arrays).
    pub min_length: Option<i64>,
    /// `maxLength` (strings and arrays).
    pub max_length: Option<i64>,
    /// `metadata.description`, for help texts.
    pub description: Option<String>,
}

/// A deployment template after parsing: sections checked for shape, nothing evaluated yet.
#[derive(Debug, Clone)]
pub struct Template {
    /// `$schema`
    pub schema: Option<String>,
    /// `contentVersion`
    pub content_version: Option<String>,
    /// `apiProfile` (e.g. `2018-03-01-hybrid` for Azure Stack Hub templates).
    pub api_profile: Option<String>,
    /// Declared parameters in template order.
    pub parameters: Vec<ParameterDef>,
    /// Variables in template order, unevaluated (`copy` entries kept as written).
    pub(crate) variables: Map<String, Value>,
    /// The `resources` array as written.
    pub(crate) resources: Vec<Value>,
    /// Outputs in template order, unevaluated.
    pub(crate) outputs: Map<String, Value>,
    /// User-defined functions (`functions` section).
    pub(crate) functions: Vec<UserFunction>,
}

/// A user-defined function: `namespace.name(args)` evaluates `output.value` with `parameters()`
/// bound to the arguments.
#[derive(Debug, Clone)]
pub(crate) struct UserFunction {
    pub namespace: String,
    pub name: String,
    pub parameters: Vec<(String, ParameterType)>,
    pub output_type: ParameterType,
    pub output: Value,
    /// Template path of the member (`functions[0].members.uniqueName`).
    pub path: String,
}

impl ParameterType {
    /// Whether `v` is a value of this type (no coercion).
    pub(crate) fn matches(self, v: &Value) -> bool {
        match self {
            ParameterType::String | ParameterType::SecureString => v.is_string(),
            ParameterType::Int => v.is_i64(),
            ParameterType::Bool => v.is_boolean(),
            ParameterType::Array => v.is_array(),
            ParameterType::Object | ParameterType::SecureObject => v.is_object(),
        }
    }
}

fn parse_functions(v: Option<&Value>) -> Result<Vec<UserFunction>, ArmError> {
    let namespaces = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(structure(
                "functions",
                format!("expected an array of namespaces, got {}", type_name(other)),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let path = format!("functions[{i}]");
        let Value::Object(nm) = ns else {
            return Err(structure(
                path,
                format!("expected an object, got {}", type_name(ns)),
            ));
        };
        let namespace = opt_string(nm, "namespace", &format!("{path}."))?
            .filter(|n| !n.is_empty() && !n.contains('.'))
            .ok_or_else(|| {
                structure(
                    format!("{path}.namespace"),
                    "a function namespace needs a name without '.'",
                )
            })?;
        let Some(Value::Object(members)) = get_ci(nm, "members") else {
            return Err(structure(
                format!("{path}.members"),
                "a function namespace needs a 'members' object",
            ));
        };
        for (name, def) in members {
            let mpath = format!("{path}.members.{name}");
            let Value::Object(dm) = def else {
                return Err(structure(
                    mpath,
                    format!("expected an object, got {}", type_name(def)),
                ));
            };
            let mut parameters = Vec::new();
            match get_ci(dm, "parameters") {
                None | Some(Value::Null) => {}
                Some(Value::Array(ps)) => {
                    for (j, p) in ps.iter().enumerate() {
                        let ppath = format!("{mpath}.parameters[{j}]");
                        let pm = p
                            .as_object()
                            .ok_or_else(|| structure(ppath.clone(), "expected an object"))?;
                        let pname =
                            opt_string(pm, "name", &format!("{ppath}."))?.ok_or_else(|| {
                                structure(
                                    format!("{ppath}.name"),
                                    "a function parameter needs a name",
                                )
                            })?;
                        let ptype = opt_string(pm, "type", &format!("{ppath}."))?
                            .and_then(|t| ParameterType::parse(&t))
                            .ok_or_else(|| {
                                structure(
                                    format!("{ppath}.type"),
                                    "a function parameter needs a valid type",
                                )
                            })?;
                        if get_ci(pm, "defaultValue").is_some() {
                            return Err(structure(
                                format!("{ppath}.defaultValue"),
                                "parameters of user-defined functions cannot have default values",
                            ));
                        }
                        parameters.push((pname, ptype));
                    }
                }
                Some(other) => {
                    return Err(structure(
                        format!("{mpath}.parameters"),
                        format!("expected an array, got {}", type_name(other)),
                    ))
                }
            }
            let Some(Value::Object(om)) = get_ci(dm, "output") else {
                return Err(structure(
                    format!("{mpath}.output"),
                    "a function needs an 'output' object",
                ));
            };
            let output_type = opt_string(om, "type", &format!("{mpath}.output."))?
                .and_then(|t| ParameterType::parse(&t))
                .ok_or_else(|| {
                    structure(
                        format!("{mpath}.output.type"),
                        "a function output needs a valid type",
                    )
                })?;
            let output = get_ci(om, "value").cloned().ok_or_else(|| {
                structure(
                    format!("{mpath}.output"),
                    "a function output needs a 'value'",
                )
            })?;
            out.push(UserFunction {
                namespace: namespace.clone(),
                name: name.clone(),
                parameters,
                output_type,
                output,
                path: mpath,
            });
        }
    }
    Ok(out)
}

/// Azure Resource Manager's documented template limits, enforced so oversized input gets a clear
/// error instead of unbounded work.
pub(crate) mod limits {
    /// Template (and parameter file) size.
    pub const TEMPLATE_BYTES: usize = 4 * 1024 * 1024;
    /// Declared parameters.
    pub const PARAMETERS: usize = 256;
    /// Declared variables.
    pub const VARIABLES: usize = 256;
    /// Outputs.
    pub const OUTPUTS: usize = 64;
    /// Resources after copy loops are expanded.
    pub const RESOURCES: usize = 800;
    /// Characters in one template expression.
    pub const EXPRESSION_CHARS: usize = 24_576;
}

const TOP_LEVEL: &[&str] = &[
    "$schema",
    "contentVersion",
    "apiProfile",
    "parameters",
    "variables",
    "resources",
    "outputs",
    "metadata",
    "functions",
    "definitions",
    "languageVersion",
];

fn structure(path: impl Into<String>, message: impl Into<String>) -> ArmError {
    ArmError::Structure {
        path: path.into(),
        message: message.into(),
    }
}

fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ArmError> {
    match get_ci(m, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(structure(
            format!("{path}{key}"),
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

fn opt_int(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, ArmError> {
    match get_ci(m, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(structure(
            format!("{path}.{key}"),
            format!("expected an integer, got {}", type_name(other)),
        )),
    }
}

/// Parses a deployment template. Malformed JSON yields [`ArmError::Json`] with line:column;
/// a wrongly shaped section yields [`ArmError::Structure`] naming it.
pub fn parse_template(json: &str) -> Result<Template, ArmError> {
    if json.len() > limits::TEMPLATE_BYTES {
        return Err(structure(
            "(template)",
            format!(
                "the template is {} bytes; Azure accepts at most {} (4 MB)",
                json.len(),
                limits::TEMPLATE_BYTES
            ),
        ));
    }
    let doc = parse_document(json, "template")?;
    let Value::Object(top) = doc else {
        return Err(structure(
            "(template)",
            format!("a template must be a JSON object, got {}", type_name(&doc)),
        ));
    };
    for key in top.keys() {
        if !TOP_LEVEL.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(structure(
                key.clone(),
                format!("unknown template section (known: {})", TOP_LEVEL.join(", ")),
            ));
        }
    }
    if let Some(v) = get_ci(&top, "languageVersion") {
        return Err(structure(
            "languageVersion",
            format!("language version {v} (symbolic resource names) is not supported"),
        ));
    }
    let schema = opt_string(&top, "$schema", "")?;
    let content_version = opt_string(&top, "contentVersion", "")?;
    let api_profile = opt_string(&top, "apiProfile", "")?;

    let mut parameters = Vec::new();
    match get_ci(&top, "parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ps)) => {
            for (name, def) in ps {
                if parameters
                    .iter()
                    .any(|p: &ParameterDef| p.name.eq_ignore_ascii_case(name))
                {
                    return Err(structure(
                        format!("parameters.{name}"),
                        format!("parameter '{name}' is declared more than once (names are case-insensitive)"),
                    ));
                }
                parameters.push(parse_parameter_def(name, def)?);
            }
        }
        Some(other) => {
            return Err(structure(
                "parameters",
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    }
    let variables = match get_ci(&top, "variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(other) => {
            return Err(structure(
                "variables",
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    };
    let resources = match get_ci(&top, "resources") {
        None => {
            return Err(structure(
                "resources",
                "a template must have a 'resources' array",
            ))
        }
        Some(Value::Array(r)) => r.clone(),
        Some(other) => {
            return Err(structure(
                "resources",
                format!("expected an array, got {}", type_name(other)),
            ))
        }
    };
    for (i, r) in resources.iter().enumerate() {
        check_resource_shape(r, &format!("resources[{i}]"))?;
    }
    let functions = parse_functions(get_ci(&top, "functions"))?;
    let outputs = match get_ci(&top, "outputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(other) => {
            return Err(structure(
                "outputs",
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    };
    for (name, o) in &outputs {
        let path = format!("outputs.{name}");
        let Value::Object(om) = o else {
            return Err(structure(
                path,
                format!("expected an object, got {}", type_name(o)),
            ));
        };
        let t = opt_string(om, "type", &format!("{path}."))?
            .ok_or_else(|| structure(format!("{path}.type"), "an output must declare its type"))?;
        if ParameterType::parse(&t).is_none() {
            return Err(structure(
                format!("{path}.type"),
                format!("unknown output type '{t}'"),
            ));
        }
        if get_ci(om, "value").is_none() && get_ci(om, "copy").is_none() {
            return Err(structure(path, "an output needs a 'value' (or 'copy')"));
        }
    }
    for (section, count, max) in [
        ("parameters", parameters.len(), limits::PARAMETERS),
        ("variables", variables.len(), limits::VARIABLES),
        ("outputs", outputs.len(), limits::OUTPUTS),
    ] {
        if count > max {
            return Err(structure(
                section,
                format!("{count} entries; Azure allows at most {max}"),
            ));
        }
    }
    Ok(Template {
        schema,
        content_version,
        api_profile,
        parameters,
        variables,
        resources,
        outputs,
        functions,
    })
}

fn parse_parameter_def(name: &str, def: &Value) -> Result<ParameterDef, ArmError> {
    let path = format!("parameters.{name}");
    let Value::Object(m) = def else {
        return Err(structure(
            path,
            format!(
                "a parameter declaration must be an object, got {}",
                type_name(def)
            ),
        ));
    };
    let t = opt_string(m, "type", &format!("{path}."))?
        .ok_or_else(|| structure(format!("{path}.type"), "a parameter must declare its type"))?;
    let kind = ParameterType::parse(&t).ok_or_else(|| {
        structure(
            format!("{path}.type"),
            format!("unknown parameter type '{t}' (expected string, securestring, int, bool, array, object or secureObject)"),
        )
    })?;
    let allowed_values = match get_ci(m, "allowedValues") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a.clone()),
        Some(other) => {
            return Err(structure(
                format!("{path}.allowedValues"),
                format!("expected an array, got {}", type_name(other)),
            ))
        }
    };
    let description = get_ci(m, "metadata")
        .and_then(|md| md.as_object())
        .and_then(|md| get_ci(md, "description"))
        .and_then(|d| d.as_str())
        .map(str::to_string);
    Ok(ParameterDef {
        name: name.to_string(),
        kind,
        default_value: get_ci(m, "defaultValue").cloned(),
        allowed_values,
        min_value: opt_int(m, "minValue", &path)?,
        max_value: opt_int(m, "maxValue", &path)?,
        min_length: opt_int(m, "minLength", &path)?,
        max_length: opt_int(m, "maxLength", &path)?,
        description,
    })
}

fn check_resource_shape(r: &Value, path: &str) -> Result<(), ArmError> {
    let Value::Object(m) = r else {
        return Err(structure(
            path,
            format!("a resource must be an object, got {}", type_name(r)),
        ));
    };
    for key in ["type", "name"] {
        match get_ci(m, key) {
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(structure(
                    format!("{path}.{key}"),
                    format!("expected a string, got {}", type_name(other)),
                ))
            }
            None => return Err(structure(path, format!("a resource must have a '{key}'"))),
        }
    }
    match get_ci(m, "dependsOn") {
        None | Some(Value::Null) | Some(Value::Array(_)) => {}
        Some(other) => {
            return Err(structure(
                format!("{path}.dependsOn"),
                format!("expected an array, got {}", type_name(other)),
            ))
        }
    }
    match get_ci(m, "copy") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(structure(
                format!("{path}.copy"),
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    }
    match get_ci(m, "resources") {
        None | Some(Value::Null) => {}
        Some(Value::Array(children)) => {
            for (i, c) in children.iter().enumerate() {
                check_resource_shape(c, &format!("{path}.resources[{i}]"))?;
            }
        }
        Some(other) => {
            return Err(structure(
                format!("{path}.resources"),
                format!("expected an array, got {}", type_name(other)),
            ))
        }
    }
    Ok(())
}

/// Parses a parameter file into name → value. Accepts the `azuredeploy.parameters.json` shape
/// (`{"parameters": {"x": {"value": ...}}}`) and a plain `{"x": ...}` object.
pub fn parse_parameters(json: &str) -> Result<Map<String, Value>, ArmError> {
    if json.len() > limits::TEMPLATE_BYTES {
        return Err(structure(
            "(parameters file)",
            format!(
                "the file is {} bytes; Azure accepts at most {} (4 MB)",
                json.len(),
                limits::TEMPLATE_BYTES
            ),
        ));
    }
    let doc = parse_document(json, "parameters file")?;
    let Value::Object(top) = doc else {
        return Err(structure(
            "(parameters file)",
            format!("expected a JSON object, got {}", type_name(&doc)),
        ));
    };
    let entry_shaped = |m: &Map<String, Value>| {
        !m.is_empty()
            && m.values().all(|v| {
                v.as_object().is_some_and(|o| {
                    o.len() == 1
                        && (get_ci(o, "value").is_some() || get_ci(o, "reference").is_some())
                })
            })
    };
    // 1. the full file: {"$schema", "contentVersion", "parameters": {"x": {"value": ..}}}
    // 2. what `az deployment group create --parameters @file` also takes: {"x": {"value": ..}}
    // 3. plain name -> value: {"x": ..}
    let ps = match get_ci(&top, "parameters") {
        Some(Value::Object(ps))
            if get_ci(&top, "$schema").is_some()
                || get_ci(&top, "contentVersion").is_some()
                || entry_shaped(ps) =>
        {
            ps
        }
        _ if entry_shaped(&top) => &top,
        _ => return Ok(top),
    };
    let mut out = Map::new();
    for (name, entry) in ps {
        let path = format!("parameters.{name}");
        let Value::Object(e) = entry else {
            return Err(structure(
                path,
                format!(
                    "expected an object with a 'value', got {}",
                    type_name(entry)
                ),
            ));
        };
        if let Some(v) = get_ci(e, "value") {
            out.insert(name.clone(), v.clone());
        } else if get_ci(e, "reference").is_some() {
            return Err(structure(
                format!("{path}.reference"),
                "Key Vault references are not supported; give a 'value'",
            ));
        } else {
            return Err(structure(path, "a parameter entry needs a 'value'"));
        }
    }
    Ok(out)
}
