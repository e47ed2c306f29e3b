//! A deployment: a template bound to parameter values and a context, with resources expanded
//! (nested children flattened, copy loops unrolled, conditions applied) and put in the order
//! `dependsOn` demands. Resource bodies and outputs are evaluated on demand, because
//! `reference()` needs the runtime state of resources deployed before them.

use crate::budget::Budget;
use crate::eval::{limit, Env, KnownResource, Place, Scope};
use crate::expr::{classify, parse, Expr, StringForm};
use crate::json::{get_ci, type_name};
use crate::profiles::{api_profile_version, known_api_profiles};
use crate::secret::{redact_value, MASK};
use crate::template::{limits, Template};
use crate::ArmError;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// Where a deployment goes: what `subscription()`, `resourceGroup()` and `deployment()` return and
/// what resource ids are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentContext {
    /// Subscription id used in every resource id.
    pub subscription_id: String,
    /// Resource group name used in every resource id.
    pub resource_group: String,
    /// `resourceGroup().location`.
    pub location: String,
    /// `deployment().name`.
    pub deployment_name: String,
}

/// Gives `reference()` the runtime state of resources that were deployed earlier.
pub trait ReferenceResolver {
    /// The resource's runtime `properties` object (what `reference(id)` returns), or `None` if the
    /// resource does not exist (yet). Implementations should compare ids case-insensitively.
    fn reference(&self, resource_id: &str) -> Option<Value>;

    /// What `reference(id, apiVersion, 'Full')` returns: the whole resource. The default wraps
    /// [`ReferenceResolver::reference`] with the id, name and type taken from the id.
    fn reference_full(&self, resource_id: &str) -> Option<Value> {
        let props = self.reference(resource_id)?;
        let mut m = Map::new();
        m.insert("id".into(), Value::String(resource_id.to_string()));
        if let Some((ty, name)) = split_id(resource_id) {
            m.insert("type".into(), Value::String(ty));
            m.insert("name".into(), Value::String(name));
        }
        m.insert("properties".into(), props);
        Some(Value::Object(m))
    }
}

/// `/subscriptions/s/resourceGroups/g/providers/NS/t1/n1/t2/n2` → (`NS/t1/t2`, `n1/n2`).
fn split_id(id: &str) -> Option<(String, String)> {
    let lower = id.to_ascii_lowercase();
    let at = lower.rfind("/providers/")?;
    let segs: Vec<&str> = id[at + "/providers/".len()..].split('/').collect();
    if segs.len() < 3 || segs.len().is_multiple_of(2) {
        return None;
    }
    let mut types = vec![segs[0]];
    let mut names = Vec::new();
    for pair in segs[1..].chunks(2) {
        types.push(pair[0]);
        names.push(pair[1]);
    }
    Some((types.join("/"), names.join("/")))
}

/// Which iteration of a resource copy loop a resource is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstance {
    /// The loop's `copy.name`.
    pub name: String,
    /// `copyIndex()` of this instance.
    pub index: i64,
}

/// A resource of the template, expanded and addressed but with its body not yet evaluated.
#[derive(Debug, Clone)]
pub struct PendingResource {
    /// Full resource id (`/subscriptions/../resourceGroups/../providers/NS/type/name[/child/name]`).
    pub id: String,
    /// Full type, including parent types for children (`Microsoft.Network/virtualNetworks/subnets`).
    pub resource_type: String,
    /// Full name, including parent names for children (`vnet1/sub1`).
    pub name: String,
    /// The resource's `apiVersion`, or the version the template's `apiProfile` assigns to its type
    /// (always set: a resource with neither is rejected by [`Deployment::new`]).
    pub api_version: Option<String>,
    /// Template path of the resource (`resources[3]`, `resources[1].resources[0]`).
    pub path: String,
    /// Ids of the resources (deployed by this template) this one waits for.
    pub depends_on: Vec<String>,
    /// Set when the resource comes from a `copy` loop.
    pub copy: Option<CopyInstance>,
    /// The declaration as written, shared by every instance of its copy loop.
    raw: Arc<Value>,
    copy_stack: Vec<(String, i64)>,
}

