//! Tenants, subscriptions, locations, providers and resource groups of one site.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::groups::Group;
use crate::server::Ctx;

fn subscription(ctx: &Ctx) -> Value {
    let s = &ctx.cfg.subscription_id;
    json!({
        "id": format!("/subscriptions/{s}"),
        "subscriptionId": s,
        "tenantId": ctx.cfg.principal.tenant_id,
        "displayName": format!("hybridnet {} ({})", ctx.cfg.site, ctx.cfg.kind.description),
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "hybridnet-lab",
            "spendingLimit": "Off",
        },
        "authorizationSource": "RoleBased",
    })
}

/// `GET /tenants`.
pub(crate) fn tenants(ctx: &Ctx) -> Response {
    let t = &ctx.cfg.principal.tenant_id;
    Json(json!({ "value": [{
        "id": format!("/tenants/{t}"),
        "tenantId": t,
        "tenantCategory": "Home",
        "displayName": format!("hybridnet {}", ctx.cfg.site),
    }]}))
    .into_response()
}

/// `GET /subscriptions`.
pub(crate) fn list(ctx: &Ctx) -> Response {
    Json(json!({ "value": [subscription(ctx)] })).into_response()
}

/// `GET /subscriptions/{id}`.
pub(crate) fn one(ctx: &Ctx) -> Response {
    Json(subscription(ctx)).into_response()
}

/// `GET /subscriptions/{id}/locations`: the site's one location.
pub(crate) fn locations(ctx: &Ctx) -> Response {
    let l = &ctx.cfg.location;
    Json(json!({ "value": [{
        "id": format!("/subscriptions/{}/locations/{l}", ctx.cfg.subscription_id),
        "name": l,
        "displayName": l,
        "regionalDisplayName": l,
        "metadata": { "regionType": "Physical" },
    }]}))
    .into_response()
}

