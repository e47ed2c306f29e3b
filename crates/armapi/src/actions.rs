//! Actions on resources that the lab realizes: a connection's shared key (GET, PUT, reset),
//! a gateway's reset and its BGP lists (peer status, learned and advertised routes), packet
//! capture on a gateway or connection, and a NIC's effective network security rules.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{from_site, ApiError};
use crate::paths::ResourcePath;
use crate::resources::{accepted, definition, redefine};
use crate::server::Ctx;

fn not_supported(r: &ResourcePath, method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "InvalidResourceType",
        format!(
            "{method} {} is not an operation of {}.",
            r.action.join("/"),
            r.full_type()
        ),
    )
}

/// The key of connection `r`.
fn shared_key(ctx: &Ctx, r: &ResourcePath) -> Result<Option<String>, ApiError> {
    let site = ctx.backend.site()?;
    let res = site
        .resources()
        .map_err(|e| from_site(&e, false))?
        .into_iter()
        .find(|x| site::same_id(x.id(), &r.id()))
        .ok_or_else(|| ApiError::not_found(&r.full_type(), &r.template_name(), &r.group))?;
    match res {
        site::Resource::Connection(c) => Ok(c.shared_key.map(|k| k.expose().to_string())),
        _ => Err(ApiError::not_found(
            &r.full_type(),
            &r.template_name(),
            &r.group,
        )),
    }
}

