//! `Microsoft.Resources/deployments` of a resource group: templates through the lab's ARM
//! engine, with validate and what-if, recorded as the site's deployments.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::backend::{is_api_deployment, DeployInput};
use crate::error::{from_site, ApiError};
use crate::server::Ctx;

fn deployment_id(ctx: &Ctx, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.Resources/deployments/{name}",
        ctx.cfg.subscription_id
    )
}

fn timestamp(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Wraps bare output values as `{type, value}` (ARM's shape).
fn outputs_json(outputs: &Map<String, Value>) -> Value {
    Value::Object(
        outputs
            .iter()
            .map(|(k, v)| {
                let wrapped = if v.get("value").is_some() && v.get("type").is_some() {
                    v.clone()
                } else {
                    let t = match v {
                        Value::String(_) => "String",
                        Value::Bool(_) => "Bool",
                        Value::Number(_) => "Int",
                        Value::Array(_) => "Array",
                        _ => "Object",
                    };
                    json!({ "type": t, "value": v })
                };
                (k.clone(), wrapped)
            })
            .collect(),
    )
}

/// A deployment's provisioningState and, when Failed, why (Azure's outcome: Failed also when
/// one of its resources failed to provision).
fn outcome_of(
    d: &site::DeploymentRecord,
    resources: &[site::Resource],
) -> (&'static str, Option<String>) {
    match d.outcome(resources) {
        site::DeploymentState::Succeeded => ("Succeeded", None),
        site::DeploymentState::Failed { error } => ("Failed", Some(error)),
    }
}

fn record_json(
    ctx: &Ctx,
    group: &str,
    d: &site::DeploymentRecord,
    (state, error): (&str, Option<String>),
) -> Value {
    let mut v = json!({
        "id": deployment_id(ctx, group, &d.name),
        "name": d.name,
        "type": "Microsoft.Resources/deployments",
        "properties": {
            "provisioningState": state,
            "timestamp": timestamp(d.timestamp),
            "mode": format!("{:?}", d.mode),
            "templateHash": d.template_hash,
            "parameters": Value::Object(d.parameters.iter().map(|(k, v)| {
                let v = if v.get("value").is_some() { v.clone() } else { json!({ "value": v }) };
                (k.clone(), v)
            }).collect()),
            "outputs": outputs_json(&d.outputs),
            "outputResources": d.resources.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
            "correlationId": uuid::Uuid::new_v4().to_string(),
        },
    });
    if let Some(message) = error {
        v["properties"]["error"] = json!({
            "code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed.",
            "details": [{ "code": "ResourceDeploymentFailure", "message": message }],
        });
    }
    v
}

/// A deployment request body. Resource Manager reads it as leniently as templates (az
/// splices the template in unquoted: `…, template:{…}}}`, with the file's comments), so JSON5
/// is accepted where strict JSON is not.
fn request_json(body: &Bytes) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The request content is not UTF-8: {e}"),
        )
    })?;
    json5::from_str(text).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {e}"),
        )
    })
}

fn input(group: &str, name: &str, body: &Bytes) -> Result<DeployInput, ApiError> {
    let v = request_json(body)?;
    let props = v.get("properties").cloned().unwrap_or(Value::Null);
    if props.get("templateLink").is_some() {
        return Err(ApiError::bad_request(
            "InvalidTemplateDeployment",
            "templateLink is not supported by this lab (it reaches no network but its own): send the template inline (az deployment group create --template-file).",
        ));
    }
    let template = props.get("template").ok_or_else(|| {
        ApiError::bad_request(
            "InvalidRequestContent",
            "The deployment has no template: properties.template is required.",
        )
    })?;
    let parameters = match props.get("parameters") {
        Some(p @ Value::Object(_)) => arm::parse_parameters(&p.to_string())
            .map_err(|e| ApiError::bad_request("InvalidDeploymentParameterValue", e.to_string()))?,
        _ => Map::new(),
    };
    let mode = match props.get("mode").and_then(Value::as_str) {
        Some(m) if m.eq_ignore_ascii_case("complete") => site::DeploymentMode::Complete,
        _ => site::DeploymentMode::Incremental,
    };
    Ok(DeployInput {
        resource_group: group.to_string(),
        name: name.to_string(),
        template: template.to_string(),
        parameters,
        mode,
    })
}