/// A resource with its whole body evaluated: what the resource provider receives.
#[derive(Clone)]
pub struct EvaluatedResource {
    /// Full resource id.
    pub id: String,
    /// Full type (`Microsoft.Network/virtualNetworks/subnets` for children).
    pub resource_type: String,
    /// Full name (`vnet1/sub1` for children).
    pub name: String,
    /// The resource's `apiVersion`, or the one the template's `apiProfile` assigns to its type
    /// (always set for resources of a [`Deployment`]).
    pub api_version: Option<String>,
    /// Evaluated `location`, if the resource has one.
    pub location: Option<String>,
    /// The whole evaluated resource object (name, type, apiVersion, location, properties, sku,
    /// tags, ...), without `dependsOn`, `copy`, `condition` and nested `resources`.
    pub body: Value,
    /// Template path, for error messages (`resources[3]`).
    pub path: String,
    secrets: Arc<[String]>,
}

impl EvaluatedResource {
    /// The body with securestring / secureObject parameter values masked, for display and logs.
    pub fn redacted_body(&self) -> Value {
        redact_value(&self.body, &self.secrets)
    }
}

impl fmt::Debug for EvaluatedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluatedResource")
            .field("id", &self.id)
            .field("resource_type", &self.resource_type)
            .field("name", &self.name)
            .field("api_version", &self.api_version)
            .field("location", &self.location)
            .field("body", &self.redacted_body())
            .field("path", &self.path)
            .finish()
    }
}

/// A template bound to parameters and a context: parameters checked and evaluated, variables
/// evaluated, resources expanded and ordered by `dependsOn`.
pub struct Deployment {
    scope: Scope,
    ordered: Vec<PendingResource>,
    skipped: Vec<PendingResource>,
    secrets: Arc<[String]>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("context", &self.scope.ctx)
            .field("parameters", &self.parameters_redacted())
            .field(
                "resources",
                &self
                    .ordered
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One expanded resource before ordering.
struct Expanded {
    pending: PendingResource,
    active: bool,
    dep_targets: Vec<(String, String)>,
    parent: Option<usize>,
    /// In a `"mode": "serial"` copy loop: the instance this one waits for.
    serial_prev: Option<usize>,
}

impl Deployment {
    /// Binds `t` to `params` (names case-insensitive) in `ctx`: checks types, allowedValues and
    /// ranges, evaluates defaults and variables, expands and orders resources.
    pub fn new(
        t: &Template,
        params: &Map<String, Value>,
        ctx: &DeploymentContext,
    ) -> Result<Deployment, ArmError> {
        let mut scope = Scope::new(t.clone(), params, ctx.clone())?;
        let secrets: Arc<[String]> = scope.secrets.clone().into();
        Self::build(&mut scope)
            .map_err(|e| e.redact(&secrets))
            .map(|(ordered, skipped)| Deployment {
                scope,
                ordered,
                skipped,
                secrets,
            })
    }

    fn build(scope: &mut Scope) -> Result<(Vec<PendingResource>, Vec<PendingResource>), ArmError> {
        let resources = scope.template.resources.clone();
        let budget = Budget::new();
        let mut ex = Expander {
            scope,
            budget: &budget,
            out: Vec::new(),
            loops: Vec::new(),
        };
        for (i, r) in resources.iter().enumerate() {
            ex.expand(r, &format!("resources[{i}]"), None, &[], true)?;
        }
        let Expander {
            out: mut all,
            loops,
            ..
        } = ex;
        if all.len() > limits::RESOURCES {
            return Err(ArmError::Structure {
                path: "resources".into(),
                message: format!(
                    "{} resources after expanding copy loops; Azure allows at most {}",
                    all.len(),
                    limits::RESOURCES
                ),
            });
        }
        scope.known = all
            .iter()
            .map(|e| KnownResource {
                name: e.pending.name.clone(),
                id: e.pending.id.clone(),
            })
            .collect();

        // the same id twice among deployed resources is an error, as in Azure
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, e) in all.iter().enumerate() {
            if !e.active {
                continue;
            }
            if let Some(&j) = seen.get(&e.pending.id.to_ascii_lowercase()) {
                return Err(ArmError::DuplicateResource {
                    path: e.pending.path.clone(),
                    id: format!("{}/{}", e.pending.resource_type, e.pending.name),
                    other: all[j].pending.path.clone(),
                });
            }
            seen.insert(e.pending.id.to_ascii_lowercase(), i);
        }

        // resolve dependsOn (explicit, parent of nested child, reference() to template resources)
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); all.len()];
        let mut reference_args = HashMap::new();
        for i in 0..all.len() {
            if let Some(p) = all[i].parent {
                deps[i].insert(p);
            }
            if let Some(p) = all[i].serial_prev {
                deps[i].insert(p);
            }
            for (path, target) in all[i].dep_targets.clone() {
                let matched = match_target(scope, &all, &target).map_err(|matches| {
                    ArmError::AmbiguousDependency {
                        path: path.clone(),
                        target: target.clone(),
                        matches,
                    }
                })?;
                let empty_loop = loops.iter().any(|l| l.eq_ignore_ascii_case(target.trim()));
                if matched.is_empty() && !empty_loop {
                    return Err(ArmError::UnresolvedDependency { path, target });
                }
                deps[i].extend(matched.into_iter().filter(|&j| j != i));
            }
            for id in implicit_references(scope, &all[i].pending, &budget, &mut reference_args)? {
                if let Some(j) = all
                    .iter()
                    .position(|e| e.pending.id.eq_ignore_ascii_case(&id))
                {
                    if j != i {
                        deps[i].insert(j);
                    }
                }
            }
        }
        for (i, d) in deps.iter().enumerate() {
            let mut ids: Vec<String> = d
                .iter()
                .filter(|&&j| all[j].active)
                .map(|&j| all[j].pending.id.clone())
                .collect();
            ids.dedup();
            all[i].pending.depends_on = ids;
        }

