//! Resources of a resource group: GET, list, PUT (as a one-resource deployment through the
//! same planner templates use, so the API and templates converge), DELETE, and the actions
//! the lab realizes (a connection's shared key, a gateway's reset).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::backend::{DeployInput, API_DEPLOYMENT_PREFIX};
use crate::error::{from_site, ApiError};
use crate::ops::OpStatus;
use crate::paths::ResourcePath;
use crate::server::Ctx;

/// Properties the service computes: dropped from a body before it is planned again.
const COMPUTED: &[&str] = &[
    "provisioningState",
    "resourceGuid",
    "connectionStatus",
    "ingressBytesTransferred",
    "egressBytesTransferred",
    "tunnelConnectionStatus",
];

fn in_group(id: &str, group: &str) -> bool {
    id.to_ascii_lowercase()
        .contains(&format!("/resourcegroups/{}/", group.to_ascii_lowercase()))
}

/// A resource as GET shows it, with its ETag.
fn with_etag(mut v: Value) -> Value {
    let tag = etag_of(&v);
    if let Value::Object(m) = &mut v {
        m.insert("etag".into(), Value::String(tag));
    }
    v
}

fn etag_of(v: &Value) -> String {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("etag");
    }
    let h = hex::encode(Sha256::digest(v.to_string().as_bytes()));
    format!(
        "W/\"{}-{}-{}-{}-{}\"",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A resource as GET shows it: its runtime view where the lab has one (connections), else
/// what the store holds.
/// The ETag follows the definition, not the counters, so If-Match keeps working while bytes
/// flow.
fn view(ctx: &Ctx, r: &site::Resource) -> Value {
    let stored = with_etag(r.arm_json());
    if matches!(r, site::Resource::Connection(_)) {
        if let Some(mut v) = ctx.backend.live_view(r.id()) {
            v["etag"] = stored["etag"].clone();
            return v;
        }
    }
    stored
}

/// Where a child resource lives in its parent's JSON: a network's `subnets`, a network
/// security group's `securityRules`.
fn child_pointer(r: &ResourcePath) -> String {
    let child = if r.types[1].eq_ignore_ascii_case("securityRules") {
        "securityRules"
    } else {
        "subnets"
    };
    format!("/properties/{child}")
}

/// The current JSON of the resource at `r` (a subnet is cut out of its network, a security
/// rule out of its NSG), if any.
fn current(ctx: &Ctx, r: &ResourcePath) -> Result<Option<Value>, ApiError> {
    let site = ctx.backend.site()?;
    let resources = site.resources().map_err(|e| from_site(&e, false))?;
    if r.types.len() == 2 {
        let parent = ResourcePath {
            types: vec![r.types[0].clone()],
            names: vec![r.names[0].clone()],
            ..r.clone()
        };
        let Some(vnet) = resources
            .iter()
            .find(|x| site::same_id(x.id(), &parent.id()))
        else {
            return Ok(None);
        };
        let v = vnet.arm_json();
        let subnet = v
            .pointer(&child_pointer(r))
            .and_then(Value::as_array)
            .and_then(|s| {
                s.iter().find(|s| {
                    s.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&r.names[1]))
                })
            })
            .cloned();
        return Ok(subnet.map(with_etag));
    }
    Ok(resources
        .iter()
        .find(|x| site::same_id(x.id(), &r.id()))
        .map(|x| view(ctx, x)))
}

/// `GET …/resourcegroups/{rg}/resources`.
pub(crate) fn list_group(ctx: &Ctx, group: &str) -> Result<Response, ApiError> {
    crate::subs::find_group(ctx, group)?;
    let site = ctx.backend.site()?;
    let v: Vec<Value> = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .iter()
        .filter(|x| in_group(x.id(), group))
        .map(|x| {
            let j = x.arm_json();
            json!({
                "id": j["id"], "name": j["name"], "type": j["type"],
                "location": j.get("location"), "tags": j.get("tags"),
            })
        })
        .collect();
    Ok(Json(json!({ "value": v })).into_response())
}

/// A list of one type, in a group or across the subscription.
pub(crate) fn list_type(
    ctx: &Ctx,
    group: Option<&str>,
    full_type: &str,
) -> Result<Response, ApiError> {
    if let Some(g) = group {
        crate::subs::find_group(ctx, g)?;
    }
    let site = ctx.backend.site()?;
    let v: Vec<Value> = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .iter()
        .filter(|x| x.resource_type().eq_ignore_ascii_case(full_type))
        .filter(|x| group.is_none_or(|g| in_group(x.id(), g)))
        .map(|x| view(ctx, x))
        .collect();
    Ok(Json(json!({ "value": v })).into_response())
}

