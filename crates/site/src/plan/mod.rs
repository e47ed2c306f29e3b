//! Planning: types each evaluated resource, resolves its references against the deployment so
//! far and the site's stored state, allocates addresses and checks the kind's rules. Nothing is
//! written; the result is a [`Plan`].

mod addresses;
mod connection;
mod gateway;
mod local_gateway;
mod nic;
mod nsg;
mod public_ip;
mod refs;
mod vm;
mod vnet;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use arm::{EvaluatedResource, ReferenceResolver};
use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use crate::error::{Location, SiteError};
use crate::json::get_ci;
use crate::kind::{Feature, GatewaySku, KindProfile};
use crate::model::*;
use crate::props::{self, Prefix};
use crate::store::SiteInfo;
use crate::{ChangeAction, DeploymentMode, Plan, PlannedChange};

const T_VNET: &str = "microsoft.network/virtualnetworks";
const T_SUBNET: &str = "microsoft.network/virtualnetworks/subnets";
const T_PIP: &str = "microsoft.network/publicipaddresses";
const T_NIC: &str = "microsoft.network/networkinterfaces";
const T_VM: &str = "microsoft.compute/virtualmachines";
const T_VNG: &str = "microsoft.network/virtualnetworkgateways";
const T_LNG: &str = "microsoft.network/localnetworkgateways";
const T_CONN: &str = "microsoft.network/connections";
const T_NSG: &str = "microsoft.network/networksecuritygroups";
const T_NSG_RULE: &str = "microsoft.network/networksecuritygroups/securityrules";

pub(crate) struct Planner<'a> {
    kind: &'static KindProfile,
    info: &'a SiteInfo,
    existing: Vec<Resource>,
    planned: Vec<Resource>,
    /// Lowercase id → index, for `planned`, `existing` and `foreign` (ids compare case-insensitively).
    planned_index: HashMap<String, usize>,
    existing_index: HashMap<String, usize>,
    foreign_index: HashMap<String, usize>,
    deployment_name: String,
    realized: &'a [String],
    /// IKE versions the realizing gateways speak.
    gateway_protocols: &'a [ConnectionProtocol],
    notes: Vec<String>,
    /// Child subnet resource ids declared in this deployment (a VNet re-put keeps them).
    child_subnets: Vec<String>,
    /// Static private addresses requested anywhere in this deployment: (NIC id, subnet id,
    /// address). Dynamic allocation skips them, so template order cannot make a dynamic NIC
    /// take an address a later static NIC asks for.
    static_requests: Vec<(String, String, Ipv4Addr)>,
    /// Resources of other sites references may resolve to (never allocated from or changed).
    foreign: Vec<Resource>,
    /// Ids of template resources left to other sites by the location filter.
    elsewhere: Vec<String>,
}

fn index_of(rs: &[Resource]) -> HashMap<String, usize> {
    rs.iter()
        .enumerate()
        .map(|(i, r)| (r.id().to_ascii_lowercase(), i))
        .collect()
}

/// Locations compare like Azure's: case- and space-insensitive ("North Europe" = "northeurope").
fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// A missing, mistyped or malformed value at `at`.
fn invalid(at: Location, problem: impl Into<String>) -> SiteError {
    SiteError::InvalidProperty {
        at,
        problem: problem.into(),
    }
}

/// An IPv4 prefix as written, or the refusal of an IPv6 one at `at`.
fn ipv4(prefix: &Prefix, at: Location) -> Result<Ipv4Net, SiteError> {
    match prefix {
        Prefix::V4(net) => Ok(*net),
        Prefix::V6(s) => Err(unsupported(
            at,
            format!("{s} is an IPv6 prefix; hybridnet sites carry IPv4 only"),
        )),
    }
}

/// Something the site's kind, or hybridnet, does not support, at `at`.
fn unsupported(at: Location, problem: impl Into<String>) -> SiteError {
    SiteError::UnsupportedByKind {
        at,
        problem: problem.into(),
    }
}

use refs::split_subnet_id;

