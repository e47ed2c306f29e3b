//! Evaluation of template values: walks JSON, evaluates `[...]` expressions, resolves parameters
//! and variables lazily (so declaration order does not matter, and cycles are reported), and
//! implements the functions that need the deployment's context.

use crate::deployment::{DeploymentContext, ReferenceResolver};
use crate::expr::{classify, parse, Expr, StringForm};
use crate::functions;
use crate::json::{get_ci, show, type_name};
use crate::template::{ParameterDef, ParameterType, Template};
use crate::ArmError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Where a value is being evaluated; decides which functions are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A parameter's `defaultValue`.
    ParameterDefault,
    /// A variable.
    Variable,
    /// A resource's name, type, apiVersion, condition, dependsOn or copy count: needed before
    /// anything is deployed, so `reference()` cannot be used.
    ResourceHeader,
    /// The body of a resource (properties, sku, tags, ...).
    ResourceBody,
    /// An output value.
    Output,
    /// The output of a user-defined function.
    UserFunction,
}

impl Place {
    fn describe(self) -> &'static str {
        match self {
            Place::ParameterDefault => "parameter default values",
            Place::Variable => "variables",
            Place::ResourceHeader => {
                "a resource's name, type, apiVersion, condition, dependsOn or copy count"
            }
            Place::ResourceBody => "resource bodies",
            Place::Output => "outputs",
            Place::UserFunction => "user-defined functions",
        }
    }
}

/// The per-evaluation environment: place, enclosing copy loops (innermost last), resolver.
#[derive(Clone)]
pub(crate) struct Env<'a> {
    pub place: Place,
    pub copy: Vec<(String, i64)>,
    pub resolver: Option<&'a dyn ReferenceResolver>,
    /// Arguments of the user-defined function being evaluated (what `parameters()` means there).
    pub fn_args: Option<&'a Map<String, Value>>,
}

impl<'a> Env<'a> {
    pub fn new(place: Place) -> Env<'a> {
        Env {
            place,
            copy: Vec::new(),
            resolver: None,
            fn_args: None,
        }
    }
}

enum Slot {
    InProgress,
    Done(Value),
}

enum VarDef {
    Plain(Value),
    /// `variables.copy[i]`: `{name, count, input}` producing an array.
    Copy(Value, usize),
}

/// A resource known to the template, for `reference('name')` and dependency lookups.
#[derive(Debug, Clone)]
pub(crate) struct KnownResource {
    pub name: String,
    pub id: String,
}

/// Parameters, variables and context of one deployment; the evaluator works against this.
pub(crate) struct Scope {
    pub template: Template,
    pub ctx: DeploymentContext,
    supplied: Map<String, Value>,
    params: Mutex<HashMap<String, Slot>>,
    var_defs: HashMap<String, (String, VarDef)>,
    vars: Mutex<HashMap<String, Slot>>,
    pub known: Vec<KnownResource>,
    pub secrets: Vec<String>,
}