/// 202 Accepted with the headers a client polls.
pub(crate) fn accepted(ctx: &Ctx, op: &str, namespace: &str) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    add_op_headers(ctx, &mut r, op, namespace);
    r
}

fn add_op_headers(ctx: &Ctx, r: &mut Response, op: &str, namespace: &str) {
    let base = format!(
        "{}/subscriptions/{}/providers/{namespace}/locations/{}",
        ctx.base, ctx.cfg.subscription_id, ctx.cfg.location
    );
    let api = "api-version=2020-06-01";
    for (h, v) in [
        (
            "Azure-AsyncOperation",
            format!("{base}/operations/{op}?{api}"),
        ),
        ("Location", format!("{base}/operationResults/{op}?{api}")),
        ("Retry-After", "1".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(h, v);
        }
    }
}

/// `GET …/locations/{loc}/operations/{id}` (status) and `…/operationResults/{id}` (202 until
/// done, then 200/204).
pub(crate) fn operation(ctx: &Ctx, id: &str, result: bool) -> Result<Response, ApiError> {
    let Some(status) = ctx.realizer.status(id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{id}' could not be found."),
        ));
    };
    if result {
        return Ok(match status {
            OpStatus::InProgress => {
                let mut r = StatusCode::ACCEPTED.into_response();
                add_op_headers(ctx, &mut r, id, "Microsoft.Network");
                r
            }
            OpStatus::Succeeded => StatusCode::NO_CONTENT.into_response(),
            OpStatus::Failed(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, "ProvisioningFailed", e).into_response()
            }
        });
    }
    let mut body = json!({ "id": id, "name": id, "status": status.arm_name() });
    if let OpStatus::Failed(e) = &status {
        body["error"] = json!({ "code": "ProvisioningFailed", "message": e });
    }
    let mut resp = Json(body).into_response();
    if status == OpStatus::InProgress {
        // Without it clients wait 30 s between polls; the lab realizes in well under one.
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
    }
    Ok(resp)
}

/// Escapes strings that ARM would take for expressions (`[…]`), so a PUT body is literal.
fn literal(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with('[') => s.insert(0, '['),
        Value::Array(a) => a.iter_mut().for_each(literal),
        Value::Object(m) => m.values_mut().for_each(literal),
        _ => {}
    }
}

/// Removes what the service computes, recursively.
fn strip_computed(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in COMPUTED {
                m.remove(*k);
            }
            m.remove("etag");
            m.values_mut().for_each(strip_computed);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_computed),
        _ => {}
    }
}

/// A one-resource template for a PUT body.
fn template_for(r: &ResourcePath, api_version: &str, body: &Value) -> Result<String, ApiError> {
    let Value::Object(obj) = body else {
        return Err(ApiError::bad_request(
            "InvalidRequestFormat",
            "Cannot parse the request: the body must be a JSON object.",
        ));
    };
    let mut res = Map::new();
    for (k, v) in obj {
        if ["id", "name", "type", "etag", "apiVersion"].contains(&k.as_str()) {
            continue;
        }
        let mut v = v.clone();
        strip_computed(&mut v);
        literal(&mut v);
        res.insert(k.clone(), v);
    }
    res.insert("type".into(), json!(r.full_type()));
    res.insert("apiVersion".into(), json!(api_version));
    let mut name = Value::String(r.template_name());
    literal(&mut name);
    res.insert("name".into(), name);
    Ok(json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [Value::Object(res)],
    })
    .to_string())
}

/// Applies `body` as the new definition of the resource at `r`.
async fn put(ctx: &Ctx, r: &ResourcePath, api_version: &str, body: &Value) -> Result<(), ApiError> {
    let mut body = body.clone();
    keep_shared_key(ctx, r, &mut body)?;
    let template = template_for(r, api_version, &body)?;
    let input = DeployInput {
        resource_group: crate::subs::find_group(ctx, &r.group)?.name,
        name: format!("{API_DEPLOYMENT_PREFIX}{}", r.template_name()),
        template,
        parameters: Map::new(),
        mode: site::DeploymentMode::Incremental,
    };
    // A refusal never quotes the key back, whatever the planner found wrong around it.
    let key = body
        .pointer("/properties/sharedKey")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let backend = ctx.backend.clone();
    tokio::task::spawn_blocking(move || backend.apply(&input))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|mut e| {
            if let Some(k) = &key {
                e.message = e.message.replace(k.as_str(), "***");
            }
            e
        })?;
    Ok(())
}