impl<'a> Planner<'a> {
    pub fn new(
        kind: &'static KindProfile,
        info: &'a SiteInfo,
        existing: Vec<Resource>,
        foreign: Vec<Resource>,
        deployment_name: &str,
        realized: &'a [String],
        gateway_protocols: &'a [ConnectionProtocol],
    ) -> Planner<'a> {
        let existing_index = index_of(&existing);
        let foreign_index = index_of(&foreign);
        Planner {
            kind,
            info,
            existing,
            planned: Vec::new(),
            planned_index: HashMap::new(),
            existing_index,
            foreign_index,
            deployment_name: deployment_name.to_string(),
            realized,
            gateway_protocols,
            notes: Vec::new(),
            child_subnets: Vec::new(),
            static_requests: Vec::new(),
            foreign,
            elsewhere: Vec::new(),
        }
    }

    /// Plans every resource of the deployment in order, then the outputs, then (complete
    /// mode) what is deleted, and what each resource's change is.
    pub fn run(
        mut self,
        d: &arm::Deployment,
        mode: DeploymentMode,
        locations: Option<&[String]>,
    ) -> Result<Plan, SiteError> {
        self.check_api_profile(d)?;
        self.child_subnets = d
            .resources_in_order()
            .iter()
            .filter(|r| r.resource_type.eq_ignore_ascii_case(T_SUBNET))
            .map(|r| r.id.clone())
            .collect();
        self.collect_static_requests(d);
        self.plan_resources(d, locations)?;
        let outputs = d.outputs(&self)?;
        let deletes = match mode {
            DeploymentMode::Complete => self.complete_mode_deletes()?,
            DeploymentMode::Incremental => Vec::new(),
        };
        let (changes, resources) = self.changes(&deletes);
        Ok(Plan {
            deployment_name: self.deployment_name.clone(),
            mode,
            template_hash: String::new(),
            parameters: Map::new(),
            changes,
            resources,
            outputs,
            notes: self.notes,
            deletes,
            base_generation: 0,
        })
    }

    /// Refuses an `apiProfile` the kind does not serve.
    fn check_api_profile(&self, d: &arm::Deployment) -> Result<(), SiteError> {
        match d.api_profile() {
            Some(p) if !self.kind.supports_api_profile(p) => Err(SiteError::ApiProfile {
                profile: p.to_string(),
                kind: self.kind.a_kind(),
                supported: self.kind.api_profiles.join(", "),
            }),
            _ => Ok(()),
        }
    }

    /// Plans each resource in deployment order, leaving those in other locations to other sites
    /// and noting those whose condition is false.
    fn plan_resources(
        &mut self,
        d: &arm::Deployment,
        locations: Option<&[String]>,
    ) -> Result<(), SiteError> {
        for pending in d.resources_in_order() {
            let ev = d.evaluate_resource(pending, &*self)?;
            if let (Some(filter), Some(loc)) = (locations, &ev.location) {
                if !filter.iter().any(|f| same_location(f, loc)) {
                    self.notes.push(format!(
                        "{} ({} '{}') is in location '{loc}': left to another site",
                        ev.path, ev.resource_type, ev.name
                    ));
                    self.elsewhere.push(ev.id.clone());
                    continue;
                }
            }
            self.plan_resource(&ev)?;
        }
        for r in d.skipped_resources() {
            self.notes.push(format!(
                "{} ({} '{}') skipped: its condition is false",
                r.path, r.resource_type, r.name
            ));
        }
        Ok(())
    }

    /// Complete mode: every stored resource the template does not declare, refused while a
    /// planned resource still refers to it.
    fn complete_mode_deletes(&self) -> Result<Vec<String>, SiteError> {
        let deletes: Vec<String> = self
            .existing
            .iter()
            .filter(|e| {
                !self
                    .planned_index
                    .contains_key(&e.id().to_ascii_lowercase())
            })
            .map(|e| e.id().to_string())
            .collect();
        for kept in &self.planned {
            for (prop, target) in kept.references() {
                let target_res = split_subnet_id(&target).map_or(target.as_str(), |(vnet, _)| vnet);
                if deletes.iter().any(|d| same_id(d, target_res)) {
                    let loc = Location {
                        resource_path: String::new(),
                        resource_type: kept.resource_type().to_string(),
                        name: kept.name().to_string(),
                        property: prop,
                    };
                    return Err(invalid(
                        loc,
                        format!("refers to {target}, which complete mode would delete because the template does not declare it"),
                    ));
                }
            }
        }
        Ok(deletes)
    }

    /// Each planned resource's change against the stored one (an unchanged resource keeps its
    /// stored state), then the deletions.
    fn changes(&mut self, deletes: &[String]) -> (Vec<PlannedChange>, Vec<Resource>) {
        let mut changes = Vec::new();
        let mut resources = Vec::new();
        for mut r in std::mem::take(&mut self.planned) {
            let before = self
                .existing_index
                .get(&r.id().to_ascii_lowercase())
                .map(|&i| &self.existing[i]);
            let action = match before {
                None => ChangeAction::Create,
                Some(b) if unchanged(b, &r) => {
                    r = b.clone();
                    ChangeAction::NoChange
                }
                Some(_) => ChangeAction::Update,
            };
            if action != ChangeAction::NoChange {
                r.meta_mut().provisioning_state = self.initial_state(r.resource_type());
            }
            changes.push(PlannedChange {
                id: r.id().to_string(),
                resource_type: r.resource_type().to_string(),
                name: r.name().to_string(),
                action,
            });
            resources.push(r);
        }
        for id in deletes {
            if let Some(e) = self.existing.iter().find(|e| same_id(e.id(), id)) {
                changes.push(PlannedChange {
                    id: id.clone(),
                    resource_type: e.resource_type().to_string(),
                    name: e.name().to_string(),
                    action: ChangeAction::Delete,
                });
            }
        }
        (changes, resources)
    }

    /// Refuses what the site's kind (or the gateway SKU) does not offer, at `at`.
    fn require_feature(
        &self,
        feature: Feature,
        sku: Option<&GatewaySku>,
        at: Location,
    ) -> Result<(), SiteError> {
        self.kind
            .check_feature(feature, sku)
            .map_err(|problem| unsupported(at, problem))
    }

    fn initial_state(&self, resource_type: &str) -> ProvisioningState {
        if self
            .realized
            .iter()
            .any(|t| t.eq_ignore_ascii_case(resource_type))
        {
            ProvisioningState::Updating
        } else if resource_type.eq_ignore_ascii_case(T_LNG) {
            ProvisioningState::Succeeded
        } else {
            ProvisioningState::Pending {
                reason: format!(
                    "hybridnet records {resource_type} but the lab does not realize it yet"
                ),
            }
        }
    }

    // ---- per resource ----

    fn plan_resource(&mut self, ev: &EvaluatedResource) -> Result<(), SiteError> {
        let loc = Location {
            resource_path: ev.path.clone(),
            resource_type: ev.resource_type.clone(),
            name: ev.name.clone(),
            property: String::new(),
        };
        let api_version = self.api_version(ev, &loc)?;
        let redacted = ev.redacted_body();
        let tags = match get_ci(&redacted, "tags") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(invalid(
                    loc.at("tags"),
                    format!("expected an object, got {}", props::type_name(other)),
                ))
            }
        };
        let meta = ResourceMeta {
            id: ev.id.clone(),
            name: ev.name.clone(),
            resource_type: ev.resource_type.clone(),
            location: ev.location.clone(),
            api_version,
            tags,
            deployment: self.deployment_name.clone(),
            provisioning_state: ProvisioningState::Updating,
            notes: Vec::new(),
        };
        let t = ev.resource_type.to_ascii_lowercase();
        let body = &ev.body;
        let r = match t.as_str() {
            T_VNET => self.virtual_network(meta, &loc, body)?,
            T_SUBNET => self.child_subnet(&ev.id, &loc, body)?,
            T_PIP => self.public_ip(meta, &loc, body)?,
            T_NIC => self.nic(meta, &loc, body)?,
            T_VM => self.vm(meta, &loc, ev)?,
            T_VNG => self.vnet_gateway(meta, &loc, body)?,
            T_LNG => self.local_gateway(meta, &loc, body)?,
            T_CONN => self.connection(meta, &loc, body)?,
            T_NSG => self.nsg(meta, &loc, body)?,
            T_NSG_RULE => self.nsg_child_rule(&ev.id, &loc, body)?,
            _ => {
                self.kind
                    .check_resource_type(&ev.resource_type)
                    .map_err(|refusal| SiteError::ResourceType {
                        at: loc.at("type"),
                        refusal,
                    })?;
                let mut meta = meta;
                let note = format!(
                    "{} ({} '{}'): type not modelled by hybridnet; recorded as given, not realized",
                    ev.path, ev.resource_type, ev.name
                );
                meta.notes.push(note.clone());
                self.notes.push(note);
                Resource::Other(OtherResource {
                    meta,
                    body: ev.redacted_body(),
                })
            }
        };
        self.upsert(r);
        Ok(())
    }

    fn api_version(&self, ev: &EvaluatedResource, loc: &Location) -> Result<String, SiteError> {
        let Some(version) = &ev.api_version else {
            return Err(SiteError::ApiVersion {
                at: loc.at("apiVersion"),
                problem: "is required (the template has no apiProfile that covers this type)"
                    .into(),
            });
        };
        self.kind
            .check_api_version(&ev.resource_type, version)
            .map_err(|problem| SiteError::ApiVersion {
                at: loc.at("apiVersion"),
                problem,
            })?;
        Ok(version.clone())
    }
}

/// Same configuration (ignoring realization state and which deployment wrote it)?
fn unchanged(before: &Resource, after: &Resource) -> bool {
    let strip = |r: &Resource| {
        let mut r = r.clone();
        let m = r.meta_mut();
        m.provisioning_state = ProvisioningState::Updating;
        m.deployment = String::new();
        r
    };
    let keys_equal = match (before, after) {
        (Resource::Connection(a), Resource::Connection(b)) => a.shared_key == b.shared_key,
        _ => true,
    };
    keys_equal && strip(before) == strip(after)
}

impl ReferenceResolver for Planner<'_> {
    fn reference(&self, resource_id: &str) -> Option<Value> {
        if let Some(r) = self.find(resource_id) {
            return get_ci(&r.arm_json(), "properties").cloned();
        }
        let (v, s) = self.subnet(resource_id)?;
        Some(subnet_properties(s, &v.meta.provisioning_state))
    }
}
