//! Evaluation of template values: walks JSON, evaluates `[...]` expressions, resolves parameters
//! and variables lazily (so declaration order does not matter, and cycles are reported), and
//! implements the functions that need the deployment's context.

use crate::budget::{json_str_len, measure, Budget, DepthGuard, Exceeded, Size, MAX_VALUE_BYTES};
use crate::deployment::{DeploymentContext, ReferenceResolver};
use crate::expr::{classify, parse, Expr, StringForm};
use crate::functions::{self, Failure};
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

/// The per-evaluation environment: place, enclosing copy loops (innermost last), resolver, and
/// the budget the evaluation spends.
#[derive(Clone)]
pub(crate) struct Env<'a> {
    pub place: Place,
    pub copy: Vec<(String, i64)>,
    pub resolver: Option<&'a dyn ReferenceResolver>,
    /// Arguments of the user-defined function being evaluated (what `parameters()` means there).
    pub fn_args: Option<&'a Map<String, Value>>,
    /// Work and recursion counters of the evaluation this environment belongs to.
    pub budget: &'a Budget,
}

impl<'a> Env<'a> {
    pub fn new(place: Place, budget: &'a Budget) -> Env<'a> {
        Env {
            place,
            copy: Vec::new(),
            resolver: None,
            fn_args: None,
            budget,
        }
    }
}

/// The error for a bound of [`crate::budget`] hit at `path`; [`Scope::eval_string`] adds the
/// expression being evaluated.
pub(crate) fn limit(path: &str, e: Exceeded) -> ArmError {
    ArmError::Limit {
        path: path.to_string(),
        expression: String::new(),
        message: e.message(),
    }
}

enum Slot {
    InProgress,
    Done(Value, Size),
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
        let budget = Budget::new();
        for name in &names {
            scope
                .param_sized(name, &format!("parameters.{name}"), &budget)
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
                .variable(name, &format!("variables.{name}"), &budget)
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
            if let Some(Slot::Done(v, _)) = lock(&self.params).get(&lc(&p.name)) {
                crate::secret::collect_secrets(v, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The resolved value of a parameter (by case-insensitive name), once the deployment is bound.
    pub fn param(&self, name: &str, path: &str) -> Result<Value, ArmError> {
        self.param_sized(name, path, &Budget::new()).map(|(v, _)| v)
    }

    /// The resolved value of a parameter and its size; resolving it (or copying the resolved
    /// value) is charged to `budget`.
    fn param_sized(
        &self,
        name: &str,
        path: &str,
        budget: &Budget,
    ) -> Result<(Value, Size), ArmError> {
        let def = self.param_def(name, path)?;
        let key = lc(name);
        match lookup(&self.params, &key, path, budget)? {
            Lookup::Found(v, size) => return Ok((v, size)),
            Lookup::Busy => return Err(circular_parameter(def)),
            Lookup::Absent => {}
        }
        let link = budget.enter_link().map_err(|e| limit(path, e));
        let result = link.and_then(|_link| self.resolve_param(def, budget));
        store(&self.params, key, &result);
        result
    }

    /// The declaration of parameter `name`.
    #[inline(never)]
    fn param_def(&self, name: &str, path: &str) -> Result<&ParameterDef, ArmError> {
        self.template
            .parameters
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ArmError::UndefinedName {
                path: path.to_string(),
                kind: "parameter",
                name: name.to_string(),
            })
    }

    fn resolve_param(
        &self,
        def: &ParameterDef,
        budget: &Budget,
    ) -> Result<(Value, Size), ArmError> {
        let path = format!("parameters.{}", def.name);
        let supplied = self
            .supplied
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&def.name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null());
        let raw = match (supplied, &def.default_value) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => {
                self.eval_value_sized(
                    d,
                    &format!("{path}.defaultValue"),
                    &Env::new(Place::ParameterDefault, budget),
                )?
                .0
            }
            (None, None) => return Err(ArmError::MissingParameter { path }),
        };
        let value = coerce_parameter(def, raw, &path)?;
        check_parameter_constraints(def, &value, &path)?;
        let size = measure(&value)
            .check(|| "the value".to_string())
            .map_err(|e| limit(&path, e))?;
        Ok((value, size))
    }