fn check_match(headers: &HeaderMap, current: Option<&Value>) -> Result<(), ApiError> {
    let failed = |m: &str| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            m.to_string(),
        )
    };
    if let Some(want) = headers.get("If-Match").and_then(|v| v.to_str().ok()) {
        let have = current.and_then(|c| c.get("etag")).and_then(Value::as_str);
        if want != "*" && have != Some(want) {
            return Err(failed(&format!(
                "The condition If-Match: {want} was not met: the resource's etag is {}.",
                have.unwrap_or("(no resource)")
            )));
        }
        if want == "*" && have.is_none() {
            return Err(failed(
                "The condition If-Match: * was not met: the resource does not exist.",
            ));
        }
    }
    if headers
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "*")
        && current.is_some()
    {
        return Err(failed(
            "The condition If-None-Match: * was not met: the resource exists.",
        ));
    }
    Ok(())
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {e}"),
        )
    })
}

/// Query parameters a resource request may carry besides `api-version`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Query<'a> {
    /// `$expand` (`instanceView` of a VM).
    pub expand: Option<&'a str>,
    /// `peer` of a gateway's BGP actions.
    pub peer: Option<&'a str>,
}

/// Dispatches a request on a resource or a collection of one type.
pub(crate) async fn handle(
    ctx: &Ctx,
    method: &Method,
    r: &ResourcePath,
    api_version: &str,
    query: Query<'_>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if !r.is_item() && r.types.len() == 2 {
        // the subnets of a network (the rules of an NSG) live inside it
        let parent = ResourcePath {
            types: vec![r.types[0].clone()],
            names: vec![r.names[0].clone()],
            ..r.clone()
        };
        let vnet = current(ctx, &parent)?.ok_or_else(|| {
            ApiError::not_found(&parent.full_type(), &parent.template_name(), &r.group)
        })?;
        let subnets: Vec<Value> = vnet
            .pointer(&child_pointer(r))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(with_etag)
            .collect();
        return Ok(Json(json!({ "value": subnets })).into_response());
    }
    if !r.is_item() {
        return list_type(ctx, Some(&r.group), &r.full_type());
    }
    let not_found = || ApiError::not_found(&r.full_type(), &r.template_name(), &r.group);
    if !r.action.is_empty() {
        return crate::actions::handle(ctx, method, r, api_version, query.peer, body).await;
    }
    match *method {
        Method::GET => {
            crate::subs::find_group(ctx, &r.group)?;
            let mut v = current(ctx, r)?.ok_or_else(not_found)?;
            if query
                .expand
                .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
                && r.full_type()
                    .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
            {
                v["properties"]["instanceView"] = instance_view(&v);
            }
            let tag = v["etag"].as_str().unwrap_or_default().to_string();
            let mut resp = Json(v).into_response();
            if let Ok(h) = HeaderValue::from_str(&tag) {
                resp.headers_mut().insert("ETag", h);
            }
            Ok(resp)
        }
        Method::PUT | Method::PATCH => {
            let _w = ctx.write.lock().await;
            let before = current(ctx, r)?;
            check_match(headers, before.as_ref())?;
            let mut definition = parse_body(body)?;
            if *method == Method::PATCH {
                // PATCH updates tags only, as on Azure's network resources.
                let mut whole = before.clone().ok_or_else(not_found)?;
                if let Some(tags) = definition.get("tags") {
                    whole["tags"] = tags.clone();
                }
                definition = whole;
            }
            put(ctx, r, api_version, &definition).await?;
            let op = ctx.realizer.submit();
            let after = current(ctx, r)?.ok_or_else(not_found)?;
            let status = if before.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut resp = (status, Json(after)).into_response();
            add_op_headers(ctx, &mut resp, &op, &r.namespace);
            resp.headers_mut().remove("Location");
            Ok(resp)
        }
        Method::DELETE => {
            let _w = ctx.write.lock().await;
            let before = current(ctx, r)?;
            let Some(before) = before else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            check_match(headers, Some(&before))?;
            delete(ctx, r).await?;
            let op = ctx.realizer.submit();
            Ok(accepted(ctx, &op, &r.namespace))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {}.", r.full_type()),
        )),
    }
}