        let order = topological(&all, &deps)?;
        let mut ordered = Vec::new();
        let mut skipped = Vec::new();
        for (i, e) in all.into_iter().enumerate() {
            if !e.active {
                skipped.push(e.pending);
            } else {
                let pos = order.iter().position(|&k| k == i).unwrap_or(usize::MAX);
                ordered.push((pos, e.pending));
            }
        }
        ordered.sort_by_key(|(pos, _)| *pos);
        Ok((ordered.into_iter().map(|(_, p)| p).collect(), skipped))
    }

    /// The template's `apiProfile` (e.g. `2018-03-01-hybrid`), if any.
    pub fn api_profile(&self) -> Option<&str> {
        self.scope.template.api_profile.as_deref()
    }

    /// The context this deployment was bound to.
    pub fn context(&self) -> &DeploymentContext {
        &self.scope.ctx
    }

    /// Resources to deploy, dependencies first; among independent resources template order is kept.
    pub fn resources_in_order(&self) -> &[PendingResource] {
        &self.ordered
    }

    /// Resources whose `condition` evaluated to false: not deployed.
    pub fn skipped_resources(&self) -> &[PendingResource] {
        &self.skipped
    }

    /// A parameter's final value (supplied, or its evaluated default), by case-insensitive name.
    /// Secure values are returned in the clear (a resource provider needs them): never log them;
    /// use [`Deployment::parameters_redacted`] for display.
    pub fn parameter(&self, name: &str) -> Option<Value> {
        self.scope.param(name, "").ok()
    }

    /// All parameter values as a deployment record should show them: secure values masked.
    pub fn parameters_redacted(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for p in &self.scope.template.parameters {
            let v = if p.kind.is_secure() {
                Value::String(MASK.into())
            } else {
                self.scope.param(&p.name, "").unwrap_or(Value::Null)
            };
            out.insert(p.name.clone(), v);
        }
        out
    }

    /// Evaluates one resource's body. `reference()` goes through `resolver`, which must know the
    /// resources deployed before this one.
    pub fn evaluate_resource(
        &self,
        r: &PendingResource,
        resolver: &dyn ReferenceResolver,
    ) -> Result<EvaluatedResource, ArmError> {
        self.evaluate_resource_inner(r, resolver)
            .map_err(|e| e.redact(&self.secrets))
    }

    fn evaluate_resource_inner(
        &self,
        r: &PendingResource,
        resolver: &dyn ReferenceResolver,
    ) -> Result<EvaluatedResource, ArmError> {
        let budget = Budget::new();
        let env = Env {
            place: Place::ResourceBody,
            copy: r.copy_stack.clone(),
            resolver: Some(resolver),
            fn_args: None,
            budget: &budget,
        };
        let Value::Object(m) = &*r.raw else {
            return Err(ArmError::Structure {
                path: r.path.clone(),
                message: "a resource must be an object".into(),
            });
        };
        let mut body = Map::new();
        for (k, v) in m {
            let lk = k.to_ascii_lowercase();
            match lk.as_str() {
                "dependson" | "copy" | "condition" | "resources" | "comments" => continue,
                "name" => {
                    body.insert(k.clone(), Value::String(r.name.clone()));
                }
                "type" => {
                    body.insert(k.clone(), Value::String(r.resource_type.clone()));
                }
                "apiversion" => {
                    body.insert(
                        k.clone(),
                        r.api_version
                            .clone()
                            .map(Value::String)
                            .unwrap_or(Value::Null),
                    );
                }
                _ => {
                    let path = format!("{}.{k}", r.path);
                    body.insert(k.clone(), self.scope.eval_value(v, &path, &env)?);
                }
            }
        }
        if get_ci(&body, "apiVersion").is_none() {
            if let Some(v) = &r.api_version {
                body.insert("apiVersion".into(), Value::String(v.clone()));
            }
        }
        let location = match get_ci(&body, "location") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(ArmError::Type {
                    path: format!("{}.location", r.path),
                    expected: "string".into(),
                    actual: type_name(other).into(),
                })
            }
        };
        Ok(EvaluatedResource {
            id: r.id.clone(),
            resource_type: r.resource_type.clone(),
            name: r.name.clone(),
            api_version: r.api_version.clone(),
            location,
            body: Value::Object(body),
            path: r.path.clone(),
            secrets: self.secrets.clone(),
        })
    }

    /// Evaluates the outputs after deployment (`reference()` through `resolver`). Outputs whose
    /// `condition` is false are left out; securestring / secureObject outputs are left out, as
    /// Azure never returns their values.
    pub fn outputs(
        &self,
        resolver: &dyn ReferenceResolver,
    ) -> Result<Map<String, Value>, ArmError> {
        self.outputs_inner(resolver)
            .map_err(|e| e.redact(&self.secrets))
    }

    fn outputs_inner(
        &self,
        resolver: &dyn ReferenceResolver,
    ) -> Result<Map<String, Value>, ArmError> {
        let budget = Budget::new();
        let env = Env {
            place: Place::Output,
            copy: Vec::new(),
            resolver: Some(resolver),
            fn_args: None,
            budget: &budget,
        };
        let mut out = Map::new();
        for (name, o) in &self.scope.template.outputs {
            let path = format!("outputs.{name}");
            let Value::Object(om) = o else { continue };
            if let Some(c) = get_ci(om, "condition") {
                if !eval_condition(&self.scope, c, &format!("{path}.condition"), &env)? {
                    continue;
                }
            }
            let declared = get_ci(om, "type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_ascii_lowercase();
            let value = match (get_ci(om, "value"), get_ci(om, "copy")) {
                (Some(v), _) => self.scope.eval_value(v, &format!("{path}.value"), &env)?,
                (None, Some(Value::Object(c))) => {
                    let cpath = format!("{path}.copy");
                    let count = self.scope.copy_count(c, &cpath, &env)?;
                    let input = get_ci(c, "input").ok_or_else(|| ArmError::Structure {
                        path: cpath.clone(),
                        message: "an output copy needs an 'input'".into(),
                    })?;
                    self.scope.copy_items("", count, input, &cpath, &env)?.0
                }
                _ => {
                    return Err(ArmError::Structure {
                        path,
                        message: "an output needs a 'value' or a 'copy' object".into(),
                    })
                }
            };
            let ok = match declared.as_str() {
                "string" | "securestring" => value.is_string(),
                "int" => value.is_i64(),
                "bool" => value.is_boolean(),
                "array" => value.is_array(),
                "object" | "secureobject" => value.is_object(),
                _ => false,
            };
            if !ok {
                return Err(ArmError::Type {
                    path: format!("{path}.value"),
                    expected: declared,
                    actual: type_name(&value).into(),
                });
            }
            if declared == "securestring" || declared == "secureobject" {
                continue;
            }
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

fn eval_condition(scope: &Scope, c: &Value, path: &str, env: &Env) -> Result<bool, ArmError> {
    match scope.eval_value(c, path, env)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ArmError::Type {
            path: path.to_string(),
            expected: "bool".into(),
            actual: type_name(&other).into(),
        }),
    }
}

fn header_string(
    scope: &Scope,
    m: &Map<String, Value>,
    key: &str,
    path: &str,
    env: &Env,
) -> Result<Option<String>, ArmError> {
    match get_ci(m, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match scope.eval_value(v, &format!("{path}.{key}"), env)? {
            Value::String(s) => Ok(Some(s)),
            other => Err(ArmError::Type {
                path: format!("{path}.{key}"),
                expected: "string".into(),
                actual: type_name(&other).into(),
            }),
        },
    }
}

/// How many resources expansion builds before it gives up. Azure allows 800 (checked once
/// expansion is done, so the error can say how many the template asks for); expanding further is
/// only work, and nested copy loops (800 parents × 800 children) would ask for 640,000.
const EXPANSION_CAP: usize = 8 * limits::RESOURCES;

/// Expands resource declarations into the flat list of resources to deploy.
struct Expander<'s> {
    scope: &'s Scope,
    /// The work and recursion budget of the whole expansion.
    budget: &'s Budget,
    out: Vec<Expanded>,
    /// Names of all resource copy loops, including loops with zero iterations.
    loops: Vec<String>,
}