/// Dispatches `…/deployments[/{name}[/{action}]]`.
pub(crate) async fn handle(
    ctx: &Ctx,
    method: &Method,
    group: &str,
    name: Option<&str>,
    action: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let group = crate::subs::find_group(ctx, group)?.name;
    let site = ctx.backend.site()?;
    let resources = site.resources().map_err(|e| from_site(&e, true))?;
    let records: Vec<site::DeploymentRecord> = site
        .deployments()
        .map_err(|e| from_site(&e, true))?
        .into_iter()
        .filter(|d| !is_api_deployment(&d.name))
        .collect();
    let Some(name) = name else {
        let v: Vec<Value> = records
            .iter()
            .map(|d| record_json(ctx, &group, d, outcome_of(d, &resources)))
            .collect();
        return Ok(Json(json!({ "value": v })).into_response());
    };
    let found = records
        .iter()
        .rev()
        .find(|d| d.name.eq_ignore_ascii_case(name));
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "DeploymentNotFound",
            format!("Deployment '{name}' could not be found."),
        )
    };
    match (
        action.map(str::to_ascii_lowercase).as_deref(),
        method.clone(),
    ) {
        (None, Method::GET) => {
            let d = found.ok_or_else(not_found)?;
            Ok(Json(record_json(ctx, &group, d, outcome_of(d, &resources))).into_response())
        }
        (None, Method::HEAD) => Ok(if found.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        }
        .into_response()),
        (None, Method::PUT) => {
            let input = input(&group, name, body)?;
            let _w = ctx.write.lock().await;
            let backend = ctx.backend.clone();
            let record = tokio::task::spawn_blocking(move || backend.apply(&input))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            let op = ctx.realizer.submit();
            let mut resp = (
                StatusCode::CREATED,
                Json(record_json(ctx, &group, &record, ("Running", None))),
            )
                .into_response();
            let poll = format!(
                "{}/subscriptions/{}/providers/Microsoft.Resources/locations/{}/operations/{op}?api-version=2020-06-01",
                ctx.base, ctx.cfg.subscription_id, ctx.cfg.location
            );
            if let Ok(h) = axum::http::HeaderValue::from_str(&poll) {
                resp.headers_mut().insert("Azure-AsyncOperation", h);
            }
            Ok(resp)
        }
        (None, Method::DELETE) => {
            let Some(d) = found else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            let (backend, recorded) = (ctx.backend.clone(), d.name.clone());
            tokio::task::spawn_blocking(move || backend.delete_deployment(&recorded))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Some("validate"), Method::POST) => {
            let input = input(&group, name, body)?;
            let backend = ctx.backend.clone();
            let plan = tokio::task::spawn_blocking(move || backend.plan(&input))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(Json(json!({
                "id": deployment_id(ctx, &group, name),
                "name": name,
                "type": "Microsoft.Resources/deployments",
                "properties": {
                    "provisioningState": "Succeeded",
                    "mode": format!("{:?}", plan.mode),
                    "templateHash": plan.template_hash,
                    "validatedResources": plan.changes.iter().map(|c| json!({ "id": c.id })).collect::<Vec<_>>(),
                },
            }))
            .into_response())
        }
        (Some("whatif"), Method::POST) => {
            let input = input(&group, name, body)?;
            let backend = ctx.backend.clone();
            let plan = tokio::task::spawn_blocking(move || backend.plan(&input))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            let changes: Vec<Value> = plan
                .changes
                .iter()
                .map(|c| {
                    let t = match c.action {
                        site::ChangeAction::Create => "Create",
                        site::ChangeAction::Update => "Modify",
                        site::ChangeAction::NoChange => "NoChange",
                        site::ChangeAction::Delete => "Delete",
                    };
                    json!({ "resourceId": c.id, "changeType": t })
                })
                .collect();
            Ok(
                Json(json!({ "status": "Succeeded", "properties": { "changes": changes } }))
                    .into_response(),
            )
        }
        (Some("operations"), Method::GET) => {
            let d = found.ok_or_else(not_found)?;
            let v: Vec<Value> = d
                .resources
                .iter()
                .map(|id| {
                    json!({
                        "id": format!("{}/operations/{}", deployment_id(ctx, &group, name), operation_id(id)),
                        "operationId": id,
                        "properties": {
                            "provisioningOperation": "Create",
                            "provisioningState": operation_state(d, id, &resources),
                            "targetResource": { "id": id },
                        },
                    })
                })
                .collect();
            Ok(Json(json!({ "value": v })).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "{method} {} is not an operation of a deployment.",
                action.unwrap_or("")
            ),
        )),
    }
}

/// A deployment operation's id: stable per target resource, as ARM's are per deployment.
fn operation_id(resource_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(resource_id.as_bytes()))[..16].to_uppercase()
}

/// A deployment operation's state: its resource's provisioning state (Failed when the lab
/// could not realize it), or the deployment's own when it was refused.
fn operation_state(
    d: &site::DeploymentRecord,
    id: &str,
    resources: &[site::Resource],
) -> &'static str {
    if let site::DeploymentState::Failed { .. } = d.state {
        return "Failed";
    }
    match resources
        .iter()
        .find(|r| site::same_id(r.id(), id))
        .map(|r| r.provisioning_state())
    {
        Some(site::ProvisioningState::Failed { .. }) => "Failed",
        Some(site::ProvisioningState::Updating) => "Running",
        _ => "Succeeded",
    }
}