/// Deletes the resource at `r`; a subnet (a security rule) is removed by redefining its
/// network (NSG) without it (a subnet is refused while something uses it, as Azure refuses
/// with InUseSubnetCannotBeDeleted).
async fn delete(ctx: &Ctx, r: &ResourcePath) -> Result<(), ApiError> {
    if r.types.len() == 2 {
        let site = ctx.backend.site()?;
        let resources = site.resources().map_err(|e| from_site(&e, false))?;
        let subnet_id = r.id();
        let users: Vec<String> = resources
            .iter()
            .filter(|x| {
                x.references().iter().any(|(_, t)| {
                    site::same_id(t, &subnet_id)
                        || t.to_ascii_lowercase()
                            .starts_with(&format!("{}/", subnet_id.to_ascii_lowercase()))
                })
            })
            .map(|x| x.id().to_string())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::bad_request(
                "InUseSubnetCannotBeDeleted",
                format!(
                    "Subnet {} is in use by {} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet.",
                    r.names[1],
                    users.join(", ")
                ),
            ));
        }
        let parent = ResourcePath {
            types: vec![r.types[0].clone()],
            names: vec![r.names[0].clone()],
            ..r.clone()
        };
        let mut vnet = current(ctx, &parent)?.ok_or_else(|| {
            ApiError::not_found(&parent.full_type(), &parent.template_name(), &r.group)
        })?;
        if let Some(Value::Array(subnets)) = vnet.pointer_mut(&child_pointer(r)) {
            subnets.retain(|s| {
                !s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(&r.names[1]))
            });
        }
        let api = resources
            .iter()
            .find(|x| site::same_id(x.id(), &parent.id()))
            .map(|x| x.meta().api_version.clone())
            .unwrap_or_default();
        return put(ctx, &parent, &api, &vnet).await;
    }
    let backend = ctx.backend.clone();
    let ids = vec![r.id()];
    tokio::task::spawn_blocking(move || backend.delete(&ids))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Deletes every resource of a group, users before what they use.
pub(crate) async fn delete_group_resources(ctx: &Ctx, group: &str) -> Result<(), ApiError> {
    let _w = ctx.write.lock().await;
    let site = ctx.backend.site()?;
    let mut ids: Vec<String> = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .iter()
        .filter(|x| in_group(x.id(), group))
        .map(|x| x.id().to_string())
        .collect();
    // Each pass deletes what nothing else uses any more.
    while !ids.is_empty() {
        let before = ids.len();
        let mut left = Vec::new();
        for id in ids {
            let backend = ctx.backend.clone();
            let one = vec![id.clone()];
            let r = tokio::task::spawn_blocking(move || backend.delete(&one))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if r.is_err() {
                left.push(id);
            }
        }
        if left.len() == before {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ResourceGroupDeletionBlocked",
                format!(
                    "Deletion of resource group '{group}' failed: {} are still in use.",
                    left.join(", ")
                ),
            ));
        }
        ids = left;
    }
    Ok(())
}

/// The stored definition of a resource, as a body to PUT again (for actions that change one
/// property).
pub(crate) fn definition(ctx: &Ctx, r: &ResourcePath) -> Result<(Value, String), ApiError> {
    let site = ctx.backend.site()?;
    let res = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .into_iter()
        .find(|x| site::same_id(x.id(), &r.id()))
        .ok_or_else(|| ApiError::not_found(&r.full_type(), &r.template_name(), &r.group))?;
    Ok((res.arm_json(), res.meta().api_version.clone()))
}

/// PUTs a definition again (actions).
pub(crate) async fn redefine(
    ctx: &Ctx,
    r: &ResourcePath,
    api_version: &str,
    body: &Value,
) -> Result<String, ApiError> {
    put(ctx, r, api_version, body).await?;
    Ok(ctx.realizer.submit())
}

/// A VM's instance view: a lab VM runs (its namespace exists) once it is provisioned.
fn instance_view(vm: &Value) -> Value {
    let state = vm
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or("Updating");
    let power = if state == "Succeeded" {
        json!({ "code": "PowerState/running", "level": "Info", "displayStatus": "VM running" })
    } else {
        json!({ "code": "PowerState/starting", "level": "Info", "displayStatus": "VM starting" })
    };
    json!({
        "computerName": vm.pointer("/properties/osProfile/computerName"),
        "statuses": [
            {
                "code": format!("ProvisioningState/{}", state.to_ascii_lowercase()),
                "level": "Info",
                "displayStatus": format!("Provisioning {}", state.to_ascii_lowercase()),
            },
            power,
        ],
    })
}