impl Expander<'_> {
    /// Expands one resource declaration (copy loop, nested children) into `self.out`.
    fn expand(
        &mut self,
        raw: &Value,
        path: &str,
        parent: Option<usize>,
        outer_copy: &[(String, i64)],
        parent_active: bool,
    ) -> Result<(), ArmError> {
        let scope = self.scope;
        let Value::Object(m) = raw else {
            return Err(ArmError::Structure {
                path: path.to_string(),
                message: "a resource must be an object".into(),
            });
        };
        let base_env = Env {
            place: Place::ResourceHeader,
            copy: outer_copy.to_vec(),
            resolver: None,
            fn_args: None,
            budget: self.budget,
        };
        let mut stripped = m.clone();
        stripped.retain(|k, _| !k.eq_ignore_ascii_case("resources"));
        let raw_shared = Arc::new(Value::Object(stripped));
        let mut serial_batch: Option<usize> = None;
        let mut instance_slots: Vec<usize> = Vec::new();
        let instances: Vec<Option<CopyInstance>> = match get_ci(m, "copy") {
            Some(Value::Object(c)) => {
                let cpath = format!("{path}.copy");
                let name = match get_ci(c, "name")
                    .map(|n| scope.eval_value(n, &format!("{cpath}.name"), &base_env))
                    .transpose()?
                {
                    Some(Value::String(s)) if !s.is_empty() => s,
                    _ => {
                        return Err(ArmError::Structure {
                            path: format!("{cpath}.name"),
                            message: "a copy loop needs a non-empty string 'name'".into(),
                        })
                    }
                };
                let count = scope.copy_count(c, &cpath, &base_env)?;
                serial_batch = copy_mode(scope, c, &cpath, &base_env)?;
                self.loops.push(name.clone());
                (0..count)
                    .map(|index| {
                        Some(CopyInstance {
                            name: name.clone(),
                            index,
                        })
                    })
                    .collect()
            }
            _ => vec![None],
        };
        for inst in instances {
            let mut copy_stack = outer_copy.to_vec();
            if let Some(ci) = &inst {
                copy_stack.push((ci.name.clone(), ci.index));
            }
            if self.out.len() >= EXPANSION_CAP {
                return Err(ArmError::Structure {
                    path: "resources".into(),
                    message: format!(
                        "more than {EXPANSION_CAP} resources after expanding copy loops (expansion stopped at {path}); Azure allows at most {}",
                        limits::RESOURCES
                    ),
                });
            }
            self.budget.step().map_err(|e| limit(path, e))?;
            let env = Env {
                place: Place::ResourceHeader,
                copy: copy_stack.clone(),
                resolver: None,
                fn_args: None,
                budget: self.budget,
            };
            let active = parent_active
                && match get_ci(m, "condition") {
                    None => true,
                    Some(c) => eval_condition(scope, c, &format!("{path}.condition"), &env)?,
                };
            let own_type = header_string(scope, m, "type", path, &env)?.unwrap_or_default();
            let own_name = header_string(scope, m, "name", path, &env)?.unwrap_or_default();
            let stated_api_version = header_string(scope, m, "apiVersion", path, &env)?;
            let (resource_type, name) = match parent {
                Some(p) if !own_type.contains('/') => (
                    format!("{}/{}", self.out[p].pending.resource_type, own_type),
                    format!("{}/{}", self.out[p].pending.name, own_name),
                ),
                Some(p) if !own_name.contains('/') => (
                    own_type.clone(),
                    format!("{}/{}", self.out[p].pending.name, own_name),
                ),
                _ => (own_type.trim_matches('/').to_string(), own_name.clone()),
            };
            let api_version = match (stated_api_version, scope.template.api_profile.as_deref()) {
            (Some(v), _) => Some(v),
            (None, Some(profile)) => match api_profile_version(profile, &resource_type) {
                Some(v) => Some(v.to_string()),
                None => {
                    return Err(ArmError::Structure {
                        path: path.to_string(),
                        message: format!(
                            "the resource has no apiVersion and apiProfile '{profile}' gives none for '{resource_type}' (known profiles: {})",
                            known_api_profiles().join(", ")
                        ),
                    })
                }
            },
            (None, None) => {
                return Err(ArmError::Structure {
                    path: path.to_string(),
                    message: "the resource has no apiVersion (and the template no apiProfile)".into(),
                })
            }
        };
            let id = scope.resource_id(&resource_type, &name).map_err(|message| ArmError::Structure {
            path: format!("{path}.name"),
            message: format!("type '{resource_type}' and name '{name}' do not form a resource id: {message}"),
        })?;
            let mut dep_targets = Vec::new();
            if let Some(Value::Array(ds)) = get_ci(m, "dependsOn") {
                for (j, d) in ds.iter().enumerate() {
                    let dpath = format!("{path}.dependsOn[{j}]");
                    match scope.eval_value(d, &dpath, &env)? {
                        Value::String(s) => dep_targets.push((dpath, s)),
                        other => {
                            return Err(ArmError::Type {
                                path: dpath,
                                expected: "string".into(),
                                actual: type_name(&other).into(),
                            })
                        }
                    }
                }
            }
            let order = self.out.len();
            self.out.push(Expanded {
                pending: PendingResource {
                    id,
                    resource_type,
                    name,
                    api_version,
                    path: path.to_string(),
                    depends_on: Vec::new(),
                    copy: inst.clone(),
                    raw: Arc::clone(&raw_shared),
                    copy_stack: copy_stack.clone(),
                },
                active,
                dep_targets,
                parent,
                serial_prev: serial_batch
                    .and_then(|b| instance_slots.len().checked_sub(b))
                    .map(|k| instance_slots[k]),
            });
            instance_slots.push(order);
            if let Some(Value::Array(children)) = get_ci(m, "resources") {
                for (j, c) in children.iter().enumerate() {
                    self.expand(
                        c,
                        &format!("{path}.resources[{j}]"),
                        Some(order),
                        &copy_stack,
                        active,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A resource copy loop's `mode`/`batchSize`: `Some(batch)` for serial loops, where instance i
/// waits for instance i - batch.
fn copy_mode(
    scope: &Scope,
    c: &Map<String, Value>,
    path: &str,
    env: &Env,
) -> Result<Option<usize>, ArmError> {
    let mode = match get_ci(c, "mode") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => scope.eval_value(v, &format!("{path}.mode"), env)?,
    };
    match mode.as_str() {
        Some(m) if m.eq_ignore_ascii_case("parallel") => Ok(None),
        Some(m) if m.eq_ignore_ascii_case("serial") => {
            let batch = match get_ci(c, "batchSize") {
                None | Some(Value::Null) => 1,
                Some(v) => match scope.eval_value(v, &format!("{path}.batchSize"), env)? {
                    Value::Number(n) if n.as_i64().is_some_and(|b| (1..=800).contains(&b)) => {
                        n.as_i64().unwrap_or(1) as usize
                    }
                    other => {
                        return Err(ArmError::OutOfRange {
                            path: format!("{path}.batchSize"),
                            message: format!(
                                "batchSize must be an int from 1 to 800, got {}",
                                crate::json::show(&other)
                            ),
                        })
                    }
                },
            };
            Ok(Some(batch))
        }
        _ => Err(ArmError::Structure {
            path: format!("{path}.mode"),
            message: format!(
                "copy mode must be 'serial' or 'parallel', got {}",
                crate::json::show(&mode)
            ),
        }),
    }
}

/// Resources a `dependsOn` entry names: by resource id, by `Namespace/type/name`, by copy loop
/// name (all instances) or by plain resource name. `Err` lists the matches of an ambiguous name.
fn match_target(scope: &Scope, all: &[Expanded], target: &str) -> Result<Vec<usize>, String> {
    let t = target.trim();
    if !t.contains('/') {
        let by_loop: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.pending
                    .copy
                    .as_ref()
                    .is_some_and(|c| c.name.eq_ignore_ascii_case(t))
            })
            .map(|(i, _)| i)
            .collect();
        if !by_loop.is_empty() {
            return Ok(by_loop);
        }
        let mut by_name: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, e)| e.pending.name.eq_ignore_ascii_case(t))
            .map(|(i, _)| i)
            .collect();
        if by_name.is_empty() {
            // a nested child is often named by its own segment ("front" for "vnet1/front")
            by_name = all
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.pending
                        .name
                        .rsplit('/')
                        .next()
                        .is_some_and(|last| last.eq_ignore_ascii_case(t))
                })
                .map(|(i, _)| i)
                .collect();
        }
        let mut types: Vec<String> = by_name
            .iter()
            .map(|&i| all[i].pending.resource_type.to_ascii_lowercase())
            .collect();
        types.sort();
        types.dedup();
        if types.len() > 1 {
            return Err(by_name
                .iter()
                .map(|&i| {
                    format!(
                        "{}/{} ({})",
                        all[i].pending.resource_type, all[i].pending.name, all[i].pending.path
                    )
                })
                .collect::<Vec<_>>()
                .join(", "));
        }
        return Ok(by_name);
    }
    let Ok(id) = scope.target_to_id(t) else {
        return Ok(Vec::new());
    };
    Ok(all
        .iter()
        .enumerate()
        .filter(|(_, e)| e.pending.id.eq_ignore_ascii_case(&id))
        .map(|(i, _)| i)
        .collect())
}