/// The resource types each provider serves on this site (its kind's catalogue, plus the
/// operation endpoints), with the API versions its kind accepts, newest first as ARM lists them.
fn provider(ctx: &Ctx, ns: &str) -> Value {
    let kind = &ctx.cfg.kind;
    let found = kind
        .providers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(ns));
    let canonical = found.map_or(ns, |(n, _)| n.as_str());
    let mut types: Vec<String> = found.map(|(_, t)| t.clone()).unwrap_or_default();
    if matches!(canonical, "Microsoft.Network" | "Microsoft.Compute") {
        types.extend(
            [
                "locations",
                "locations/operations",
                "locations/operationResults",
            ]
            .map(String::from),
        );
    }
    if canonical == "Microsoft.Resources" {
        types.push("subscriptions".into());
    }
    let versions: Vec<String> = kind
        .api_version_range(&format!("{canonical}/x"))
        .map(|r| vec![r.max.clone(), r.min.clone()])
        .unwrap_or_else(|| {
            vec![
                "2024-05-01".into(),
                "2023-09-01".into(),
                "2022-07-01".into(),
            ]
        });
    json!({
        "id": format!("/subscriptions/{}/providers/{canonical}", ctx.cfg.subscription_id),
        "namespace": canonical,
        "registrationState": if types.is_empty() { "NotRegistered" } else { "Registered" },
        "resourceTypes": types.iter().map(|t| json!({
            "resourceType": t,
            "locations": [ctx.cfg.location],
            "apiVersions": versions,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /subscriptions/{id}/providers[/{ns}]` (and `POST …/register`, which has nothing to do).
pub(crate) fn providers(ctx: &Ctx, ns: Option<&str>) -> Response {
    match ns {
        Some(ns) => Json(provider(ctx, ns)).into_response(),
        None => {
            let all: Vec<Value> = ctx
                .cfg
                .kind
                .providers
                .keys()
                .map(|n| provider(ctx, n))
                .collect();
            Json(json!({ "value": all })).into_response()
        }
    }
}

fn group_json(ctx: &Ctx, g: &Group) -> Value {
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}", ctx.cfg.subscription_id, g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "tags": g.tags,
        "properties": { "provisioningState": "Succeeded" },
    })
}

/// The groups: those made through the API, and the site's own while it holds resources.
pub(crate) fn all_groups(ctx: &Ctx) -> Vec<Group> {
    let mut out: Vec<Group> = ctx
        .groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .all()
        .cloned()
        .collect();
    let own = &ctx.cfg.default_group;
    if !out.iter().any(|g| g.name.eq_ignore_ascii_case(own)) {
        let has_resources = ctx
            .backend
            .site()
            .and_then(|s| {
                s.resources()
                    .map_err(|e| crate::error::from_site(&e, false))
            })
            .is_ok_and(|r| !r.is_empty());
        if has_resources {
            out.push(Group {
                name: own.clone(),
                location: ctx.cfg.location.clone(),
                tags: Default::default(),
            });
        }
    }
    out
}

/// The group named `name`, or 404 `ResourceGroupNotFound`.
pub(crate) fn find_group(ctx: &Ctx, name: &str) -> Result<Group, ApiError> {
    all_groups(ctx)
        .into_iter()
        .find(|g| g.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| ApiError::group_not_found(name))
}

/// `GET /subscriptions/{id}/resourcegroups`.
pub(crate) fn groups(ctx: &Ctx) -> Response {
    let v: Vec<Value> = all_groups(ctx).iter().map(|g| group_json(ctx, g)).collect();
    Json(json!({ "value": v })).into_response()
}

/// `GET|HEAD|PUT|PATCH|DELETE /subscriptions/{id}/resourcegroups/{rg}`.
pub(crate) async fn group(
    ctx: &Ctx,
    method: &Method,
    name: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match *method {
        Method::GET => Ok(Json(group_json(ctx, &find_group(ctx, name)?)).into_response()),
        Method::HEAD => Ok(match find_group(ctx, name) {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }),
        Method::PUT | Method::PATCH => {
            let v: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestContent",
                    format!("The request content was invalid and could not be deserialized: {e}"),
                )
            })?;
            let existing = find_group(ctx, name).ok();
            let location = v
                .get("location")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| existing.as_ref().map(|g| g.location.clone()))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "LocationRequired",
                        "The location property is required for this definition.",
                    )
                })?;
            if !location.eq_ignore_ascii_case(&ctx.cfg.location) {
                return Err(ApiError::bad_request(
                    "LocationNotAvailableForResourceGroup",
                    format!("The provided location '{location}' is not available for resource group. List of available regions is '{}'.", ctx.cfg.location),
                ));
            }
            let tags = v
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .or_else(|| existing.as_ref().map(|g| g.tags.clone()))
                .unwrap_or_default();
            let g = Group {
                name: existing.map_or_else(|| name.to_string(), |g| g.name),
                location,
                tags,
            };
            let created = ctx
                .groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(g.clone())
                .map_err(|e| ApiError::internal(format!("recording the resource group: {e}")))?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(group_json(ctx, &g))).into_response())
        }
        Method::DELETE => {
            let Ok(g) = find_group(ctx, name) else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            crate::resources::delete_group_resources(ctx, &g.name).await?;
            ctx.groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&g.name)
                .map_err(|e| ApiError::internal(format!("removing the resource group: {e}")))?;
            let op = ctx.realizer.submit();
            Ok(crate::resources::accepted(ctx, &op, "Microsoft.Resources"))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on a resource group."),
        )),
    }
}

/// The VM image catalogue. A lab VM is a network namespace: it runs no image, so every
/// publisher/offer/SKU a client names resolves to one version (`1.0.0`, Linux, x64), and the
/// name is recorded on the VM as given, as templates' `imageReference` are.
pub(crate) fn vm_images(ctx: &Ctx, rest: &[String]) -> Result<Response, ApiError> {
    let base = format!(
        "/Subscriptions/{}/Providers/Microsoft.Compute/Locations/{}/Publishers",
        ctx.cfg.subscription_id, ctx.cfg.location
    );
    let l = |s: &String| s.to_ascii_lowercase();
    let item =
        |id: String, name: &str| json!({ "location": ctx.cfg.location, "name": name, "id": id });
    let segs: Vec<String> = rest.iter().map(l).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions"] => {
            let id = format!(
                "{base}/{}/ArtifactTypes/VMImage/Offers/{}/Skus/{}/Versions/1.0.0",
                rest[0], rest[4], rest[6]
            );
            Ok(Json(json!([item(id, "1.0.0")])).into_response())
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus", _, "versions", _] => {
            let id = format!(
                "{base}/{}/ArtifactTypes/VMImage/Offers/{}/Skus/{}/Versions/{}",
                rest[0], rest[4], rest[6], rest[8]
            );
            let mut v = item(id, &rest[8]);
            v["properties"] = json!({
                "osDiskImage": { "operatingSystem": "Linux", "sizeInGb": 30 },
                "dataDiskImages": [],
                "hyperVGeneration": "V2",
                "architecture": "x64",
                "automaticOSUpgradeProperties": { "automaticOSUpgradeSupported": false },
                "imageDeprecationStatus": { "imageState": "Active" },
            });
            Ok(Json(v).into_response())
        }
        [_, "artifacttypes", "vmimage", "offers", _, "skus"] => {
            let id = format!(
                "{base}/{}/ArtifactTypes/VMImage/Offers/{}/Skus/server",
                rest[0], rest[4]
            );
            Ok(Json(json!([item(id, "server")])).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "The lab's image catalogue answers version queries of a publisher/offer/SKU.",
        )),
    }
}