/// A connection PUT without `sharedKey` keeps the key it has (GET never shows the key, so a
/// client's read-modify-write, such as `az network vpn-connection ipsec-policy add`, omits
/// it), as Azure keeps it.
fn keep_shared_key(ctx: &Ctx, r: &ResourcePath, body: &mut Value) -> Result<(), ApiError> {
    if !r
        .full_type()
        .eq_ignore_ascii_case("Microsoft.Network/connections")
        || body.pointer("/properties/sharedKey").is_some()
    {
        return Ok(());
    }
    let site = ctx.backend.site()?;
    let key = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .into_iter()
        .find(|x| site::same_id(x.id(), &r.id()))
        .and_then(|x| match x {
            site::Resource::Connection(c) => c.shared_key.map(|k| k.expose().to_string()),
            _ => None,
        });
    if let (Some(key), Some(Value::Object(props))) = (key, body.get_mut("properties")) {
        props.insert("sharedKey".into(), Value::String(key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, DeployInput};
    use crate::groups::{Group, Groups};
    use crate::ops::Realizer;
    use std::sync::{Arc, Mutex};

    /// A planner that refuses every deployment by quoting its template back.
    struct Quoting;

    impl Backend for Quoting {
        fn site(&self) -> Result<site::Site, ApiError> {
            Err(ApiError::internal("no store"))
        }
        fn plan(&self, _: &DeployInput) -> Result<site::Plan, ApiError> {
            Err(ApiError::internal("no plan"))
        }
        fn apply(&self, input: &DeployInput) -> Result<site::DeploymentRecord, ApiError> {
            Err(ApiError::bad_request(
                "InvalidRequestFormat",
                format!("cannot use {}", input.template),
            ))
        }
        fn delete(&self, _: &[String]) -> Result<(), ApiError> {
            Ok(())
        }
        fn live_view(&self, _: &str) -> Option<Value> {
            None
        }
        fn delete_deployment(&self, _: &str) -> Result<bool, ApiError> {
            Ok(false)
        }
        fn reset_gateway(&self, _: &str) -> Result<(), ApiError> {
            Ok(())
        }
        fn gateway_bgp(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<serde_json::Value, ApiError> {
            Ok(serde_json::json!({ "value": [] }))
        }
        fn start_packet_capture(&self, _: &str, _: Option<&str>) -> Result<String, ApiError> {
            Ok(String::new())
        }
        fn stop_packet_capture(&self, _: &str, _: &str) -> Result<String, ApiError> {
            Ok(String::new())
        }
        fn realize(&self) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_put_never_quotes_the_shared_key() {
        let dir = std::env::temp_dir().join(format!("armapi-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut groups = Groups::load(dir.join("groups.json"));
        groups
            .put(Group {
                name: "rg".into(),
                location: "azure".into(),
                tags: Default::default(),
            })
            .unwrap();
        let backend: Arc<dyn Backend> = Arc::new(Quoting);
        let ctx = Ctx {
            cfg: crate::server::EndpointConfig {
                site: "azure".into(),
                kind: site::kind("azure").unwrap(),
                subscription_id: "sub".into(),
                default_group: "azure".into(),
                location: "azure".into(),
                principal: crate::auth::Principal::new("app", "tenant", "secret"),
                key: crate::auth::TokenKey::new(&[7; 32]),
                groups_file: dir.join("groups.json"),
                port: 0,
            },
            base: "https://127.0.0.1:1".into(),
            realizer: Realizer::start(backend.clone()),
            backend,
            groups: Mutex::new(groups),
            write: tokio::sync::Mutex::new(()),
        };
        let r = match crate::paths::parse(
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/connections/c",
        ) {
            crate::paths::Target::Resource(r) => r,
            other => panic!("{other:?}"),
        };
        let body =
            json!({ "location": "azure", "properties": { "sharedKey": "hunter2-very-secret" } });
        let e = put(&ctx, &r, "2024-05-01", &body).await.unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.message.contains("***"), "{}", e.message);
        assert!(!e.message.contains("hunter2-very-secret"), "{}", e.message);
    }
}