/// Ids of template resources a resource's body refers to with `reference()`: Azure deploys those
/// first even without `dependsOn`. Targets that cannot be computed before deployment are skipped;
/// running out of the evaluation budget is an error. The arguments of the `reference()` calls are
/// collected once per declaration (`cache`, keyed by the declaration all instances share).
fn implicit_references(
    scope: &Scope,
    r: &PendingResource,
    budget: &Budget,
    cache: &mut HashMap<*const Value, Vec<Expr>>,
) -> Result<Vec<String>, ArmError> {
    let args = cache.entry(Arc::as_ptr(&r.raw)).or_insert_with(|| {
        let mut exprs = Vec::new();
        collect_exprs(&r.raw, &mut exprs);
        let mut args = Vec::new();
        for e in &exprs {
            visit_reference_calls(e, &mut |arg| args.push(arg.clone()));
        }
        args
    });
    let env = Env {
        place: Place::ResourceHeader,
        copy: r.copy_stack.clone(),
        resolver: None,
        fn_args: None,
        budget,
    };
    let mut ids = Vec::new();
    for arg in args.iter() {
        match scope.eval_expr(arg, &r.path, &env) {
            Ok(Value::String(target)) => {
                if let Ok(id) = scope.target_to_id(&target) {
                    ids.push(id);
                }
            }
            Err(e @ ArmError::Limit { .. }) => return Err(e),
            _ => {}
        }
    }
    Ok(ids)
}