    /// The evaluated value of a variable (by case-insensitive name) and its size; evaluating it
    /// (or copying the evaluated value) is charged to `budget`.
    fn variable(&self, name: &str, path: &str, budget: &Budget) -> Result<(Value, Size), ArmError> {
        let key = lc(name);
        let (decl, def) = self.var_def(&key, name, path)?;
        match lookup(&self.vars, &key, path, budget)? {
            Lookup::Found(v, size) => return Ok((v, size)),
            Lookup::Busy => return Err(circular_variable(decl)),
            Lookup::Absent => {}
        }
        let link = budget.enter_link().map_err(|e| limit(path, e));
        let result = link.and_then(|_link| self.eval_var_def(decl, def, budget));
        store(&self.vars, key, &result);
        result
    }

    /// The declaration of variable `name` (`key` is its lower-case form).
    #[inline(never)]
    fn var_def(&self, key: &str, name: &str, path: &str) -> Result<(&str, &VarDef), ArmError> {
        self.var_defs
            .get(key)
            .map(|(decl, def)| (decl.as_str(), def))
            .ok_or_else(|| ArmError::UndefinedName {
                path: path.to_string(),
                kind: "variable",
                name: name.to_string(),
            })
    }

    /// Evaluates a variable's declaration.
    #[inline(never)]
    fn eval_var_def(
        &self,
        decl: &str,
        def: &VarDef,
        budget: &Budget,
    ) -> Result<(Value, Size), ArmError> {
        let env = Env::new(Place::Variable, budget);
        match def {
            VarDef::Plain(v) => self.eval_value_sized(v, &format!("variables.{decl}"), &env),
            VarDef::Copy(c, i) => self
                .eval_copy_entry(c, &format!("variables.copy[{i}]"), &env)
                .map(|(_, v, size)| (v, size)),
        }
    }

    /// Evaluates a `{name, count, input}` copy loop (variables or properties) into (name, array,
    /// size of the array).
    fn eval_copy_entry(
        &self,
        entry: &Value,
        path: &str,
        env: &Env,
    ) -> Result<(String, Value, Size), ArmError> {
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
        let (items, size) = self.copy_items(&name, count, input, path, env)?;
        Ok((name, items, size))
    }

    /// The array a copy loop named `name` (empty for an output copy) builds: `input` evaluated
    /// `count` times. The array's size is checked after each element, so nested loops stop as
    /// soon as their result is too large, and each iteration is charged as work.
    pub fn copy_items(
        &self,
        name: &str,
        count: i64,
        input: &Value,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let input_path = format!("{path}.input");
        let mut inner = env.clone();
        inner.copy.push((name.to_string(), 0));
        let mut items = Vec::with_capacity(count.max(0) as usize);
        // '[' now, then per element its bytes and a ',' (the last one stands for the ']')
        let what = copy_loop_name(name);
        let mut size = Size {
            bytes: 1,
            depth: 0,
            nodes: 1,
        };
        for i in 0..count {
            env.budget.step().map_err(|e| limit(path, e))?;
            if let Some(slot) = inner.copy.last_mut() {
                slot.1 = i;
            }
            let (item, item_size) = self.eval_value_sized(input, &input_path, &inner)?;
            items.push(item);
            grow(&mut size, item_size, 1, path, &what)?;
        }
        Ok((Value::Array(items), finish(size, path, &what)?))
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
        self.eval_value_sized(v, path, env).map(|(v, _)| v)
    }

    /// [`Scope::eval_value`], also returning the value's size. Objects and arrays are checked as
    /// their members arrive, every node is charged as work, and every level is a level of
    /// recursion (kept to a small stack frame, as in [`Scope::eval_expr_sized`]).
    pub fn eval_value_sized(
        &self,
        v: &Value,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let _level = self.level(path, env)?;
        match v {
            Value::String(s) => self.eval_string_sized(s, path, env),
            Value::Array(a) => self.eval_array(a, path, env),
            Value::Object(m) => self.eval_object(m, path, env),
            other => Ok(scalar(other)),
        }
    }