/// Locks a memo table; a poisoned lock only means another evaluation panicked mid-way, and the
/// table (plain values) is still consistent.
fn lock(m: &Mutex<HashMap<String, Slot>>) -> MutexGuard<'_, HashMap<String, Slot>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lc(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl Scope {
    /// Checks the supplied parameters against the declarations, then evaluates every parameter
    /// and variable (lazily, in dependency order).
    pub fn new(
        template: Template,
        supplied: &Map<String, Value>,
        ctx: DeploymentContext,
    ) -> Result<Scope, ArmError> {
        for name in supplied.keys() {
            if !template
                .parameters
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(name))
            {
                let declared: Vec<&str> = template
                    .parameters
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                return Err(ArmError::UnknownParameter {
                    path: format!("parameters.{name}"),
                    declared: declared.join(", "),
                });
            }
        }
        let mut var_defs = HashMap::new();
        for (name, v) in &template.variables {
            if name.eq_ignore_ascii_case("copy") {
                let Value::Array(entries) = v else {
                    return Err(ArmError::Structure {
                        path: "variables.copy".into(),
                        message: format!("expected an array of copy loops, got {}", type_name(v)),
                    });
                };
                for (i, e) in entries.iter().enumerate() {
                    let vname = e
                        .as_object()
                        .and_then(|o| get_ci(o, "name"))
                        .and_then(|n| n.as_str())
                        .ok_or_else(|| ArmError::Structure {
                            path: format!("variables.copy[{i}].name"),
                            message: "a copy loop needs a string 'name'".into(),
                        })?;
                    if var_defs.contains_key(&lc(vname)) {
                        return Err(duplicate_variable(
                            &format!("variables.copy[{i}].name"),
                            vname,
                        ));
                    }
                    var_defs.insert(lc(vname), (vname.to_string(), VarDef::Copy(e.clone(), i)));
                }
            } else {
                if var_defs.contains_key(&lc(name)) {
                    return Err(duplicate_variable(&format!("variables.{name}"), name));
                }
                var_defs.insert(lc(name), (name.clone(), VarDef::Plain(v.clone())));
            }
        }
        let scope = Scope {
            template,
            ctx,
            supplied: supplied.clone(),
            params: Mutex::new(HashMap::new()),
            var_defs,
            vars: Mutex::new(HashMap::new()),
            known: Vec::new(),
            secrets: Vec::new(),
        };
        let names: Vec<String> = scope
            .template
            .parameters
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for name in &names {
            scope
                .param(name, &format!("parameters.{name}"))
                .map_err(|e| e.redact(&scope.current_secrets()))?;
        }
        let mut scope = scope;
        scope.secrets = scope.current_secrets();
        // template order: plain variables, then the variables of `variables.copy`
        let mut copy_names: Vec<(usize, String)> = scope
            .var_defs
            .values()
            .filter_map(|(n, d)| match d {
                VarDef::Copy(_, i) => Some((*i, n.clone())),
                VarDef::Plain(_) => None,
            })
            .collect();
        copy_names.sort();
        let var_names: Vec<String> = scope
            .template
            .variables
            .keys()
            .filter(|k| !k.eq_ignore_ascii_case("copy"))
            .cloned()
            .chain(copy_names.into_iter().map(|(_, n)| n))
            .collect();
        for name in &var_names {
            scope
                .variable(name, &format!("variables.{name}"))
                .map_err(|e| e.redact(&scope.secrets))?;
        }
        Ok(scope)
    }

    /// String leaves of every securestring / secureObject value known so far (supplied or
    /// resolved): what errors and Debug output must never show.
    fn current_secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in self
            .template
            .parameters
            .iter()
            .filter(|p| p.kind.is_secure())
        {
            if let Some((_, v)) = self
                .supplied
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p.name))
            {
                crate::secret::collect_secrets(v, &mut out);
            }
            if let Some(Slot::Done(v)) = lock(&self.params).get(&lc(&p.name)) {
                crate::secret::collect_secrets(v, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The resolved value of a parameter (by case-insensitive name).
    pub fn param(&self, name: &str, path: &str) -> Result<Value, ArmError> {
        let key = lc(name);
        let def = self
            .template
            .parameters
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ArmError::UndefinedName {
                path: path.to_string(),
                kind: "parameter",
                name: name.to_string(),
            })?;
        match lock(&self.params).get(&key) {
            Some(Slot::Done(v)) => return Ok(v.clone()),
            Some(Slot::InProgress) => {
                return Err(ArmError::CircularReference {
                    path: format!("parameters.{}.defaultValue", def.name),
                    chain: format!(
                        "parameter '{}' depends on itself through its default value",
                        def.name
                    ),
                })
            }
            None => {}
        }
        lock(&self.params).insert(key.clone(), Slot::InProgress);
        let result = self.resolve_param(def);
        match result {
            Ok(v) => {
                lock(&self.params).insert(key, Slot::Done(v.clone()));
                Ok(v)
            }
            Err(e) => {
                lock(&self.params).remove(&key);
                Err(e)
            }
        }
    }

    fn resolve_param(&self, def: &ParameterDef) -> Result<Value, ArmError> {
        let path = format!("parameters.{}", def.name);
        let supplied = self
            .supplied
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&def.name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null());
        let raw = match (supplied, &def.default_value) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => self.eval_value(
                d,
                &format!("{path}.defaultValue"),
                &Env::new(Place::ParameterDefault),
            )?,
            (None, None) => return Err(ArmError::MissingParameter { path }),
        };
        let value = coerce_parameter(def, raw, &path)?;
        check_parameter_constraints(def, &value, &path)?;
        Ok(value)
    }

    /// The evaluated value of a variable (by case-insensitive name).
    pub fn variable(&self, name: &str, path: &str) -> Result<Value, ArmError> {
        let key = lc(name);
        let (decl, def) = self
            .var_defs
            .get(&key)
            .ok_or_else(|| ArmError::UndefinedName {
                path: path.to_string(),
                kind: "variable",
                name: name.to_string(),
            })?;
        match lock(&self.vars).get(&key) {
            Some(Slot::Done(v)) => return Ok(v.clone()),
            Some(Slot::InProgress) => {
                return Err(ArmError::CircularReference {
                    path: format!("variables.{decl}"),
                    chain: format!("variable '{decl}' depends on itself"),
                })
            }
            None => {}
        }
        lock(&self.vars).insert(key.clone(), Slot::InProgress);
        let env = Env::new(Place::Variable);
        let result = match def {
            VarDef::Plain(v) => self.eval_value(v, &format!("variables.{decl}"), &env),
            VarDef::Copy(c, i) => self
                .eval_copy_entry(c, &format!("variables.copy[{i}]"), &env)
                .map(|(_, v)| v),
        };
        match result {
            Ok(v) => {
                lock(&self.vars).insert(key, Slot::Done(v.clone()));
                Ok(v)
            }
            Err(e) => {
                lock(&self.vars).remove(&key);
                Err(e)
            }
        }
    }

    /// Evaluates a `{name, count, input}` copy loop (variables or properties) into (name, array).
    fn eval_copy_entry(
        &self,
        entry: &Value,
        path: &str,
        env: &Env,
    ) -> Result<(String, Value), ArmError> {
        let Value::Object(m) = entry else {
            return Err(ArmError::Structure {
                path: path.to_string(),
                message: format!("a copy loop must be an object, got {}", type_name(entry)),
            });
        };
        let name = match get_ci(m, "name")
            .map(|n| self.eval_value(n, &format!("{path}.name"), env))
            .transpose()?
        {
            Some(Value::String(s)) => s,
            _ => {
                return Err(ArmError::Structure {
                    path: format!("{path}.name"),
                    message: "a copy loop needs a string 'name'".into(),
                })
            }
        };
        let count = self.copy_count(m, path, env)?;
        let input = get_ci(m, "input").ok_or_else(|| ArmError::Structure {
            path: path.to_string(),
            message: "a copy loop needs an 'input'".into(),
        })?;
        let mut items = Vec::with_capacity(count as usize);
        for i in 0..count {
            let mut inner = env.clone();
            inner.copy.push((name.clone(), i));
            items.push(self.eval_value(input, &format!("{path}.input"), &inner)?);
        }
        Ok((name, Value::Array(items)))
    }

    /// Evaluates and checks a copy loop's `count` (0..=800 as in Azure).
    pub fn copy_count(
        &self,
        m: &Map<String, Value>,
        path: &str,
        env: &Env,
    ) -> Result<i64, ArmError> {
        let cpath = format!("{path}.count");
        let raw = get_ci(m, "count").ok_or_else(|| ArmError::Structure {
            path: path.to_string(),
            message: "a copy loop needs a 'count'".into(),
        })?;
        let v = self.eval_value(raw, &cpath, env)?;
        let n = match &v {
            Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default(),
            Value::String(s) if s.parse::<i64>().is_ok() => s.parse().unwrap_or_default(),
            other => {
                return Err(ArmError::Type {
                    path: cpath,
                    expected: "int".into(),
                    actual: type_name(other).into(),
                })
            }
        };
        if !(0..=800).contains(&n) {
            return Err(ArmError::OutOfRange {
                path: cpath,
                message: format!("copy count {n} is outside 0..800"),
            });
        }
        Ok(n)
    }

    /// Evaluates a JSON value: every string that is an expression is evaluated; object keys may be
    /// expressions too; `"copy": [...]` members of objects expand into arrays (property copy).
    pub fn eval_value(&self, v: &Value, path: &str, env: &Env) -> Result<Value, ArmError> {
        match v {
            Value::String(s) => self.eval_string(s, path, env),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    out.push(self.eval_value(x, &format!("{path}[{i}]"), env)?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    if k.eq_ignore_ascii_case("copy")
                        && x.is_array()
                        && env.place != Place::ResourceHeader
                    {
                        for (i, entry) in x.as_array().into_iter().flatten().enumerate() {
                            let (name, arr) =
                                self.eval_copy_entry(entry, &format!("{path}.copy[{i}]"), env)?;
                            out.insert(name, arr);
                        }
                        continue;
                    }
                    let key = match classify(k) {
                        StringForm::Literal(l) => l.into_owned(),
                        StringForm::Expression(_) => {
                            match self.eval_string(k, &format!("{path}.{k}"), env)? {
                                Value::String(s) => s,
                                other => {
                                    return Err(ArmError::Type {
                                        path: format!("{path}.{k}"),
                                        expected: "string (a property name)".into(),
                                        actual: type_name(&other).into(),
                                    })
                                }
                            }
                        }
                    };
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    out.insert(key, self.eval_value(x, &child, env)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluates one template string (literal, `[[` escape or `[expression]`).
    pub fn eval_string(&self, s: &str, path: &str, env: &Env) -> Result<Value, ArmError> {
        match classify(s) {
            StringForm::Literal(l) => Ok(Value::String(l.into_owned())),
            StringForm::Expression(inner) => {
                let chars = s.chars().count();
                if chars > crate::template::limits::EXPRESSION_CHARS {
                    return Err(ArmError::OutOfRange {
                        path: path.to_string(),
                        message: format!(
                            "the expression is {chars} characters long; Azure allows at most {}",
                            crate::template::limits::EXPRESSION_CHARS
                        ),
                    });
                }
                let e = parse(inner).map_err(|e| ArmError::Syntax {
                    path: path.to_string(),
                    expression: s.to_string(),
                    position: e.position,
                    message: e.message,
                })?;
                self.eval_expr(&e, path, env)
            }
        }
    }

    pub(crate) fn eval_expr(&self, e: &Expr, path: &str, env: &Env) -> Result<Value, ArmError> {
        match e {
            Expr::Str(s) => Ok(Value::String(s.clone())),
            Expr::Int(i) => Ok(Value::from(*i)),
            Expr::Prop { base, name, .. } => {
                let b = self.eval_expr(base, path, env)?;
                match &b {
                    Value::Object(m) => get_ci(m, name).cloned().ok_or_else(|| {
                        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                        ArmError::Access {
                            path: path.to_string(),
                            message: format!(
                                "the object has no property '{name}' (properties: {})",
                                if keys.is_empty() {
                                    "none".to_string()
                                } else {
                                    keys.join(", ")
                                }
                            ),
                        }
                    }),
                    other => Err(ArmError::Access {
                        path: path.to_string(),
                        message: format!(
                            "cannot read property '{name}' of a value of type {}",
                            type_name(other)
                        ),
                    }),
                }
            }
            Expr::Index { base, index, .. } => {
                let b = self.eval_expr(base, path, env)?;
                let i = self.eval_expr(index, path, env)?;
                match (&b, &i) {
                    (Value::Array(a), Value::Number(n)) if n.is_i64() => {
                        let k = n.as_i64().unwrap_or(-1);
                        if k < 0 || k as usize >= a.len() {
                            Err(ArmError::Access {
                                path: path.to_string(),
                                message: format!(
                                    "index {k} is out of range for an array of length {}",
                                    a.len()
                                ),
                            })
                        } else {
                            Ok(a[k as usize].clone())
                        }
                    }
                    (Value::Object(m), Value::String(k)) => {
                        get_ci(m, k).cloned().ok_or_else(|| ArmError::Access {
                            path: path.to_string(),
                            message: format!("the object has no property '{k}'"),
                        })
                    }
                    (b, i) => Err(ArmError::Access {
                        path: path.to_string(),
                        message: format!(
                            "cannot index a value of type {} with a {}",
                            type_name(b),
                            type_name(i)
                        ),
                    }),
                }
            }
            Expr::Call { name, args, .. } => self.call(name, args, path, env),
        }
    }

    fn fn_err(path: &str, name: &str, message: impl Into<String>) -> ArmError {
        ArmError::Function {
            path: path.to_string(),
            function: name.to_string(),
            message: message.into(),
        }
    }

    fn call(&self, name: &str, args: &[Expr], path: &str, env: &Env) -> Result<Value, ArmError> {
        let lname = lc(name);
        if lname == "if" {
            if args.len() != 3 {
                return Err(Self::fn_err(
                    path,
                    name,
                    format!("expects 3 arguments, got {}", args.len()),
                ));
            }
            let cond = match self.eval_expr(&args[0], path, env)? {
                Value::Bool(b) => b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                other => {
                    return Err(Self::fn_err(
                        path,
                        name,
                        format!("the condition must be a bool, got {}", type_name(&other)),
                    ))
                }
            };
            return self.eval_expr(if cond { &args[1] } else { &args[2] }, path, env);
        }
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval_expr(a, path, env)?);
        }
        match lname.as_str() {
            "parameters" => {
                let n = one_string(&vals).map_err(|m| Self::fn_err(path, name, m))?;
                match env.fn_args {
                    Some(args) => get_ci(args, n).cloned().ok_or_else(|| ArmError::UndefinedName {
                        path: path.to_string(),
                        kind: "function parameter",
                        name: n.to_string(),
                    }),
                    None => self.param(n, path),
                }
            }
            n if n.contains('.') => self.call_user_function(name, vals, path, env),
            "variables" => {
                if matches!(env.place, Place::ParameterDefault | Place::UserFunction) {
                    return Err(ArmError::NotAllowedHere {
                        path: path.to_string(),
                        function: name.to_string(),
                        place: env.place.describe(),
                    });
                }
                let n = one_string(&vals).map_err(|m| Self::fn_err(path, name, m))?;
                self.variable(n, path)
            }
            "copyindex" => self.copy_index(&vals, path, name, env),
            "resourceid" => self.resource_id_fn(&vals, 2).map_err(|m| Self::fn_err(path, name, m)),
            "subscriptionresourceid" => self.resource_id_fn(&vals, 1).map_err(|m| Self::fn_err(path, name, m)),
            "tenantresourceid" => self.resource_id_fn(&vals, 0).map_err(|m| Self::fn_err(path, name, m)),
            "resourcegroup" => {
                no_args(&vals).map_err(|m| Self::fn_err(path, name, m))?;
                Ok(json!({
                    "id": format!("/subscriptions/{}/resourceGroups/{}", self.ctx.subscription_id, self.ctx.resource_group),
                    "name": self.ctx.resource_group,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": self.ctx.location,
                    "properties": {"provisioningState": "Succeeded"},
                }))
            }
            "subscription" => {
                no_args(&vals).map_err(|m| Self::fn_err(path, name, m))?;
                Ok(json!({
                    "id": format!("/subscriptions/{}", self.ctx.subscription_id),
                    "subscriptionId": self.ctx.subscription_id,
                }))
            }
            "deployment" => {
                no_args(&vals).map_err(|m| Self::fn_err(path, name, m))?;
                let mut template = Map::new();
                if let Some(s) = &self.template.schema {
                    template.insert("$schema".into(), Value::String(s.clone()));
                }
                if let Some(c) = &self.template.content_version {
                    template.insert("contentVersion".into(), Value::String(c.clone()));
                }
                Ok(json!({
                    "name": self.ctx.deployment_name,
                    "properties": {"template": template, "mode": "Incremental", "provisioningState": "Accepted"},
                }))
            }
            "reference" => self.reference(&vals, path, name, env),
            n if n.starts_with("list") && n != "list" => Err(Self::fn_err(
                path,
                name,
                "list*() functions (secrets of deployed resources) are not supported by this engine",
            )),
            _ => match functions::call_pure(&lname, vals) {
                None => Err(ArmError::UnknownFunction { path: path.to_string(), name: name.to_string() }),
                Some(Ok(v)) => Ok(v),
                Some(Err(m)) => Err(Self::fn_err(path, name, m)),
            },
        }
    }

    /// Calls a user-defined function: arguments are type-checked against its parameters, its
    /// output is evaluated with `parameters()` bound to them and checked against its output type.
    fn call_user_function(
        &self,
        name: &str,
        vals: Vec<Value>,
        path: &str,
        env: &Env,
    ) -> Result<Value, ArmError> {
        if env.place == Place::UserFunction {
            return Err(ArmError::NotAllowedHere {
                path: path.to_string(),
                function: name.to_string(),
                place: "user-defined functions (they cannot call each other)",
            });
        }
        let (ns, member) = name.split_once('.').unwrap_or(("", name));
        let f = self
            .template
            .functions
            .iter()
            .find(|f| f.namespace.eq_ignore_ascii_case(ns) && f.name.eq_ignore_ascii_case(member))
            .ok_or_else(|| ArmError::UnknownFunction {
                path: path.to_string(),
                name: name.to_string(),
            })?;
        if vals.len() != f.parameters.len() {
            return Err(Self::fn_err(
                path,
                name,
                format!(
                    "expects {} argument(s), got {}",
                    f.parameters.len(),
                    vals.len()
                ),
            ));
        }
        let mut args = Map::new();
        for (i, ((pname, ptype), v)) in f.parameters.iter().zip(vals).enumerate() {
            if !ptype.matches(&v) {
                return Err(Self::fn_err(
                    path,
                    name,
                    format!(
                        "argument {} ('{pname}') must be {}, got {}",
                        i + 1,
                        ptype.name(),
                        type_name(&v)
                    ),
                ));
            }
            args.insert(pname.clone(), v);
        }
        let inner = Env {
            place: Place::UserFunction,
            copy: Vec::new(),
            resolver: None,
            fn_args: Some(&args),
        };
        let out = self.eval_value(&f.output, &format!("{}.output.value", f.path), &inner)?;
        if !f.output_type.matches(&out) {
            return Err(ArmError::Type {
                path: format!("{}.output.value", f.path),
                expected: f.output_type.name().to_string(),
                actual: type_name(&out).to_string(),
            });
        }
        Ok(out)
    }

    fn copy_index(
        &self,
        vals: &[Value],
        path: &str,
        name: &str,
        env: &Env,
    ) -> Result<Value, ArmError> {
        let (loop_name, offset) = match vals {
            [] => (None, 0),
            [Value::Number(n)] if n.is_i64() => (None, n.as_i64().unwrap_or(0)),
            [Value::String(s)] => (Some(s.as_str()), 0),
            [Value::String(s), Value::Number(n)] if n.is_i64() => {
                (Some(s.as_str()), n.as_i64().unwrap_or(0))
            }
            _ => {
                return Err(Self::fn_err(
                    path,
                    name,
                    "expects ([loopName], [offset]) with a string name and an int offset",
                ))
            }
        };
        let found = match loop_name {
            None => env.copy.last(),
            Some(l) => env
                .copy
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(l)),
        };
        match found {
            Some((_, i)) => Ok(Value::from(i + offset)),
            None if env.copy.is_empty() => Err(ArmError::NotAllowedHere {
                path: path.to_string(),
                function: name.to_string(),
                place: "places outside a copy loop",
            }),
            None => Err(Self::fn_err(
                path,
                name,
                format!(
                    "no enclosing copy loop is named '{}' (enclosing: {})",
                    loop_name.unwrap_or_default(),
                    env.copy
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// resourceId / subscriptionResourceId / tenantResourceId. `scopes` is how many leading
    /// scope arguments (subscription id, resource group name) the function accepts.
    fn resource_id_fn(&self, vals: &[Value], scopes: usize) -> Result<Value, String> {
        let mut strs = Vec::with_capacity(vals.len());
        for (i, v) in vals.iter().enumerate() {
            match v {
                Value::String(s) => strs.push(s.as_str()),
                other => {
                    return Err(format!(
                        "argument {} must be a string, got {}",
                        i + 1,
                        type_name(other)
                    ))
                }
            }
        }
        let k = strs
            .iter()
            .position(|s| s.contains('/'))
            .ok_or("no resource type given (the type is the first argument containing '/', e.g. 'Microsoft.Network/virtualNetworks')")?;
        if k > scopes {
            return Err(format!(
                "the resource type must be argument {} at the latest; '{}' is not a resource type",
                scopes + 1,
                strs[0]
            ));
        }
        let (sub, rg) = match (scopes, k) {
            (2, 2) => (strs[0].to_string(), Some(strs[1].to_string())),
            (2, 1) => (self.ctx.subscription_id.clone(), Some(strs[0].to_string())),
            (2, 0) => (
                self.ctx.subscription_id.clone(),
                Some(self.ctx.resource_group.clone()),
            ),
            (1, 1) => (strs[0].to_string(), None),
            (1, 0) => (self.ctx.subscription_id.clone(), None),
            _ => (String::new(), None),
        };
        let names: Vec<&str> = strs[k + 1..].iter().flat_map(|n| n.split('/')).collect();
        let body = type_and_names(strs[k], &names)?;
        Ok(Value::String(match (scopes, rg) {
            (0, _) => format!("/providers/{body}"),
            (_, Some(rg)) => format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{body}"),
            (_, None) => format!("/subscriptions/{sub}/providers/{body}"),
        }))
    }

    /// The full id of a resource of this deployment's resource group.
    pub fn resource_id(&self, resource_type: &str, name: &str) -> Result<String, String> {
        let names: Vec<&str> = name.split('/').collect();
        Ok(format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{}",
            self.ctx.subscription_id,
            self.ctx.resource_group,
            type_and_names(resource_type, &names)?
        ))
    }

    /// Turns a `reference()` / `dependsOn` target (resource id, `type/name` or a plain resource
    /// name of this template) into a resource id.
    pub fn target_to_id(&self, target: &str) -> Result<String, String> {
        if target.starts_with('/') {
            return Ok(target.to_string());
        }
        if target.contains('/') {
            let segs: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
            if segs.len() < 3 || segs.len().is_multiple_of(2) {
                return Err(format!("'{target}' is neither a resource id, a 'Namespace/type/name' nor a resource name"));
            }
            let mut types = vec![segs[0]];
            let mut names = Vec::new();
            for pair in segs[1..].chunks(2) {
                types.push(pair[0]);
                names.push(pair[1]);
            }
            return self.resource_id(&types.join("/"), &names.join("/"));
        }
        let matches: Vec<&KnownResource> = self
            .known
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case(target))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(format!(
                "no resource named '{target}' is defined in the template"
            )),
            many => Err(format!(
                "the name '{target}' is ambiguous: {}",
                many.iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn reference(
        &self,
        vals: &[Value],
        path: &str,
        name: &str,
        env: &Env,
    ) -> Result<Value, ArmError> {
        if !matches!(env.place, Place::ResourceBody | Place::Output) {
            return Err(ArmError::NotAllowedHere {
                path: path.to_string(),
                function: name.to_string(),
                place: env.place.describe(),
            });
        }
        let target = match vals.first() {
            Some(Value::String(s)) if vals.len() <= 3 => s,
            _ => {
                return Err(Self::fn_err(
                    path,
                    name,
                    "expects (resourceNameOrId, [apiVersion], ['Full'])",
                ))
            }
        };
        for (i, v) in vals.iter().enumerate().skip(1) {
            if !v.is_string() {
                return Err(Self::fn_err(
                    path,
                    name,
                    format!("argument {} must be a string, got {}", i + 1, type_name(v)),
                ));
            }
        }
        let full = match vals.get(2).and_then(Value::as_str) {
            None => false,
            Some(s) if s.eq_ignore_ascii_case("full") => true,
            Some(s) => {
                return Err(Self::fn_err(
                    path,
                    name,
                    format!("the third argument must be 'Full', got '{s}'"),
                ))
            }
        };
        let id = self
            .target_to_id(target)
            .map_err(|m| Self::fn_err(path, name, m))?;
        let resolver = env.resolver.ok_or_else(|| ArmError::ReferenceUnavailable {
            path: path.to_string(),
            resource_id: id.clone(),
        })?;
        let got = if full {
            resolver.reference_full(&id)
        } else {
            resolver.reference(&id)
        };
        got.ok_or(ArmError::ReferenceUnavailable {
            path: path.to_string(),
            resource_id: id,
        })
    }
}

fn duplicate_variable(path: &str, name: &str) -> ArmError {
    ArmError::Structure {
        path: path.to_string(),
        message: format!(
            "variable '{name}' is declared more than once (names are case-insensitive)"
        ),
    }
}

/// `Namespace/t1/t2` + `[n1, n2]` → `Namespace/t1/n1/t2/n2`, checking the counts match.
fn type_and_names(resource_type: &str, names: &[&str]) -> Result<String, String> {
    let t = resource_type.trim_matches('/');
    let segs: Vec<&str> = t.split('/').collect();
    if segs.len() < 2 || segs.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "'{resource_type}' is not a resource type (expected 'Namespace/type[/childType...]')"
        ));
    }
    if names.len() != segs.len() - 1 || names.iter().any(|n| n.is_empty()) {
        return Err(format!(
            "resource type '{t}' needs {} name segment(s), got {}",
            segs.len() - 1,
            names.iter().filter(|n| !n.is_empty()).count()
        ));
    }
    let mut out = segs[0].to_string();
    for (ty, n) in segs[1..].iter().zip(names) {
        out.push('/');
        out.push_str(ty);
        out.push('/');
        out.push_str(n);
    }
    Ok(out)
}

fn one_string(vals: &[Value]) -> Result<&str, String> {
    match vals {
        [Value::String(s)] => Ok(s),
        [other] => Err(format!(
            "argument 1 must be a string, got {}",
            type_name(other)
        )),
        _ => Err(format!("expects 1 argument, got {}", vals.len())),
    }
}

fn no_args(vals: &[Value]) -> Result<(), String> {
    if vals.is_empty() {
        Ok(())
    } else {
        Err(format!("expects no arguments, got {}", vals.len()))
    }
}

/// Applies the declared type: accepts what Azure accepts ("true"/"false" strings for bool,
/// digit strings for int) and rejects the rest naming both types.
fn coerce_parameter(def: &ParameterDef, v: Value, path: &str) -> Result<Value, ArmError> {
    let wrong = |v: &Value| ArmError::Type {
        path: path.to_string(),
        expected: def.kind.name().to_string(),
        actual: if def.kind.is_secure() {
            type_name(v).to_string()
        } else {
            format!("{} {}", type_name(v), show(v))
        },
    };
    match def.kind {
        ParameterType::String | ParameterType::SecureString => match v {
            Value::String(_) => Ok(v),
            other => Err(wrong(&other)),
        },
        ParameterType::Int => match &v {
            Value::Number(n) if n.is_i64() => Ok(v),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                Ok(Value::from(s.trim().parse::<i64>().unwrap_or(0)))
            }
            other => Err(wrong(other)),
        },
        ParameterType::Bool => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(wrong(other)),
        },
        ParameterType::Array => match v {
            Value::Array(_) => Ok(v),
            other => Err(wrong(&other)),
        },
        ParameterType::Object | ParameterType::SecureObject => match v {
            Value::Object(_) => Ok(v),
            other => Err(wrong(&other)),
        },
    }
}

fn allowed_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Number(_), Value::String(s)) | (Value::String(s), Value::Number(_)) => {
            let n = if a.is_number() { a } else { b };
            s.trim().parse::<i64>().ok().map(Value::from).as_ref() == Some(n)
        }
        _ => a == b,
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_parameter_constraints(def: &ParameterDef, v: &Value, path: &str) -> Result<(), ArmError> {
    let shown = |v: &Value| {
        if def.kind.is_secure() {
            "(secure value)".to_string()
        } else {
            show(v)
        }
    };
    if let Some(allowed) = &def.allowed_values {
        let list = allowed.iter().map(plain).collect::<Vec<_>>().join(", ");
        let items: Vec<&Value> = match (def.kind, v) {
            (ParameterType::Array, Value::Array(a)) => a.iter().collect(),
            _ => vec![v],
        };
        for item in items {
            if !allowed.iter().any(|a| allowed_eq(a, item)) {
                return Err(ArmError::NotAllowed {
                    path: path.to_string(),
                    value: shown(item),
                    allowed: list,
                });
            }
        }
    }
    if let Some(n) = v.as_i64() {
        if let Some(min) = def.min_value {
            if n < min {
                return Err(ArmError::OutOfRange {
                    path: path.to_string(),
                    message: format!("value {} is less than the minimum value {min}", shown(v)),
                });
            }
        }
        if let Some(max) = def.max_value {
            if n > max {
                return Err(ArmError::OutOfRange {
                    path: path.to_string(),
                    message: format!("value {} is greater than the maximum value {max}", shown(v)),
                });
            }
        }
    }
    let len = match v {
        Value::String(s) => Some(s.chars().count() as i64),
        Value::Array(a) => Some(a.len() as i64),
        _ => None,
    };
    if let Some(len) = len {
        if let Some(min) = def.min_length {
            if len < min {
                return Err(ArmError::OutOfRange {
                    path: path.to_string(),
                    message: format!("length {len} is less than the minimum length {min}"),
                });
            }
        }
        if let Some(max) = def.max_length {
            if len > max {
                return Err(ArmError::OutOfRange {
                    path: path.to_string(),
                    message: format!("length {len} is greater than the maximum length {max}"),
                });
            }
        }
    }
    Ok(())
}