fn collect_exprs(v: &Value, out: &mut Vec<Expr>) {
    match v {
        Value::String(s) => {
            if let StringForm::Expression(inner) = classify(s) {
                if let Ok(e) = parse(inner) {
                    out.push(e);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                if !k.eq_ignore_ascii_case("dependsOn") {
                    collect_exprs(x, out);
                }
            }
        }
        _ => {}
    }
}

fn visit_reference_calls(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    match e {
        Expr::Call { name, args, .. } => {
            if name.eq_ignore_ascii_case("reference") {
                if let Some(a) = args.first() {
                    f(a);
                }
            }
            args.iter().for_each(|a| visit_reference_calls(a, f));
        }
        Expr::Prop { base, .. } => visit_reference_calls(base, f),
        Expr::Index { base, index, .. } => {
            visit_reference_calls(base, f);
            visit_reference_calls(index, f);
        }
        Expr::Str(_) | Expr::Int(_) => {}
    }
}

/// Kahn's algorithm over active resources, always taking the ready resource that comes first in
/// the template, so the order is stable. A cycle is reported with the resources on it.
fn topological(all: &[Expanded], deps: &[BTreeSet<usize>]) -> Result<Vec<usize>, ArmError> {
    let active: Vec<usize> = (0..all.len()).filter(|&i| all[i].active).collect();
    let mut remaining: Vec<BTreeSet<usize>> = deps
        .iter()
        .map(|d| d.iter().copied().filter(|&j| all[j].active).collect())
        .collect();
    let mut ready: BTreeSet<usize> = active
        .iter()
        .copied()
        .filter(|&i| remaining[i].is_empty())
        .collect();
    let mut done = vec![false; all.len()];
    let mut order = Vec::new();
    while let Some(&i) = ready.iter().next() {
        ready.remove(&i);
        done[i] = true;
        order.push(i);
        for &k in &active {
            if !done[k] && remaining[k].remove(&i) && remaining[k].is_empty() {
                ready.insert(k);
            }
        }
    }
    if order.len() == active.len() {
        return Ok(order);
    }
    // find one cycle among the unfinished resources to name it
    let start = active.iter().copied().find(|&i| !done[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = remaining[cur]
            .iter()
            .copied()
            .find(|&j| !done[j])
            .unwrap_or(start);
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .map(|&i| {
                    format!(
                        "{}/{} ({})",
                        all[i].pending.resource_type, all[i].pending.name, all[i].pending.path
                    )
                })
                .collect();
            cycle.push(format!(
                "{}/{}",
                all[next].pending.resource_type, all[next].pending.name
            ));
            return Err(ArmError::DependencyCycle {
                cycle: cycle.join(" -> "),
            });
        }
        path.push(next);
        cur = next;
    }
}