    /// Enters one level of recursion and spends a step: the guard of every recursive evaluation.
    fn level<'b>(&self, path: &str, env: &Env<'b>) -> Result<DepthGuard<'b>, ArmError> {
        let guard = env.budget.enter().map_err(|e| limit(path, e))?;
        env.budget.step().map_err(|e| limit(path, e))?;
        Ok(guard)
    }

    /// The elements of an array, evaluated.
    #[inline(never)]
    fn eval_array(&self, a: &[Value], path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        let mut out = Vec::with_capacity(a.len());
        let mut size = Size {
            bytes: 1,
            depth: 0,
            nodes: 1,
        };
        for (i, x) in a.iter().enumerate() {
            let (item, item_size) = self.eval_value_sized(x, &format!("{path}[{i}]"), env)?;
            out.push(item);
            grow(&mut size, item_size, 1, path, "the array")?;
        }
        Ok((Value::Array(out), finish(size, path, "the array")?))
    }

    /// The members of an object, evaluated: names may be expressions, `copy` arrays expand.
    #[inline(never)]
    fn eval_object(
        &self,
        m: &Map<String, Value>,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let mut out = Map::new();
        let mut size = Size {
            bytes: 1,
            depth: 0,
            nodes: 1,
        };
        for (k, x) in m {
            if k.eq_ignore_ascii_case("copy") && x.is_array() && env.place != Place::ResourceHeader
            {
                for (i, entry) in x.as_array().into_iter().flatten().enumerate() {
                    let (name, arr, arr_size) =
                        self.eval_copy_entry(entry, &format!("{path}.copy[{i}]"), env)?;
                    grow(
                        &mut size,
                        member_entry(arr_size),
                        json_str_len(&name) + 2,
                        path,
                        "the object",
                    )?;
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
            let (item, item_size) = self.eval_value_sized(x, &child, env)?;
            grow(
                &mut size,
                member_entry(item_size),
                json_str_len(&key) + 2,
                path,
                "the object",
            )?;
            out.insert(key, item);
        }
        Ok((Value::Object(out), finish(size, path, "the object")?))
    }

    /// Evaluates one template string (literal, `[[` escape or `[expression]`).
    pub fn eval_string(&self, s: &str, path: &str, env: &Env) -> Result<Value, ArmError> {
        self.eval_string_sized(s, path, env).map(|(v, _)| v)
    }

    /// [`Scope::eval_string`], also returning the value's size. Parsing is charged as work, four
    /// units per character (the parser holds the expression as `char`s); a bound hit while
    /// evaluating the expression names it in the error.
    fn eval_string_sized(&self, s: &str, path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        match classify(s) {
            StringForm::Literal(l) => {
                let v = Value::String(l.into_owned());
                let size = measure(&v);
                env.budget.charge(size.cost()).map_err(|e| limit(path, e))?;
                Ok((v, size))
            }
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
                env.budget.charge(4 * chars).map_err(|e| limit(path, e))?;
                let e = parse(inner).map_err(|e| ArmError::Syntax {
                    path: path.to_string(),
                    expression: s.to_string(),
                    position: e.position,
                    message: e.message,
                })?;
                self.eval_expr_sized(&e, path, env)
                    .map_err(|err| match err {
                        ArmError::Limit {
                            path,
                            expression,
                            message,
                        } if expression.is_empty() => ArmError::Limit {
                            path,
                            expression: s.to_string(),
                            message,
                        },
                        other => other,
                    })
            }
        }
    }

    pub(crate) fn eval_expr(&self, e: &Expr, path: &str, env: &Env) -> Result<Value, ArmError> {
        self.eval_expr_sized(e, path, env).map(|(v, _)| v)
    }

    /// Evaluates an expression node, returning the value and its size. Each node is a level of
    /// recursion and a step of work. This and the functions it recurses through keep their stack
    /// frames small (the work of each case lives in a function of its own), because the depth
    /// bound is only as good as the stack each level takes.
    fn eval_expr_sized(&self, e: &Expr, path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        let _level = self.level(path, env)?;
        match e {
            Expr::Call { name, args, .. } => self.call(name, args, path, env),
            Expr::Prop { base, name, .. } => self.eval_member(base, name, path, env),
            Expr::Index { base, index, .. } => self.eval_element(base, index, path, env),
            Expr::Str(s) => self.string_literal(s, path, env),
            Expr::Int(i) => self.int_literal(*i, path, env),
        }
    }

    /// A `'quoted'` literal of an expression.
    #[inline(never)]
    fn string_literal(&self, s: &str, path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        self.charged(Value::String(s.to_string()), path, env)
    }

    /// An integer literal of an expression.
    #[inline(never)]
    fn int_literal(&self, i: i64, path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        self.charged(Value::from(i), path, env)
    }

    /// `base.name`.
    #[inline(never)]
    fn eval_member(
        &self,
        base: &Expr,
        name: &str,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let (b, _) = self.eval_expr_sized(base, path, env)?;
        let v = member(b, name, path)?;
        self.charged(v, path, env)
    }

    /// `base[index]`.
    #[inline(never)]
    fn eval_element(
        &self,
        base: &Expr,
        index: &Expr,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let (b, _) = self.eval_expr_sized(base, path, env)?;
        let (i, _) = self.eval_expr_sized(index, path, env)?;
        let v = element(b, &i, path)?;
        self.charged(v, path, env)
    }

    /// Measures a value taken out of a checked value (or a literal of a checked expression) and
    /// charges it as the copy it is.
    fn charged(&self, v: Value, path: &str, env: &Env) -> Result<(Value, Size), ArmError> {
        let size = measure(&v);
        env.budget.charge(size.cost()).map_err(|e| limit(path, e))?;
        Ok((v, size))
    }

    fn fn_err(path: &str, name: &str, message: impl Into<String>) -> ArmError {
        ArmError::Function {
            path: path.to_string(),
            function: name.to_string(),
            message: message.into(),
        }
    }

    /// Calls a function. Its result is measured: checked against the bounds on values and
    /// charged as work. `if()` evaluates only the branch it takes; `variables()`, `parameters()`
    /// and user functions recurse into evaluation; every other function is [`Scope::apply`].
    fn call(
        &self,
        name: &str,
        args: &[Expr],
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        if name.eq_ignore_ascii_case("if") {
            let branch = self.if_branch(name, args, path, env)?;
            return self.eval_expr_sized(branch, path, env);
        }
        let (vals, sizes) = self.eval_args(args, path, env)?;
        self.call_with(name, vals, sizes, path, env)
    }

    /// The values of a call's arguments, and their sizes.
    #[inline(never)]
    fn eval_args(
        &self,
        args: &[Expr],
        path: &str,
        env: &Env,
    ) -> Result<(Vec<Value>, Vec<Size>), ArmError> {
        let mut vals = Vec::with_capacity(args.len());
        let mut sizes = Vec::with_capacity(args.len());
        for a in args {
            let (v, size) = self.eval_expr_sized(a, path, env)?;
            vals.push(v);
            sizes.push(size);
        }
        Ok((vals, sizes))
    }

    /// Calls function `name` on evaluated arguments.
    #[inline(never)]
    fn call_with(
        &self,
        name: &str,
        vals: Vec<Value>,
        sizes: Vec<Size>,
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        if name.eq_ignore_ascii_case("variables") {
            let n = self.variables_arg(name, &vals, path, env)?;
            self.variable(n, path, env.budget)
        } else if name.eq_ignore_ascii_case("parameters") {
            self.call_parameters(name, &vals, path, env)
        } else {
            self.call_other(name, vals, &sizes, path, env)
        }
    }

    /// `parameters(name)`: a parameter of the template, or inside a user-defined function one of
    /// its arguments.
    #[inline(never)]
    fn call_parameters(
        &self,
        name: &str,
        vals: &[Value],
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let n = one_string(vals).map_err(|m| Self::fn_err(path, name, m))?;
        match env.fn_args {
            Some(args) => {
                let v = function_argument(args, n, path)?;
                self.charged(v, path, env)
            }
            None => self.param_sized(n, path, env.budget),
        }
    }

    /// Any function but `if()`, `variables()` and `parameters()`; its result is measured.
    #[inline(never)]
    fn call_other(
        &self,
        name: &str,
        vals: Vec<Value>,
        sizes: &[Size],
        path: &str,
        env: &Env,
    ) -> Result<(Value, Size), ArmError> {
        let value = if name.contains('.') {
            self.call_user_function(name, vals, path, env)?
        } else {
            self.apply(name, vals, sizes, path, env)?
        };
        let size = measure(&value)
            .check(|| format!("the result of {name}()"))
            .map_err(|e| limit(path, e))?;
        env.budget.charge(size.cost()).map_err(|e| limit(path, e))?;
        Ok((value, size))
    }

    /// The branch `if(condition, then, else)` takes.
    #[inline(never)]
    fn if_branch<'e>(
        &self,
        name: &str,
        args: &'e [Expr],
        path: &str,
        env: &Env,
    ) -> Result<&'e Expr, ArmError> {
        let [cond, then, otherwise] = args else {
            return Err(Self::fn_err(
                path,
                name,
                format!("expects 3 arguments, got {}", args.len()),
            ));
        };
        let (v, _) = self.eval_expr_sized(cond, path, env)?;
        Ok(if condition(v, name, path)? {
            then
        } else {
            otherwise
        })
    }

    /// The name `variables(name)` asks for, where variables may be used.
    #[inline(never)]
    fn variables_arg<'v>(
        &self,
        name: &str,
        vals: &'v [Value],
        path: &str,
        env: &Env,
    ) -> Result<&'v str, ArmError> {
        if matches!(env.place, Place::ParameterDefault | Place::UserFunction) {
            return Err(ArmError::NotAllowedHere {
                path: path.to_string(),
                function: name.to_string(),
                place: env.place.describe(),
            });
        }
        one_string(vals).map_err(|m| Self::fn_err(path, name, m))
    }

    /// Every function that does not recurse into evaluation: the functions of the deployment's
    /// context and the pure functions.
    #[inline(never)]
    fn apply(
        &self,
        name: &str,
        vals: Vec<Value>,
        sizes: &[Size],
        path: &str,
        env: &Env,
    ) -> Result<Value, ArmError> {
        let lname = lc(name);
        match lname.as_str() {
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
            _ => match functions::call_pure(&lname, vals, sizes, env.budget) {
                None => Err(ArmError::UnknownFunction { path: path.to_string(), name: name.to_string() }),
                Some(Ok(v)) => Ok(v),
                Some(Err(Failure::Invalid(m))) => Err(Self::fn_err(path, name, m)),
                Some(Err(Failure::TooLarge(bytes))) => Err(limit(
                    path,
                    Exceeded::Size { what: format!("the result of {name}()"), bytes },
                )),
                Some(Err(Failure::Exhausted(e))) => Err(limit(path, e)),
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
            budget: env.budget,
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

/// What a memo table holds for a parameter or variable.
enum Lookup {
    /// Resolved: a copy of the value and its size.
    Found(Value, Size),
    /// Being resolved: asking again is a circular reference.
    Busy,
    /// Not resolved yet; now marked as being resolved.
    Absent,
}

/// Looks `key` up in a memo table, charging a copy of a resolved value to `budget`.
#[inline(never)]
fn lookup(
    table: &Mutex<HashMap<String, Slot>>,
    key: &str,
    path: &str,
    budget: &Budget,
) -> Result<Lookup, ArmError> {
    let mut t = lock(table);
    match t.get(key) {
        Some(Slot::Done(v, size)) => {
            budget.charge(size.cost()).map_err(|e| limit(path, e))?;
            Ok(Lookup::Found(v.clone(), *size))
        }
        Some(Slot::InProgress) => Ok(Lookup::Busy),
        None => {
            t.insert(key.to_string(), Slot::InProgress);
            Ok(Lookup::Absent)
        }
    }
}

/// Records the outcome of resolving `key`: the value, or (after an error) nothing.
#[inline(never)]
fn store(
    table: &Mutex<HashMap<String, Slot>>,
    key: String,
    result: &Result<(Value, Size), ArmError>,
) {
    match result {
        Ok((v, size)) => {
            lock(table).insert(key, Slot::Done(v.clone(), *size));
        }
        Err(_) => {
            lock(table).remove(&key);
        }
    }
}

#[cold]
fn circular_parameter(def: &ParameterDef) -> ArmError {
    ArmError::CircularReference {
        path: format!("parameters.{}.defaultValue", def.name),
        chain: format!(
            "parameter '{}' depends on itself through its default value",
            def.name
        ),
    }
}

#[cold]
fn circular_variable(decl: &str) -> ArmError {
    ArmError::CircularReference {
        path: format!("variables.{decl}"),
        chain: format!("variable '{decl}' depends on itself"),
    }
}

/// A scalar of the template as written, and its size.
#[inline(never)]
fn scalar(v: &Value) -> (Value, Size) {
    (v.clone(), measure(v))
}

/// The truth of an `if()` condition: a bool, or the strings "true" and "false".
#[inline(never)]
fn condition(v: Value, name: &str, path: &str) -> Result<bool, ArmError> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(Scope::fn_err(
            path,
            name,
            format!("the condition must be a bool, got {}", type_name(&other)),
        )),
    }
}

/// `parameters(name)` inside a user-defined function: one of its arguments.
fn function_argument(args: &Map<String, Value>, name: &str, path: &str) -> Result<Value, ArmError> {
    get_ci(args, name)
        .cloned()
        .ok_or_else(|| ArmError::UndefinedName {
            path: path.to_string(),
            kind: "function parameter",
            name: name.to_string(),
        })
}

/// `value.name`: the member of an object (by case-insensitive name).
#[inline(never)]
fn member(value: Value, name: &str, path: &str) -> Result<Value, ArmError> {
    match value {
        Value::Object(mut m) => {
            let key = if m.contains_key(name) {
                Some(name.to_string())
            } else {
                m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
            };
            match key.and_then(|k| m.swap_remove(&k)) {
                Some(v) => Ok(v),
                None => {
                    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                    Err(ArmError::Access {
                        path: path.to_string(),
                        message: format!(
                            "the object has no property '{name}' (properties: {})",
                            if keys.is_empty() {
                                "none".to_string()
                            } else {
                                keys.join(", ")
                            }
                        ),
                    })
                }
            }
        }
        other => Err(ArmError::Access {
            path: path.to_string(),
            message: format!(
                "cannot read property '{name}' of a value of type {}",
                type_name(&other)
            ),
        }),
    }
}

/// `value[index]`: an element of an array or a member of an object.
#[inline(never)]
fn element(value: Value, index: &Value, path: &str) -> Result<Value, ArmError> {
    match (value, index) {
        (Value::Array(mut a), Value::Number(n)) if n.is_i64() => {
            let k = n.as_i64().unwrap_or(-1);
            if k < 0 || k as usize >= a.len() {
                return Err(ArmError::Access {
                    path: path.to_string(),
                    message: format!(
                        "index {k} is out of range for an array of length {}",
                        a.len()
                    ),
                });
            }
            Ok(a.swap_remove(k as usize))
        }
        (Value::Object(m), Value::String(k)) => {
            member(Value::Object(m), k, path).map_err(|_| ArmError::Access {
                path: path.to_string(),
                message: format!("the object has no property '{k}'"),
            })
        }
        (b, i) => Err(ArmError::Access {
            path: path.to_string(),
            message: format!(
                "cannot index a value of type {} with a {}",
                type_name(&b),
                type_name(i)
            ),
        }),
    }
}

/// Adds a member and `extra` bytes (its separator, an object member's name) to a growing array or
/// object, failing as soon as the whole is too large.
fn grow(
    size: &mut Size,
    member: Size,
    extra: usize,
    path: &str,
    what: &str,
) -> Result<(), ArmError> {
    size.add(member, extra);
    if size.bytes > MAX_VALUE_BYTES {
        return Err(limit(
            path,
            Exceeded::Size {
                what: what.to_string(),
                bytes: size.bytes,
            },
        ));
    }
    Ok(())
}

/// An object member: its value and one node more for its entry in the map (as [`measure`] counts).
fn member_entry(value: Size) -> Size {
    Size {
        nodes: value.nodes + 1,
        ..value
    }
}

/// The size of an array or object whose members were added with [`grow`]: the closing bracket
/// (already counted for non-empty ones, as the last separator) and one level more.
fn finish(mut size: Size, path: &str, what: &str) -> Result<Size, ArmError> {
    size.bytes = size.bytes.max(2);
    size.depth += 1;
    size.check(|| what.to_string()).map_err(|e| limit(path, e))
}

/// How errors name a copy loop (output copies have no name).
fn copy_loop_name(name: &str) -> String {
    if name.is_empty() {
        "the copy loop".to_string()
    } else {
        format!("the copy loop '{name}'")
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