/// A random key of `len` characters from letters and digits (Azure's reset makes one).
fn random_key(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < len && (*b as usize) < ALPHABET.len() * 4 {
                out.push(ALPHABET[*b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

async fn set_key(ctx: &Ctx, r: &ResourcePath, key: &str) -> Result<String, ApiError> {
    let (mut def, api) = definition(ctx, r)?;
    def["properties"]["sharedKey"] = Value::String(key.to_string());
    redefine(ctx, r, &api, &def).await
}

/// Dispatches an action path.
pub(crate) async fn handle(
    ctx: &Ctx,
    method: &Method,
    r: &ResourcePath,
    api_version: &str,
    peer: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let is_connection = r
        .full_type()
        .eq_ignore_ascii_case("Microsoft.Network/connections");
    let is_gateway = r
        .full_type()
        .eq_ignore_ascii_case("Microsoft.Network/virtualNetworkGateways");
    let action: Vec<&str> = r.action.iter().map(String::as_str).collect();
    match (action.as_slice(), method.clone()) {
        (["sharedkey"], Method::GET) if is_connection => {
            let key = shared_key(ctx, r)?.unwrap_or_default();
            Ok(
                Json(json!({ "id": format!("{}/sharedkey", r.id()), "value": key }))
                    .into_response(),
            )
        }
        (["sharedkey"], Method::PUT) if is_connection => {
            let _w = ctx.write.lock().await;
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(key) = v.get("value").and_then(Value::as_str) else {
                return Err(ApiError::bad_request(
                    "InvalidRequestFormat",
                    "The shared key must be given as {\"value\": \"…\"}.",
                ));
            };
            if key.is_empty() || key.len() > 128 {
                return Err(ApiError::bad_request(
                    "InvalidSharedKeyLength",
                    "The shared key must be 1 to 128 characters long.",
                ));
            }
            let op = set_key(ctx, r, key).await?;
            let mut resp = Json(json!({ "id": format!("{}/sharedkey", r.id()), "value": key }))
                .into_response();
            resp.headers_mut()
                .extend(accepted(ctx, &op, &r.namespace).headers().clone());
            Ok(resp)
        }
        (["sharedkey", "reset"], Method::POST) if is_connection => {
            let _w = ctx.write.lock().await;
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let len = v.get("keyLength").and_then(Value::as_u64).unwrap_or(32);
            if !(1..=128).contains(&len) {
                return Err(ApiError::bad_request(
                    "InvalidSharedKeyLength",
                    format!("keyLength {len} is out of range: 1 to 128."),
                ));
            }
            let key = random_key(len as usize);
            set_key(ctx, r, &key).await?;
            // The result is the key length (never the key); the tunnels follow as the lab
            // realizes the change, which a GET of the connection shows.
            Ok(Json(json!({ "keyLength": len })).into_response())
        }
        (["reset"], Method::POST) if is_gateway => {
            let backend = ctx.backend.clone();
            let id = r.id();
            tokio::task::spawn_blocking(move || backend.reset_gateway(&id))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            let op = ctx.realizer.submit();
            // The operation's result is the gateway itself (what `reset` returns on Azure).
            let mut resp = accepted(ctx, &op, &r.namespace);
            let location = format!("{}{}?api-version={api_version}", ctx.base, r.id());
            if let Ok(h) = axum::http::HeaderValue::from_str(&location) {
                resp.headers_mut().insert("Location", h);
            }
            Ok(resp)
        }
        (
            [list @ ("getbgppeerstatus" | "getlearnedroutes" | "getadvertisedroutes")],
            Method::POST,
        ) if is_gateway => {
            // Azure answers these as long-running operations; a 200 with the result is a
            // finished one for every client
            let backend = ctx.backend.clone();
            let (id, list, peer) = (r.id(), list.to_string(), peer.map(str::to_string));
            let v = tokio::task::spawn_blocking(move || {
                backend.gateway_bgp(&id, &list, peer.as_deref())
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(Json(v).into_response())
        }
        (["startpacketcapture"], Method::POST) if is_gateway || is_connection => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let filter = v
                .get("filterData")
                .and_then(Value::as_str)
                .map(str::to_string);
            let backend = ctx.backend.clone();
            let id = r.id();
            let out = tokio::task::spawn_blocking(move || {
                backend.start_packet_capture(&id, filter.as_deref())
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(Json(Value::String(out)).into_response())
        }
        (["stoppacketcapture"], Method::POST) if is_gateway || is_connection => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(sas) = v.get("sasUrl").and_then(Value::as_str).map(str::to_string) else {
                return Err(ApiError::bad_request(
                    "MissingRequiredParameter",
                    "stopPacketCapture needs sasUrl: where to write the capture (in the lab, a file:///path).",
                ));
            };
            let backend = ctx.backend.clone();
            let id = r.id();
            let out = tokio::task::spawn_blocking(move || backend.stop_packet_capture(&id, &sas))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(Json(Value::String(out)).into_response())
        }
        (["effectivenetworksecuritygroups"], Method::POST)
            if r.full_type()
                .eq_ignore_ascii_case("Microsoft.Network/networkInterfaces") =>
        {
            Ok(Json(effective_nsgs(ctx, r)?).into_response())
        }
        _ => Err(not_supported(r, method)),
    }
}

/// `az network nic list-effective-nsg`: the NSGs in effect on NIC `r` (its subnet's and its
/// own) with every rule, the defaults included, and service tags expanded, as the lab
/// enforces them.
fn effective_nsgs(ctx: &Ctx, r: &ResourcePath) -> Result<Value, ApiError> {
    let site = ctx.backend.site()?;
    let resources = site.resources().map_err(|e| from_site(&e, false))?;
    let nic = resources
        .iter()
        .find_map(|x| match x {
            site::Resource::NetworkInterface(n) if site::same_id(&n.meta.id, &r.id()) => Some(n),
            _ => None,
        })
        .ok_or_else(|| ApiError::not_found(&r.full_type(), &r.template_name(), &r.group))?;
    let text = |v: &[String]| {
        if v.len() == 1 {
            v[0].clone()
        } else {
            String::new()
        }
    };
    let value: Vec<Value> = site::nsg::effective_nsgs(&resources, nic)
        .iter()
        .map(|layer| {
            let association = match &layer.association {
                site::nsg::Association::Subnet(id) => json!({ "subnet": { "id": id } }),
                site::nsg::Association::NetworkInterface(id) => {
                    json!({ "networkInterface": { "id": id } })
                }
            };
            let rules: Vec<Value> = layer
                .rules
                .iter()
                .map(|e| {
                    let ports = |p: &[site::PortRange]| -> Vec<String> {
                        if p.is_empty() {
                            vec!["0-65535".into()]
                        } else {
                            p.iter()
                                .map(|r| format!("{}-{}", r.first, r.last))
                                .collect()
                        }
                    };
                    let addrs = |a: &[site::AddressMatch]| -> Vec<String> {
                        a.iter()
                            .map(|x| match x {
                                site::AddressMatch::Any => "0.0.0.0/0".into(),
                                other => other.to_string(),
                            })
                            .collect()
                    };
                    let nets = |n: &[site::Ipv4Net]| -> Vec<String> {
                        n.iter().map(|p| p.to_string()).collect()
                    };
                    let (sp, dp) = (
                        ports(&e.rule.source_ports),
                        ports(&e.rule.destination_ports),
                    );
                    let (sa, da) = (addrs(&e.rule.source), addrs(&e.rule.destination));
                    json!({
                        "name": e.name,
                        "protocol": e.rule.protocol.to_string(),
                        "sourcePortRange": text(&sp),
                        "sourcePortRanges": sp,
                        "destinationPortRange": text(&dp),
                        "destinationPortRanges": dp,
                        "sourceAddressPrefix": text(&sa),
                        "sourceAddressPrefixes": sa,
                        "expandedSourceAddressPrefix": nets(&e.source),
                        "destinationAddressPrefix": text(&da),
                        "destinationAddressPrefixes": da,
                        "expandedDestinationAddressPrefix": nets(&e.destination),
                        "access": format!("{:?}", e.rule.access),
                        "priority": e.rule.priority,
                        "direction": format!("{:?}", e.rule.direction),
                    })
                })
                .collect();
            json!({
                "networkSecurityGroup": { "id": layer.nsg_id },
                "association": association,
                "effectiveSecurityRules": rules,
            })
        })
        .collect();
    Ok(json!({ "value": value }))
}
