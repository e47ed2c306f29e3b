//! Planning: types each evaluated resource, resolves its references against the deployment so
//! far and the site's stored state, allocates addresses and checks the kind's rules. Nothing is
//! written; the result is a [`Plan`].

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use arm::{EvaluatedResource, ReferenceResolver};
use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use crate::error::{Location, SiteError};
use crate::ipam::{self, AddressProblem};
use crate::json::{get_ci, get_path};
use crate::kind::KindProfile;
use crate::model::*;
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

/// Smallest subnet Azure accepts anywhere.
const MIN_SUBNET_PREFIX_LEN: u8 = 29;

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

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(at: Location, problem: impl Into<String>) -> SiteError {
    SiteError::InvalidProperty {
        at,
        problem: problem.into(),
    }
}

fn unsupported(at: Location, problem: impl Into<String>) -> SiteError {
    SiteError::UnsupportedByKind {
        at,
        problem: problem.into(),
    }
}

/// Reads typed values out of a resource body, with errors naming the property path.
struct Body<'b> {
    body: &'b Value,
    loc: Location,
}

impl<'b> Body<'b> {
    fn at(&self, path: &str) -> Location {
        if self.loc.property.is_empty() {
            self.loc.at(path)
        } else {
            self.loc.at(format!("{}.{path}", self.loc.property))
        }
    }

    fn value(&self, path: &str) -> Option<&'b Value> {
        let parts: Vec<&str> = path.split('.').collect();
        get_path(self.body, &parts)
    }

    fn string(&self, path: &str) -> Result<Option<&'b str>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    fn required_string(&self, path: &str) -> Result<&'b str, SiteError> {
        self.string(path)?
            .ok_or_else(|| invalid(self.at(path), "is required"))
    }

    fn boolean(&self, path: &str) -> Result<Option<bool>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected a bool, got {other}"),
            )),
        }
    }

    fn integer(&self, path: &str) -> Result<Option<i64>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an integer, got {other}"),
            )),
        }
    }

    fn array(&self, path: &str) -> Result<&'b [Value], SiteError> {
        match self.value(path) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an array, got {}", type_name(other)),
            )),
        }
    }

    /// `{"id": "..."}` at `path`; returns the id.
    fn id_ref(&self, path: &str) -> Result<Option<&'b str>, SiteError> {
        match self.value(path) {
            None => Ok(None),
            Some(Value::Object(_)) => self.string(&format!("{path}.id")).and_then(|id| {
                id.map(Some)
                    .ok_or_else(|| invalid(self.at(&format!("{path}.id")), "is required"))
            }),
            Some(other) => Err(invalid(
                self.at(path),
                format!("expected an object with an id, got {}", type_name(other)),
            )),
        }
    }

    fn sub(&self, v: &'b Value, prefix: &str) -> Body<'b> {
        let property = if self.loc.property.is_empty() {
            prefix.to_string()
        } else {
            format!("{}.{prefix}", self.loc.property)
        };
        Body {
            body: v,
            loc: self.loc.at(property),
        }
    }
}

fn parse_prefix(s: &str, at: Location) -> Result<Ipv4Net, SiteError> {
    if s.contains(':') {
        return Err(SiteError::UnsupportedByKind {
            at,
            problem: format!("{s} is an IPv6 prefix; hybridnet sites carry IPv4 only"),
        });
    }
    let net: Ipv4Net = s.parse().map_err(|_| {
        invalid(
            at.clone(),
            format!("{s:?} is not an IPv4 prefix (a.b.c.d/n)"),
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            at,
            format!("{s} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

fn parse_addr(s: &str, at: Location) -> Result<Ipv4Addr, SiteError> {
    s.parse()
        .map_err(|_| invalid(at, format!("{s:?} is not an IPv4 address")))
}

fn show_prefixes(p: &[Ipv4Net]) -> String {
    format!(
        "[{}]",
        p.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn short_type(t: &str) -> &str {
    t.rsplit('/').next().unwrap_or(t)
}

/// Parent VNet id and subnet name of a subnet id.
fn split_subnet_id(id: &str) -> Option<(&str, &str)> {
    let lower = id.to_ascii_lowercase();
    let at = lower.rfind("/subnets/")?;
    let name = &id[at + "/subnets/".len()..];
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((&id[..at], name))
}

impl<'a> Planner<'a> {
    pub fn new(
        kind: &'static KindProfile,
        info: &'a SiteInfo,
        existing: Vec<Resource>,
        foreign: Vec<Resource>,
        deployment_name: &str,
        realized: &'a [String],
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
            notes: Vec::new(),
            child_subnets: Vec::new(),
            static_requests: Vec::new(),
            foreign,
            elsewhere: Vec::new(),
        }
    }

    /// Collects the static NIC addresses of the deployment before anything is allocated. A NIC
    /// whose body cannot be evaluated yet (it uses reference()) is skipped here; its error, if
    /// any, surfaces when it is planned.
    fn collect_static_requests(&mut self, d: &arm::Deployment) {
        for pending in d
            .resources_in_order()
            .iter()
            .filter(|r| r.resource_type.eq_ignore_ascii_case(T_NIC))
        {
            let Ok(ev) = d.evaluate_resource(pending, &*self) else {
                continue;
            };
            let cfgs = get_path(&ev.body, &["properties", "ipConfigurations"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in &cfgs {
                let method = get_path(c, &["properties", "privateIPAllocationMethod"])
                    .and_then(Value::as_str)
                    .unwrap_or("Dynamic");
                let subnet = get_path(c, &["properties", "subnet", "id"]).and_then(Value::as_str);
                let addr = get_path(c, &["properties", "privateIPAddress"])
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<Ipv4Addr>().ok());
                if let (true, Some(subnet), Some(addr)) =
                    (method.eq_ignore_ascii_case("Static"), subnet, addr)
                {
                    self.static_requests
                        .push((ev.id.clone(), subnet.to_string(), addr));
                }
            }
        }
    }

    /// Static addresses other NICs of this deployment asked for in a subnet.
    fn requested_by_others(
        &self,
        subnet_id: &str,
        me: &str,
    ) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let (subnet_id, me) = (subnet_id.to_string(), me.to_string());
        self.static_requests
            .iter()
            .filter(move |(nic, s, _)| !same_id(nic, &me) && same_id(s, &subnet_id))
            .map(|(_, _, a)| *a)
    }

    /// Plans every resource of the deployment in order, then the outputs.
    pub fn run(
        mut self,
        d: &arm::Deployment,
        mode: DeploymentMode,
        locations: Option<&[String]>,
    ) -> Result<Plan, SiteError> {
        self.child_subnets = d
            .resources_in_order()
            .iter()
            .filter(|r| r.resource_type.eq_ignore_ascii_case(T_SUBNET))
            .map(|r| r.id.clone())
            .collect();
        if let Some(p) = d.api_profile() {
            if !self.kind.supports_api_profile(p) {
                return Err(SiteError::ApiProfile {
                    profile: p.to_string(),
                    kind: self.kind.name.clone(),
                    supported: self.kind.api_profiles.join(", "),
                });
            }
        }
        self.collect_static_requests(d);
        for pending in d.resources_in_order() {
            let ev = d.evaluate_resource(pending, &self)?;
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
        let outputs = d.outputs(&self)?;

        let mut deletes = Vec::new();
        if mode == DeploymentMode::Complete {
            deletes = self
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
                    let target_res =
                        split_subnet_id(&target).map_or(target.as_str(), |(vnet, _)| vnet);
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
        }

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
        for id in &deletes {
            if let Some(e) = self.existing.iter().find(|e| same_id(e.id(), id)) {
                changes.push(PlannedChange {
                    id: id.clone(),
                    resource_type: e.resource_type().to_string(),
                    name: e.name().to_string(),
                    action: ChangeAction::Delete,
                });
            }
        }
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

    // ---- the view: this deployment's planned resources over the stored ones ----

    fn find(&self, id: &str) -> Option<&Resource> {
        let k = id.to_ascii_lowercase();
        self.planned_index
            .get(&k)
            .map(|&i| &self.planned[i])
            .or_else(|| self.existing_index.get(&k).map(|&i| &self.existing[i]))
            .or_else(|| self.foreign_index.get(&k).map(|&i| &self.foreign[i]))
    }

    /// Whether the template declares this resource for another site (location filter).
    fn is_elsewhere(&self, id: &str) -> bool {
        self.elsewhere.iter().any(|e| same_id(e, id))
    }

    fn view(&self) -> Vec<&Resource> {
        let mut out: Vec<&Resource> = self.planned.iter().collect();
        out.extend(self.existing.iter().filter(|e| {
            !self
                .planned_index
                .contains_key(&e.id().to_ascii_lowercase())
        }));
        out
    }

    fn upsert(&mut self, r: Resource) {
        let k = r.id().to_ascii_lowercase();
        match self.planned_index.get(&k) {
            Some(&i) => self.planned[i] = r,
            None => {
                self.planned_index.insert(k, self.planned.len());
                self.planned.push(r);
            }
        }
    }

    fn vnet(&self, id: &str) -> Option<&VirtualNetwork> {
        match self.find(id) {
            Some(Resource::VirtualNetwork(v)) => Some(v),
            _ => None,
        }
    }

    fn subnet(&self, id: &str) -> Option<(&VirtualNetwork, &Subnet)> {
        let (vnet_id, name) = split_subnet_id(id)?;
        let v = self.vnet(vnet_id)?;
        Some((v, v.subnet(name)?))
    }

    /// Addresses in use in a subnet by NICs and gateways other than `exclude`.
    fn used_in_subnet(&self, subnet_id: &str, exclude: &str) -> BTreeSet<Ipv4Addr> {
        let mut used = BTreeSet::new();
        for r in self.view() {
            if same_id(r.id(), exclude) {
                continue;
            }
            match r {
                Resource::NetworkInterface(n) => used.extend(
                    n.ip_configurations
                        .iter()
                        .filter(|c| same_id(&c.subnet, subnet_id))
                        .map(|c| c.private_ip_address),
                ),
                Resource::VirtualNetworkGateway(g) => used.extend(
                    g.ip_configurations
                        .iter()
                        .filter(|c| same_id(&c.subnet, subnet_id))
                        .map(|c| c.private_ip_address),
                ),
                _ => {}
            }
        }
        used
    }

    /// Who uses a subnet (for "in use" errors).
    fn subnet_users(&self, subnet_id: &str) -> Vec<String> {
        self.view()
            .into_iter()
            .filter(|r| match r {
                Resource::NetworkInterface(n) => n
                    .ip_configurations
                    .iter()
                    .any(|c| same_id(&c.subnet, subnet_id)),
                Resource::VirtualNetworkGateway(g) => g
                    .ip_configurations
                    .iter()
                    .any(|c| same_id(&c.subnet, subnet_id)),
                _ => false,
            })
            .map(|r| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            .collect()
    }

    /// Who holds a public IP other than `exclude`.
    fn public_ip_holder(&self, pip_id: &str, exclude: &str) -> Option<String> {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .find_map(|r| {
                let holds = match r {
                    Resource::NetworkInterface(n) => n.ip_configurations.iter().any(|c| {
                        c.public_ip_address
                            .as_deref()
                            .is_some_and(|p| same_id(p, pip_id))
                    }),
                    Resource::VirtualNetworkGateway(g) => g
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.public_ip_address, pip_id)),
                    _ => false,
                };
                holds.then(|| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            })
    }

    fn require(&self, id: &str, expected_type: &str, at: Location) -> Result<&Resource, SiteError> {
        match self.find(id) {
            Some(r) if r.resource_type().eq_ignore_ascii_case(expected_type) => Ok(r),
            Some(r) => Err(invalid(
                at,
                format!(
                    "{id} is a {}, expected a {expected_type}",
                    r.resource_type()
                ),
            )),
            None => Err(SiteError::MissingReference {
                at,
                target: id.to_string(),
            }),
        }
    }

    /// A virtual network gateway by id, or the error naming the referring property.
    fn require_gateway(&self, id: &str, at: Location) -> Result<&VirtualNetworkGateway, SiteError> {
        let vng_type = "Microsoft.Network/virtualNetworkGateways";
        match self.require(id, vng_type, at.clone())? {
            Resource::VirtualNetworkGateway(g) => Ok(g),
            _ => Err(invalid(at, format!("{id} is not a {vng_type}"))),
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
                    format!("expected an object, got {}", type_name(other)),
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
        let b = Body {
            body: &ev.body,
            loc: loc.clone(),
        };
        let t = ev.resource_type.to_ascii_lowercase();
        let r = match t.as_str() {
            T_VNET => self.virtual_network(meta, &b)?,
            T_SUBNET => self.child_subnet(ev, &b)?,
            T_PIP => self.public_ip(meta, &b)?,
            T_NIC => self.nic(meta, &b)?,
            T_VM => self.vm(meta, &b, ev)?,
            T_VNG => self.vnet_gateway(meta, &b)?,
            T_LNG => self.local_gateway(meta, &b)?,
            T_CONN => self.connection(meta, &b)?,
            _ => {
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

    fn parse_subnet(&self, vnet_id: &str, name: &str, b: &Body) -> Result<Subnet, SiteError> {
        let prefix_path = "properties.addressPrefix";
        let prefix = match b.string(prefix_path)? {
            Some(p) => parse_prefix(p, b.at(prefix_path))?,
            None => {
                let list = b.array("properties.addressPrefixes")?;
                let first = list
                    .first()
                    .ok_or_else(|| invalid(b.at(prefix_path), "is required"))?;
                let s = first.as_str().ok_or_else(|| {
                    invalid(b.at("properties.addressPrefixes[0]"), "expected a string")
                })?;
                if list.len() > 1 {
                    return Err(unsupported(
                        b.at("properties.addressPrefixes"),
                        "hybridnet subnets have one prefix; give addressPrefix",
                    ));
                }
                parse_prefix(s, b.at("properties.addressPrefixes[0]"))?
            }
        };
        Ok(Subnet {
            id: format!("{vnet_id}/subnets/{name}"),
            name: name.to_string(),
            address_prefix: prefix,
            network_security_group: b
                .id_ref("properties.networkSecurityGroup")?
                .map(str::to_string),
            route_table: b.id_ref("properties.routeTable")?.map(str::to_string),
        })
    }

    fn virtual_network(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let mut space = Vec::new();
        let list = b.array("properties.addressSpace.addressPrefixes")?;
        if list.is_empty() {
            return Err(invalid(
                b.at("properties.addressSpace.addressPrefixes"),
                "a virtual network needs at least one address prefix",
            ));
        }
        for (i, v) in list.iter().enumerate() {
            let path = format!("properties.addressSpace.addressPrefixes[{i}]");
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    b.at(&path),
                    format!("expected a string, got {}", type_name(v)),
                )
            })?;
            let net = parse_prefix(s, b.at(&path))?;
            if let Some((j, other)) = space
                .iter()
                .enumerate()
                .find(|(_, o): &(usize, &Ipv4Net)| overlaps(**o, net))
            {
                return Err(SiteError::AddressConflict {
                    at: b.at(&path),
                    problem: format!(
                        "{net} overlaps {other} (addressPrefixes[{j}]) in the same address space"
                    ),
                });
            }
            space.push(net);
        }
        let mut subnets = Vec::new();
        let mut locs = Vec::new();
        for (i, v) in b.array("properties.subnets")?.iter().enumerate() {
            let sb = b.sub(v, &format!("properties.subnets[{i}]"));
            let name = sb.required_string("name")?;
            subnets.push(self.parse_subnet(&meta.id, name, &sb)?);
            locs.push(Some(sb.loc.clone()));
        }
        let dns = b
            .array("properties.dhcpOptions.dnsServers")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        if let Some(Resource::VirtualNetwork(old)) = self.find(&meta.id) {
            for s in &old.subnets {
                if subnets
                    .iter()
                    .any(|n: &Subnet| n.name.eq_ignore_ascii_case(&s.name))
                {
                    continue;
                }
                if self.child_subnets.iter().any(|c| same_id(c, &s.id)) {
                    subnets.push(s.clone());
                    locs.push(None);
                    continue;
                }
                let users = self.subnet_users(&s.id);
                if !users.is_empty() {
                    return Err(invalid(
                        b.at("properties.subnets"),
                        format!(
                            "subnet '{}' is missing from the template but in use by {}; it cannot be removed (InUseSubnetCannotBeDeleted)",
                            s.name,
                            users.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut vnet = VirtualNetwork {
            meta,
            address_space: space,
            subnets,
            dns_servers: dns,
        };
        for (s, l) in vnet.subnets.iter().zip(&locs) {
            if l.is_none()
                && !vnet
                    .address_space
                    .iter()
                    .any(|a| a.contains(&s.address_prefix))
            {
                return Err(SiteError::AddressConflict {
                    at: b.at("properties.addressSpace.addressPrefixes"),
                    problem: format!(
                        "subnet '{}' ({}) would be outside the address space {}",
                        s.name,
                        s.address_prefix,
                        show_prefixes(&vnet.address_space)
                    ),
                });
            }
        }
        self.validate_vnet(&mut vnet, &locs)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    fn child_subnet(&mut self, ev: &EvaluatedResource, b: &Body) -> Result<Resource, SiteError> {
        let (vnet_id, name) = split_subnet_id(&ev.id)
            .ok_or_else(|| invalid(b.at("name"), format!("{} is not a subnet id", ev.id)))?;
        let Some(vnet) = self.vnet(vnet_id).cloned() else {
            return Err(SiteError::MissingReference {
                at: b.at("name"),
                target: vnet_id.to_string(),
            });
        };
        let subnet = self.parse_subnet(vnet_id, name, b)?;
        let mut vnet = vnet;
        vnet.meta.deployment = self.deployment_name.clone();
        let mut locs: Vec<Option<Location>> = vec![None; vnet.subnets.len()];
        match vnet
            .subnets
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                let users = self.subnet_users(&subnet.id);
                if vnet.subnets[i].address_prefix != subnet.address_prefix && !users.is_empty() {
                    return Err(invalid(
                        b.at("properties.addressPrefix"),
                        format!(
                            "subnet '{name}' is in use by {} and its prefix cannot change",
                            users.join(", ")
                        ),
                    ));
                }
                vnet.subnets[i] = subnet;
                locs[i] = Some(Location {
                    property: "properties".into(),
                    ..b.loc.clone()
                });
            }
            None => {
                vnet.subnets.push(subnet);
                locs.push(Some(Location {
                    property: "properties".into(),
                    ..b.loc.clone()
                }));
            }
        }
        self.validate_vnet(&mut vnet, &locs)?;
        Ok(Resource::VirtualNetwork(vnet))
    }

    /// Checks subnets against the address space, each other, size limits and GatewaySubnet rules.
    /// `locs[i]` is where subnet i came from in this resource (None: stored, unchanged).
    fn validate_vnet(
        &mut self,
        vnet: &mut VirtualNetwork,
        locs: &[Option<Location>],
    ) -> Result<(), SiteError> {
        let gw_rules = &self.kind.gateway_subnet;
        for (i, s) in vnet.subnets.iter().enumerate() {
            let Some(loc) = &locs[i] else { continue };
            let sub_at = |p: &str| {
                let property = if loc.property.is_empty() {
                    p.to_string()
                } else {
                    format!("{}.{p}", loc.property)
                };
                loc.at(property)
            };
            let prefix_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.addressPrefix")
            } else {
                sub_at("properties.addressPrefix")
            };
            let nsg_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.networkSecurityGroup.id")
            } else {
                sub_at("properties.networkSecurityGroup.id")
            };
            let rt_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("properties.routeTable.id")
            } else {
                sub_at("properties.routeTable.id")
            };
            let name_at = if loc.resource_type.eq_ignore_ascii_case(T_SUBNET) {
                loc.at("name")
            } else {
                sub_at("name")
            };
            if let Some(other) = vnet.subnets[..i]
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&s.name))
            {
                return Err(invalid(
                    name_at,
                    format!(
                        "subnet name '{}' is used twice in virtual network '{}'",
                        other.name, vnet.meta.name
                    ),
                ));
            }
            if !vnet
                .address_space
                .iter()
                .any(|a| a.contains(&s.address_prefix))
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} is outside the address space {}",
                        s.address_prefix,
                        show_prefixes(&vnet.address_space)
                    ),
                });
            }
            if s.is_gateway_subnet() {
                if s.address_prefix.prefix_len() > gw_rules.min_prefix_len {
                    return Err(invalid(
                        prefix_at,
                        format!(
                            "GatewaySubnet {} is too small: the minimum on a {} site is /{} (/{} recommended)",
                            s.address_prefix, self.kind.name, gw_rules.min_prefix_len, gw_rules.recommended_prefix_len
                        ),
                    ));
                }
                if let Some(rt) = &s.route_table {
                    return Err(invalid(
                        rt_at,
                        format!(
                            "GatewaySubnet must not have a route table ({rt}); user-defined routes on the gateway subnet are not supported"
                        ),
                    ));
                }
                if let Some(nsg) = &s.network_security_group {
                    self.check_gateway_subnet_nsg(nsg, nsg_at)?;
                    let note = format!(
                        "{}: a network security group on GatewaySubnet is unsupported by Azure; accepted because it denies nothing",
                        vnet.meta.name
                    );
                    vnet.meta.notes.push(note.clone());
                    self.notes.push(note);
                }
                if s.address_prefix.prefix_len() > gw_rules.recommended_prefix_len {
                    let note = format!(
                        "{}: GatewaySubnet {} is smaller than the recommended /{} on a {} site",
                        vnet.meta.name,
                        s.address_prefix,
                        gw_rules.recommended_prefix_len,
                        self.kind.name
                    );
                    vnet.meta.notes.push(note.clone());
                    self.notes.push(note);
                }
            } else if s.address_prefix.prefix_len() > MIN_SUBNET_PREFIX_LEN {
                return Err(invalid(
                    prefix_at,
                    format!(
                        "subnet {} is too small: the smallest subnet is /{MIN_SUBNET_PREFIX_LEN}",
                        s.address_prefix
                    ),
                ));
            }
            if let Some(other) = vnet
                .subnets
                .iter()
                .enumerate()
                .find(|(j, o)| *j != i && overlaps(o.address_prefix, s.address_prefix))
                .map(|(_, o)| o)
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} overlaps subnet '{}' ({})",
                        s.address_prefix, other.name, other.address_prefix
                    ),
                });
            }
            let used = self.used_in_subnet(&s.id, "");
            if let Some(a) = used
                .iter()
                .find(|a| ipam::check_static(s.address_prefix, **a, &BTreeSet::new()).is_err())
            {
                return Err(SiteError::AddressConflict {
                    at: prefix_at,
                    problem: format!(
                        "{} no longer contains {a}, used by {}",
                        s.address_prefix,
                        self.subnet_users(&s.id).join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// An NSG on GatewaySubnet is tolerated only when it denies nothing (what Microsoft's own
    /// Azure Stack Hub templates attach); anything else would break the gateway.
    fn check_gateway_subnet_nsg(&self, nsg_id: &str, at: Location) -> Result<(), SiteError> {
        let Some(nsg) = self.find(nsg_id) else {
            return Err(SiteError::MissingReference {
                at,
                target: nsg_id.to_string(),
            });
        };
        let body = match nsg {
            Resource::Other(o) => &o.body,
            _ => {
                return Err(invalid(
                    at,
                    format!("{nsg_id} is not a network security group"),
                ))
            }
        };
        let rules = get_path(body, &["properties", "securityRules"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in &rules {
            let access = get_path(r, &["properties", "access"])
                .and_then(Value::as_str)
                .unwrap_or("");
            if access.eq_ignore_ascii_case("Deny") {
                let name = get_ci(r, "name").and_then(Value::as_str).unwrap_or("?");
                return Err(invalid(
                    at,
                    format!("GatewaySubnet must not have a network security group that denies traffic (rule '{name}' of {nsg_id}); NSGs on the gateway subnet are not supported"),
                ));
            }
        }
        Ok(())
    }

    fn public_ip(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let sku = match b.string("sku.name")? {
            None => PublicIpSku::Basic,
            Some(s) if s.eq_ignore_ascii_case("Basic") => PublicIpSku::Basic,
            Some(s) if s.eq_ignore_ascii_case("Standard") => PublicIpSku::Standard,
            Some(s) => {
                return Err(invalid(
                    b.at("sku.name"),
                    format!("{s:?} is not a public IP SKU (Basic, Standard)"),
                ))
            }
        };
        if sku == PublicIpSku::Standard && !self.kind.features.standard_public_ip {
            return Err(unsupported(
                b.at("sku.name"),
                format!(
                    "Standard public IP addresses are not supported on a {} site; use Basic",
                    self.kind.name
                ),
            ));
        }
        let allocation_method = match b.string("properties.publicIPAllocationMethod")? {
            None => AllocationMethod::Dynamic,
            Some(s) if s.eq_ignore_ascii_case("Dynamic") => AllocationMethod::Dynamic,
            Some(s) if s.eq_ignore_ascii_case("Static") => AllocationMethod::Static,
            Some(s) => {
                return Err(invalid(
                    b.at("properties.publicIPAllocationMethod"),
                    format!("{s:?} is not Dynamic or Static"),
                ))
            }
        };
        if let Some(v) = b.string("properties.publicIPAddressVersion")? {
            if v.eq_ignore_ascii_case("IPv6") {
                let problem = if self.kind.features.ipv6 {
                    "IPv6 public addresses are not implemented by hybridnet".to_string()
                } else {
                    format!("IPv6 is not supported on a {} site", self.kind.name)
                };
                return Err(unsupported(
                    b.at("properties.publicIPAddressVersion"),
                    problem,
                ));
            }
        }
        let used: BTreeSet<Ipv4Addr> = self
            .view()
            .into_iter()
            .filter(|r| !same_id(r.id(), &meta.id))
            .filter_map(|r| match r {
                Resource::PublicIpAddress(p) => Some(p.ip_address),
                _ => None,
            })
            .collect();
        let prefix = self.info.public_prefix;
        let kept = match self.find(&meta.id) {
            Some(Resource::PublicIpAddress(old))
                if ipam::public_usable(prefix, old.ip_address)
                    && !used.contains(&old.ip_address) =>
            {
                Some(old.ip_address)
            }
            _ => None,
        };
        let ip_address = match kept {
            Some(a) => a,
            None => {
                ipam::first_free_public(prefix, &used).ok_or_else(|| SiteError::PoolExhausted {
                    at: b.at("properties.publicIPAllocationMethod"),
                    problem: format!(
                        "no free address left in the site's public prefix {prefix} ({} in use)",
                        used.len()
                    ),
                })?
            }
        };
        let domain_name_label = b
            .string("properties.dnsSettings.domainNameLabel")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Resource::PublicIpAddress(PublicIpAddress {
            meta,
            sku,
            allocation_method,
            ip_address,
            domain_name_label,
        }))
    }

    fn nic(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let cfgs = b.array("properties.ipConfigurations")?;
        if cfgs.is_empty() {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                "a network interface needs at least one ipConfiguration",
            ));
        }
        let old: Option<NetworkInterface> = match self.find(&meta.id) {
            Some(Resource::NetworkInterface(n)) => Some(n.clone()),
            _ => None,
        };
        let mut out: Vec<NicIpConfiguration> = Vec::new();
        let mut vnet_of_nic: Option<String> = None;
        for (i, v) in cfgs.iter().enumerate() {
            let cb = b.sub(v, &format!("properties.ipConfigurations[{i}]"));
            let name = cb.required_string("name")?.to_string();
            let subnet_path = "properties.subnet";
            let subnet_id = cb
                .id_ref(subnet_path)?
                .ok_or_else(|| invalid(cb.at(subnet_path), "is required"))?
                .to_string();
            let at_subnet = cb.at("properties.subnet.id");
            let Some((vnet, subnet)) = self.subnet(&subnet_id) else {
                return Err(SiteError::MissingReference {
                    at: at_subnet,
                    target: subnet_id,
                });
            };
            if subnet.is_gateway_subnet() {
                return Err(invalid(
                    at_subnet,
                    "network interfaces cannot be placed in GatewaySubnet; it is reserved for VPN gateways",
                ));
            }
            match &vnet_of_nic {
                Some(v) if !same_id(v, &vnet.meta.id) => {
                    return Err(invalid(
                        at_subnet,
                        "all ipConfigurations of a network interface must be in the same virtual network",
                    ))
                }
                _ => vnet_of_nic = Some(vnet.meta.id.clone()),
            }
            let prefix = subnet.address_prefix;
            let subnet_name = subnet.name.clone();
            let mut used = self.used_in_subnet(&subnet_id, &meta.id);
            used.extend(
                out.iter()
                    .filter(|c| same_id(&c.subnet, &subnet_id))
                    .map(|c| c.private_ip_address),
            );
            let method = match cb.string("properties.privateIPAllocationMethod")? {
                None => AllocationMethod::Dynamic,
                Some(s) if s.eq_ignore_ascii_case("Dynamic") => AllocationMethod::Dynamic,
                Some(s) if s.eq_ignore_ascii_case("Static") => AllocationMethod::Static,
                Some(s) => {
                    return Err(invalid(
                        cb.at("properties.privateIPAllocationMethod"),
                        format!("{s:?} is not Dynamic or Static"),
                    ))
                }
            };
            let addr_path = "properties.privateIPAddress";
            let address = match method {
                AllocationMethod::Static => {
                    let s = cb.string(addr_path)?.ok_or_else(|| {
                        invalid(
                            cb.at(addr_path),
                            "is required when privateIPAllocationMethod is Static",
                        )
                    })?;
                    let a = parse_addr(s, cb.at(addr_path))?;
                    match ipam::check_static(prefix, a, &used) {
                        Ok(()) => a,
                        Err(AddressProblem::OutsideSubnet) => {
                            return Err(SiteError::AddressConflict { at: cb.at(addr_path), problem: format!("{a} is outside subnet '{subnet_name}' ({prefix})") })
                        }
                        Err(AddressProblem::Reserved) => {
                            return Err(SiteError::AddressConflict {
                                at: cb.at(addr_path),
                                problem: format!("{a} is reserved in subnet {prefix}: the network address, .1 (router), .2, .3 (DNS) and the broadcast address are not assignable; the first usable address is {}", ipam::nth(prefix, 4)),
                            })
                        }
                        Err(AddressProblem::Taken) => {
                            let holder = self.address_holder(&subnet_id, a, &meta.id).unwrap_or_else(|| "another ipConfiguration of this interface".into());
                            return Err(SiteError::AddressConflict { at: cb.at(addr_path), problem: format!("{a} is already in use by {holder}") });
                        }
                    }
                }
                AllocationMethod::Dynamic => {
                    used.extend(self.requested_by_others(&subnet_id, &meta.id));
                    let previous = old
                        .as_ref()
                        .and_then(|o| {
                            o.ip_configurations.iter().find(|c| {
                                c.name.eq_ignore_ascii_case(&name) && same_id(&c.subnet, &subnet_id)
                            })
                        })
                        .map(|c| c.private_ip_address)
                        .filter(|a| ipam::check_static(prefix, *a, &used).is_ok());
                    match previous.or_else(|| ipam::first_free_in_subnet(prefix, &used)) {
                        Some(a) => a,
                        None => {
                            return Err(SiteError::PoolExhausted {
                                at: cb.at("properties.privateIPAllocationMethod"),
                                problem: format!(
                                    "subnet '{subnet_name}' ({prefix}) has no free address left: {} usable, all in use",
                                    ipam::usable_in_subnet(prefix)
                                ),
                            })
                        }
                    }
                }
            };
            let public_ip_address = match cb.id_ref("properties.publicIPAddress")? {
                Some(pip) => {
                    let at = cb.at("properties.publicIPAddress.id");
                    self.require(pip, "Microsoft.Network/publicIPAddresses", at.clone())?;
                    if let Some(holder) = self.public_ip_holder(pip, &meta.id) {
                        return Err(invalid(
                            at,
                            format!("public IP {pip} is already attached to {holder}"),
                        ));
                    }
                    Some(pip.to_string())
                }
                None => None,
            };
            let primary = cb.boolean("properties.primary")?.unwrap_or(i == 0);
            out.push(NicIpConfiguration {
                name,
                subnet: subnet_id,
                private_ip_address: address,
                allocation_method: method,
                public_ip_address,
                primary,
            });
        }
        if out.iter().filter(|c| c.primary).count() > 1 {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                "only one ipConfiguration can be primary",
            ));
        }
        let network_security_group = b
            .id_ref("properties.networkSecurityGroup")?
            .map(str::to_string);
        let enable_ip_forwarding = b.boolean("properties.enableIPForwarding")?.unwrap_or(false);
        Ok(Resource::NetworkInterface(NetworkInterface {
            meta,
            ip_configurations: out,
            network_security_group,
            enable_ip_forwarding,
        }))
    }

    fn address_holder(&self, subnet_id: &str, a: Ipv4Addr, exclude: &str) -> Option<String> {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .find_map(|r| {
                let hit = match r {
                    Resource::NetworkInterface(n) => n
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.subnet, subnet_id) && c.private_ip_address == a),
                    Resource::VirtualNetworkGateway(g) => g
                        .ip_configurations
                        .iter()
                        .any(|c| same_id(&c.subnet, subnet_id) && c.private_ip_address == a),
                    _ => false,
                };
                hit.then(|| format!("{} '{}'", short_type(r.resource_type()), r.name()))
            })
    }

    fn vm(
        &mut self,
        meta: ResourceMeta,
        b: &Body,
        ev: &EvaluatedResource,
    ) -> Result<Resource, SiteError> {
        let nics = b.array("properties.networkProfile.networkInterfaces")?;
        if nics.is_empty() {
            return Err(invalid(
                b.at("properties.networkProfile.networkInterfaces"),
                "a virtual machine needs at least one network interface",
            ));
        }
        let mut out: Vec<VmNic> = Vec::new();
        for (i, v) in nics.iter().enumerate() {
            let nb = b.sub(
                v,
                &format!("properties.networkProfile.networkInterfaces[{i}]"),
            );
            let id = nb.required_string("id")?;
            let at = nb.at("id");
            self.require(id, "Microsoft.Network/networkInterfaces", at.clone())?;
            let other_vm = self.view().into_iter().find_map(|r| match r {
                Resource::VirtualMachine(vm)
                    if !same_id(&vm.meta.id, &meta.id)
                        && vm.network_interfaces.iter().any(|n| same_id(&n.id, id)) =>
                {
                    Some(vm.meta.name.clone())
                }
                _ => None,
            });
            if let Some(other) = other_vm {
                return Err(invalid(
                    at,
                    format!(
                        "network interface {id} is already attached to virtual machine '{other}'"
                    ),
                ));
            }
            if out.iter().any(|n| same_id(&n.id, id)) {
                return Err(invalid(
                    at,
                    format!("network interface {id} is listed twice"),
                ));
            }
            let primary = nb.boolean("properties.primary")?.unwrap_or(i == 0);
            out.push(VmNic {
                id: id.to_string(),
                primary,
            });
        }
        let redacted = ev.redacted_body();
        let section = |name: &str| {
            get_path(&redacted, &["properties", name])
                .cloned()
                .unwrap_or(Value::Null)
        };
        let mut os_profile = section("osProfile");
        if let Value::Object(m) = &mut os_profile {
            for (k, v) in m.iter_mut() {
                if ["adminpassword", "customdata"].contains(&k.to_ascii_lowercase().as_str())
                    && !v.is_null()
                {
                    *v = Value::String("***".into());
                }
            }
        }
        let note = format!(
            "{}: osProfile and storageProfile are recorded, not realized (the VM is a network namespace)",
            meta.name
        );
        let mut meta = meta;
        meta.notes.push(note);
        Ok(Resource::VirtualMachine(VirtualMachine {
            meta,
            network_interfaces: out,
            hardware_profile: section("hardwareProfile"),
            os_profile,
            storage_profile: section("storageProfile"),
        }))
    }

    fn bgp_settings(&self, b: &Body, path: &str) -> Result<Option<BgpSettings>, SiteError> {
        if b.value(path).is_none() {
            return Ok(None);
        }
        let asn_path = format!("{path}.asn");
        let asn = match b.integer(&asn_path)? {
            Some(a) => {
                let checked = u64::try_from(a)
                    .map_err(|_| format!("ASN {a} is out of range: ASNs are positive"))
                    .and_then(|u| self.kind.check_bgp_asn(u).map(|()| u));
                let u = checked.map_err(|p| unsupported(b.at(&asn_path), p))?;
                u as u32
            }
            None => self.kind.features.default_bgp_asn,
        };
        Ok(Some(BgpSettings {
            asn,
            bgp_peering_address: b
                .string(&format!("{path}.bgpPeeringAddress"))?
                .map(str::to_string),
            peer_weight: b.integer(&format!("{path}.peerWeight"))?,
        }))
    }

    fn vnet_gateway(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let gateway_type = b
            .string("properties.gatewayType")?
            .unwrap_or("Vpn")
            .to_string();
        if !["Vpn", "ExpressRoute", "LocalGateway"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&gateway_type))
        {
            return Err(invalid(
                b.at("properties.gatewayType"),
                format!("{gateway_type:?} is not a gateway type (Vpn, ExpressRoute)"),
            ));
        }
        let vpn_type = match b.string("properties.vpnType")? {
            None => VpnType::RouteBased,
            Some(s) if s.eq_ignore_ascii_case("RouteBased") => VpnType::RouteBased,
            Some(s) if s.eq_ignore_ascii_case("PolicyBased") => VpnType::PolicyBased,
            Some(s) => {
                return Err(invalid(
                    b.at("properties.vpnType"),
                    format!("{s:?} is not RouteBased or PolicyBased"),
                ))
            }
        };
        if kind.gateway_skus.is_empty() {
            return Err(unsupported(
                b.at("type"),
                format!(
                    "a {} site ({}) has no virtual network gateways",
                    kind.name, kind.description
                ),
            ));
        }
        let mut meta = meta;
        let sku_name = match b.string("properties.sku.name")? {
            Some(s) => s.to_string(),
            None => {
                let note = format!("{}: no sku given; Basic assumed, as Azure does", meta.name);
                meta.notes.push(note.clone());
                self.notes.push(note);
                "Basic".to_string()
            }
        };
        let sku = kind.gateway_sku(&sku_name).ok_or_else(|| {
            unsupported(
                b.at("properties.sku.name"),
                format!(
                    "gateway SKU {sku_name:?} does not exist on a {} site (available: {})",
                    kind.name,
                    kind.gateway_skus
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if vpn_type == VpnType::PolicyBased {
            if !kind.features.policy_based {
                return Err(unsupported(
                    b.at("properties.vpnType"),
                    format!(
                        "policy-based VPN gateways are not supported on a {} site; use RouteBased",
                        kind.name
                    ),
                ));
            }
            if !sku.policy_based {
                return Err(unsupported(
                    b.at("properties.vpnType"),
                    format!(
                        "policy-based VPN gateways need the Basic SKU, not {}",
                        sku.name
                    ),
                ));
            }
        }
        let active_active = b.boolean("properties.activeActive")?.unwrap_or(false);
        if active_active {
            if !kind.features.active_active {
                return Err(unsupported(
                    b.at("properties.activeActive"),
                    format!(
                        "active-active gateways are not supported on a {} site",
                        kind.name
                    ),
                ));
            }
            if !sku.active_active {
                return Err(unsupported(
                    b.at("properties.activeActive"),
                    format!("the {} SKU does not support active-active", sku.name),
                ));
            }
        }
        let enable_bgp = b.boolean("properties.enableBgp")?.unwrap_or(false);
        let mut bgp_settings = self.bgp_settings(b, "properties.bgpSettings")?;
        if !kind.features.configurable_bgp_peering {
            for field in ["bgpPeeringAddress", "peerWeight"] {
                let path = format!("properties.bgpSettings.{field}");
                if b.value(&path).is_some() {
                    return Err(unsupported(
                        b.at(&path),
                        format!(
                            "a configurable BGP peering address or weight is not supported on a {} site",
                            kind.name
                        ),
                    ));
                }
            }
        }
        if enable_bgp {
            if !kind.features.bgp || !sku.bgp {
                return Err(unsupported(
                    b.at("properties.enableBgp"),
                    format!(
                        "BGP is not available with the {} SKU on a {} site",
                        sku.name, kind.name
                    ),
                ));
            }
            if vpn_type == VpnType::PolicyBased {
                return Err(unsupported(
                    b.at("properties.enableBgp"),
                    "policy-based gateways do not support BGP",
                ));
            }
            bgp_settings.get_or_insert(BgpSettings {
                asn: kind.features.default_bgp_asn,
                bgp_peering_address: None,
                peer_weight: None,
            });
        }
        let cfgs = b.array("properties.ipConfigurations")?;
        let want = if active_active { 2 } else { 1 };
        if cfgs.len() != want {
            return Err(invalid(
                b.at("properties.ipConfigurations"),
                format!(
                    "{} gateway needs exactly {want} ipConfiguration{}, got {}",
                    if active_active {
                        "an active-active"
                    } else {
                        "a"
                    },
                    if want == 1 { "" } else { "s" },
                    cfgs.len()
                ),
            ));
        }
        let old: Option<VirtualNetworkGateway> = match self.find(&meta.id) {
            Some(Resource::VirtualNetworkGateway(g)) => Some(g.clone()),
            _ => None,
        };
        let mut out: Vec<GatewayIpConfiguration> = Vec::new();
        for (i, v) in cfgs.iter().enumerate() {
            let cb = b.sub(v, &format!("properties.ipConfigurations[{i}]"));
            let name = cb.string("name")?.unwrap_or("default").to_string();
            let at_subnet = cb.at("properties.subnet.id");
            let subnet_id = cb
                .id_ref("properties.subnet")?
                .ok_or_else(|| invalid(cb.at("properties.subnet"), "is required"))?
                .to_string();
            let Some((vnet, subnet)) = self.subnet(&subnet_id) else {
                return Err(SiteError::MissingReference {
                    at: at_subnet,
                    target: subnet_id,
                });
            };
            if !subnet.is_gateway_subnet() {
                return Err(invalid(
                    at_subnet,
                    format!(
                        "a VPN gateway must be placed in the subnet named GatewaySubnet, not '{}'",
                        subnet.name
                    ),
                ));
            }
            if let Some(first) = out.first() {
                if !same_id(&first.subnet, &subnet_id) {
                    return Err(invalid(
                        at_subnet,
                        "all ipConfigurations of a gateway must use the same GatewaySubnet",
                    ));
                }
            }
            let vnet_id = vnet.meta.id.clone();
            let prefix = subnet.address_prefix;
            let other_gw = self.view().into_iter().find_map(|r| match r {
                Resource::VirtualNetworkGateway(g)
                    if !same_id(&g.meta.id, &meta.id)
                        && g.gateway_type.eq_ignore_ascii_case(&gateway_type)
                        && g.ip_configurations.iter().any(|c| {
                            split_subnet_id(&c.subnet).is_some_and(|(v, _)| same_id(v, &vnet_id))
                        }) =>
                {
                    Some(g.meta.name.clone())
                }
                _ => None,
            });
            if let Some(other) = other_gw {
                return Err(invalid(
                    at_subnet,
                    format!("virtual network already has a {gateway_type} gateway ('{other}'); a VNet holds one"),
                ));
            }
            let pip_at = cb.at("properties.publicIPAddress.id");
            let pip = cb.id_ref("properties.publicIPAddress")?.ok_or_else(|| {
                invalid(
                    cb.at("properties.publicIPAddress"),
                    "is required: a VPN gateway needs a public IP",
                )
            })?;
            match self.require(pip, "Microsoft.Network/publicIPAddresses", pip_at.clone())? {
                Resource::PublicIpAddress(p)
                    if p.sku == PublicIpSku::Standard && sku.name.eq_ignore_ascii_case("Basic") =>
                {
                    return Err(unsupported(
                        pip_at,
                        "the Basic gateway SKU needs a Basic public IP address",
                    ));
                }
                _ => {}
            }
            if let Some(holder) = self.public_ip_holder(pip, &meta.id) {
                return Err(invalid(
                    pip_at,
                    format!("public IP {pip} is already attached to {holder}"),
                ));
            }
            if out.iter().any(|c| same_id(&c.public_ip_address, pip)) {
                return Err(invalid(
                    pip_at,
                    "each gateway instance needs its own public IP",
                ));
            }
            let mut used = self.used_in_subnet(&subnet_id, &meta.id);
            used.extend(out.iter().map(|c| c.private_ip_address));
            used.extend(self.requested_by_others(&subnet_id, &meta.id));
            let previous = old
                .as_ref()
                .and_then(|o| {
                    o.ip_configurations.iter().find(|c| {
                        c.name.eq_ignore_ascii_case(&name) && same_id(&c.subnet, &subnet_id)
                    })
                })
                .map(|c| c.private_ip_address)
                .filter(|a| ipam::check_static(prefix, *a, &used).is_ok());
            let private_ip_address = previous
                .or_else(|| ipam::first_free_in_subnet(prefix, &used))
                .ok_or_else(|| SiteError::PoolExhausted {
                    at: at_subnet.clone(),
                    problem: format!(
                        "GatewaySubnet {prefix} has no free address left for the gateway instance"
                    ),
                })?;
            out.push(GatewayIpConfiguration {
                name,
                subnet: subnet_id,
                public_ip_address: pip.to_string(),
                private_ip_address,
            });
        }
        let tunnels = self.tunnels_of(&meta.id, "");
        if tunnels > sku.s2s_tunnels as usize {
            return Err(SiteError::TunnelLimit {
                at: b.at("properties.sku.name"),
                problem: format!(
                    "the {} SKU allows {} site-to-site tunnels on a {} site, but {tunnels} connections use this gateway",
                    sku.name, sku.s2s_tunnels, kind.name
                ),
            });
        }
        let vpn_gateway_generation = b
            .string("properties.vpnGatewayGeneration")?
            .map(str::to_string);
        if !gateway_type.eq_ignore_ascii_case("Vpn") {
            let note = format!(
                "{}: {gateway_type} gateways are recorded, not realized",
                meta.name
            );
            meta.notes.push(note.clone());
            self.notes.push(note);
        }
        Ok(Resource::VirtualNetworkGateway(VirtualNetworkGateway {
            meta,
            gateway_type,
            vpn_type,
            sku: sku.name.clone(),
            active_active,
            enable_bgp,
            bgp_settings,
            ip_configurations: out,
            vpn_gateway_generation,
        }))
    }

    /// Connections (IPsec, Vnet2Vnet) whose local end is this gateway, other than `exclude`.
    fn tunnels_of(&self, gateway_id: &str, exclude: &str) -> usize {
        self.view()
            .into_iter()
            .filter(|r| !same_id(r.id(), exclude))
            .filter(|r| match r {
                Resource::Connection(c) => {
                    matches!(
                        c.connection_type,
                        ConnectionType::IPsec | ConnectionType::Vnet2Vnet
                    ) && same_id(&c.virtual_network_gateway1, gateway_id)
                }
                _ => false,
            })
            .count()
    }

    fn local_gateway(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let gateway_ip_address = match b.string("properties.gatewayIpAddress")? {
            Some(s) if s.contains(':') => {
                return Err(unsupported(
                    b.at("properties.gatewayIpAddress"),
                    format!("{s} is IPv6; hybridnet gateways use IPv4"),
                ));
            }
            Some(s) => Some(parse_addr(s, b.at("properties.gatewayIpAddress"))?),
            None => None,
        };
        let fqdn = b
            .string("properties.fqdn")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if gateway_ip_address.is_none() && fqdn.is_none() {
            return Err(invalid(
                b.at("properties.gatewayIpAddress"),
                "is required (or fqdn)",
            ));
        }
        let mut prefixes: Vec<Ipv4Net> = Vec::new();
        for (i, v) in b
            .array("properties.localNetworkAddressSpace.addressPrefixes")?
            .iter()
            .enumerate()
        {
            let path = format!("properties.localNetworkAddressSpace.addressPrefixes[{i}]");
            let s = v.as_str().ok_or_else(|| {
                invalid(
                    b.at(&path),
                    format!("expected a string, got {}", type_name(v)),
                )
            })?;
            let net = parse_prefix(s, b.at(&path))?;
            if let Some(o) = prefixes.iter().find(|o| overlaps(**o, net)) {
                return Err(SiteError::AddressConflict {
                    at: b.at(&path),
                    problem: format!("{net} overlaps {o} in the same address space"),
                });
            }
            prefixes.push(net);
        }
        let bgp_settings = self.bgp_settings(b, "properties.bgpSettings")?;
        if prefixes.is_empty() && bgp_settings.is_none() {
            return Err(invalid(
                b.at("properties.localNetworkAddressSpace.addressPrefixes"),
                "needs at least one prefix (or bgpSettings)",
            ));
        }
        Ok(Resource::LocalNetworkGateway(LocalNetworkGateway {
            meta,
            gateway_ip_address,
            fqdn,
            address_prefixes: prefixes,
            bgp_settings,
        }))
    }

    fn connection(&mut self, meta: ResourceMeta, b: &Body) -> Result<Resource, SiteError> {
        let kind = self.kind;
        let ct_path = "properties.connectionType";
        let ct = b.required_string(ct_path)?;
        let connection_type = match ct.to_ascii_lowercase().as_str() {
            "ipsec" => ConnectionType::IPsec,
            "vnet2vnet" => ConnectionType::Vnet2Vnet,
            "expressroute" => ConnectionType::ExpressRoute,
            "vpnclient" => ConnectionType::VPNClient,
            _ => {
                return Err(invalid(
                    b.at(ct_path),
                    format!(
                    "{ct:?} is not a connection type (IPsec, Vnet2Vnet, ExpressRoute, VPNClient)"
                ),
                ))
            }
        };
        if connection_type == ConnectionType::Vnet2Vnet && !kind.features.vnet2vnet {
            return Err(unsupported(
                b.at(ct_path),
                format!(
                    "VNet-to-VNet connections are not supported on a {} site; use IPsec with a local network gateway",
                    kind.name
                ),
            ));
        }
        let gw1_at = b.at("properties.virtualNetworkGateway1.id");
        let gw1 = b
            .id_ref("properties.virtualNetworkGateway1")?
            .ok_or_else(|| invalid(b.at("properties.virtualNetworkGateway1"), "is required"))?
            .to_string();
        let g1 = self.require_gateway(&gw1, gw1_at.clone())?.clone();
        let sku = kind.gateway_sku(&g1.sku);
        let gw1_vnet: Vec<Ipv4Net> = g1
            .ip_configurations
            .first()
            .and_then(|c| split_subnet_id(&c.subnet))
            .and_then(|(v, _)| self.vnet(v))
            .map(|v| v.address_space.clone())
            .unwrap_or_default();
        let mut virtual_network_gateway2 = None;
        let mut local_network_gateway2 = None;
        let remote_prefixes: Vec<Ipv4Net>;
        let remote_at;
        match connection_type {
            ConnectionType::IPsec => {
                remote_at = b.at("properties.localNetworkGateway2.id");
                let l = b
                    .id_ref("properties.localNetworkGateway2")?
                    .ok_or_else(|| {
                        invalid(
                            b.at("properties.localNetworkGateway2"),
                            "is required for an IPsec connection",
                        )
                    })?;
                remote_prefixes = if self.find(l).is_none() && self.is_elsewhere(l) {
                    Vec::new()
                } else {
                    let lng_type = "Microsoft.Network/localNetworkGateways";
                    match self.require(l, lng_type, remote_at.clone())? {
                        Resource::LocalNetworkGateway(lng) => lng.address_prefixes.clone(),
                        _ => return Err(invalid(remote_at, format!("{l} is not a {lng_type}"))),
                    }
                };
                local_network_gateway2 = Some(l.to_string());
            }
            ConnectionType::Vnet2Vnet => {
                remote_at = b.at("properties.virtualNetworkGateway2.id");
                let g = b
                    .id_ref("properties.virtualNetworkGateway2")?
                    .ok_or_else(|| {
                        invalid(
                            b.at("properties.virtualNetworkGateway2"),
                            "is required for a Vnet2Vnet connection",
                        )
                    })?;
                if same_id(g, &gw1) {
                    return Err(invalid(
                        remote_at,
                        "a connection cannot connect a gateway to itself",
                    ));
                }
                remote_prefixes = if self.find(g).is_none() && self.is_elsewhere(g) {
                    Vec::new()
                } else {
                    let g2 = self.require_gateway(g, remote_at.clone())?;
                    g2.ip_configurations
                        .first()
                        .and_then(|c| split_subnet_id(&c.subnet))
                        .and_then(|(v, _)| self.vnet(v))
                        .map(|v| v.address_space.clone())
                        .unwrap_or_default()
                };
                virtual_network_gateway2 = Some(g.to_string());
            }
            ConnectionType::ExpressRoute | ConnectionType::VPNClient => {
                remote_at = b.at(ct_path);
                remote_prefixes = Vec::new();
            }
        }
        for r in &remote_prefixes {
            if let Some(l) = gw1_vnet.iter().find(|l| overlaps(**l, *r)) {
                return Err(SiteError::AddressConflict {
                    at: remote_at,
                    problem: format!(
                        "the remote address space {r} overlaps the local virtual network's {l}; connected networks must not overlap"
                    ),
                });
            }
        }
        let shared_key = match b.value("properties.sharedKey") {
            None => None,
            Some(Value::String(s)) => {
                if s.is_empty()
                    || s.len() > 128
                    || !s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                {
                    return Err(invalid(
                        b.at("properties.sharedKey"),
                        "must be 1–128 printable ASCII characters (value not shown)",
                    ));
                }
                Some(SharedKey::new(s.clone()))
            }
            Some(other) => {
                return Err(invalid(
                    b.at("properties.sharedKey"),
                    format!(
                        "expected a string, got {} (value not shown)",
                        type_name(other)
                    ),
                ))
            }
        };
        if shared_key.is_none()
            && matches!(
                connection_type,
                ConnectionType::IPsec | ConnectionType::Vnet2Vnet
            )
        {
            return Err(invalid(
                b.at("properties.sharedKey"),
                "is required: hybridnet does not generate keys",
            ));
        }
        let routing_weight = b.integer("properties.routingWeight")?.unwrap_or(0);
        let cp_path = "properties.connectionProtocol";
        let policy_based = g1.vpn_type == VpnType::PolicyBased;
        let connection_protocol = match b.string(cp_path)? {
            None if policy_based => ConnectionProtocol::IKEv1,
            None => ConnectionProtocol::IKEv2,
            Some(s) if policy_based && s.eq_ignore_ascii_case("IKEv2") => {
                return Err(unsupported(
                    b.at(cp_path),
                    format!(
                        "gateway '{}' is policy-based, which speaks IKEv1 only",
                        g1.meta.name
                    ),
                ))
            }
            Some(s) if s.eq_ignore_ascii_case("IKEv2") => ConnectionProtocol::IKEv2,
            Some(s) if s.eq_ignore_ascii_case("IKEv1") => ConnectionProtocol::IKEv1,
            Some(s) => {
                return Err(invalid(
                    b.at(cp_path),
                    format!("{s:?} is not IKEv2 or IKEv1"),
                ))
            }
        };
        let cp_name = format!("{connection_protocol:?}");
        if !kind
            .connection_protocols
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&cp_name))
        {
            return Err(unsupported(
                b.at(cp_path),
                format!(
                    "{cp_name} is not supported on a {} site (supported: {})",
                    kind.name,
                    kind.connection_protocols.join(", ")
                ),
            ));
        }
        let dpd_path = "properties.dpdTimeoutSeconds";
        let dpd_timeout_seconds = match b.integer(dpd_path)? {
            None | Some(0) => kind.dpd.default_timeout_secs,
            Some(v)
                if v >= i64::from(kind.dpd.min_timeout_secs)
                    && v <= i64::from(kind.dpd.max_timeout_secs) =>
            {
                v as u32
            }
            Some(v) => {
                return Err(invalid(
                    b.at(dpd_path),
                    format!(
                        "{v} is out of range: dpdTimeoutSeconds must be {} … {}",
                        kind.dpd.min_timeout_secs, kind.dpd.max_timeout_secs
                    ),
                ));
            }
        };
        let mut ipsec_policies = Vec::new();
        let policies = b.array("properties.ipsecPolicies")?;
        if policies.len() > kind.features.max_ipsec_policies {
            return Err(unsupported(
                b.at("properties.ipsecPolicies"),
                format!(
                    "at most {} policy per connection (got {})",
                    kind.features.max_ipsec_policies,
                    policies.len()
                ),
            ));
        }
        if !policies.is_empty() {
            let allowed = &kind.features.custom_ipsec_policy_skus;
            if !allowed.is_empty() && !allowed.iter().any(|s| s.eq_ignore_ascii_case(&g1.sku)) {
                return Err(unsupported(
                    b.at("properties.ipsecPolicies"),
                    format!(
                        "custom IPsec/IKE policies need gateway SKU {} on a {} site; gateway '{}' is {}",
                        allowed.join(" or "),
                        kind.name,
                        g1.meta.name,
                        g1.sku
                    ),
                ));
            }
        }
        for (i, v) in policies.iter().enumerate() {
            ipsec_policies.push(parse_ipsec_policy(
                &b.sub(v, &format!("properties.ipsecPolicies[{i}]")),
            )?);
        }
        let pbts_path = "properties.usePolicyBasedTrafficSelectors";
        let use_policy_based_traffic_selectors = b.boolean(pbts_path)?.unwrap_or(false);
        if use_policy_based_traffic_selectors && !kind.features.policy_based_traffic_selectors {
            return Err(unsupported(
                b.at(pbts_path),
                format!(
                    "usePolicyBasedTrafficSelectors is not supported on a {} site",
                    kind.name
                ),
            ));
        }
        let enable_bgp = b.boolean("properties.enableBgp")?.unwrap_or(false);
        if enable_bgp && !g1.enable_bgp {
            return Err(invalid(
                b.at("properties.enableBgp"),
                format!("gateway '{}' does not have BGP enabled", g1.meta.name),
            ));
        }
        if matches!(
            connection_type,
            ConnectionType::IPsec | ConnectionType::Vnet2Vnet
        ) {
            if let Some(sku) = sku {
                let n = self.tunnels_of(&gw1, &meta.id) + 1;
                if policy_based && n > 1 {
                    return Err(SiteError::TunnelLimit {
                        at: gw1_at,
                        problem: format!(
                            "gateway '{}' is policy-based, which allows one tunnel; this would be connection {n}",
                            g1.meta.name
                        ),
                    });
                }
                if n > sku.s2s_tunnels as usize {
                    return Err(SiteError::TunnelLimit {
                        at: gw1_at,
                        problem: format!(
                            "gateway '{}' ({} SKU) allows {} site-to-site tunnels on a {} site; this would be connection {n}",
                            g1.meta.name, sku.name, sku.s2s_tunnels, kind.name
                        ),
                    });
                }
            }
        }
        Ok(Resource::Connection(Connection {
            meta,
            connection_type,
            virtual_network_gateway1: gw1,
            virtual_network_gateway2,
            local_network_gateway2,
            shared_key,
            routing_weight,
            connection_protocol,
            dpd_timeout_seconds,
            ipsec_policies,
            use_policy_based_traffic_selectors,
            enable_bgp,
        }))
    }
}

fn parse_ipsec_policy(b: &Body) -> Result<IpsecPolicy, SiteError> {
    fn field<T>(
        b: &Body,
        name: &str,
        parse: fn(&str) -> Option<T>,
        all: &[&str],
    ) -> Result<T, SiteError> {
        let s = b.required_string(name)?;
        parse(s).ok_or_else(|| {
            invalid(
                b.at(name),
                format!("{s:?} is not one of {}", all.join(", ")),
            )
        })
    }
    let life = b
        .integer("saLifeTimeSeconds")?
        .ok_or_else(|| invalid(b.at("saLifeTimeSeconds"), "is required"))?;
    if !(300..=i64::from(u32::MAX)).contains(&life) {
        return Err(invalid(
            b.at("saLifeTimeSeconds"),
            format!("{life} is out of range: at least 300 seconds"),
        ));
    }
    let size = b
        .integer("saDataSizeKilobytes")?
        .ok_or_else(|| invalid(b.at("saDataSizeKilobytes"), "is required"))?;
    if size < 1024 {
        return Err(invalid(
            b.at("saDataSizeKilobytes"),
            format!("{size} is out of range: at least 1024 kilobytes"),
        ));
    }
    let p = IpsecPolicy {
        sa_life_time_seconds: life as u32,
        sa_data_size_kilobytes: size as u64,
        ike_encryption: field(b, "ikeEncryption", IkeEncryption::parse, IkeEncryption::ALL)?,
        ike_integrity: field(b, "ikeIntegrity", IkeIntegrity::parse, IkeIntegrity::ALL)?,
        dh_group: field(b, "dhGroup", DhGroup::parse, DhGroup::ALL)?,
        ipsec_encryption: field(
            b,
            "ipsecEncryption",
            IpsecEncryption::parse,
            IpsecEncryption::ALL,
        )?,
        ipsec_integrity: field(
            b,
            "ipsecIntegrity",
            IpsecIntegrity::parse,
            IpsecIntegrity::ALL,
        )?,
        pfs_group: field(b, "pfsGroup", PfsGroup::parse, PfsGroup::ALL)?,
    };
    let ike_gcm = matches!(
        p.ike_encryption,
        IkeEncryption::GcmAes128 | IkeEncryption::GcmAes256
    );
    let ike_integ_gcm = matches!(
        p.ike_integrity,
        IkeIntegrity::GcmAes128 | IkeIntegrity::GcmAes256
    );
    if (ike_gcm || ike_integ_gcm) && p.ike_encryption.as_str() != p.ike_integrity.as_str() {
        return Err(invalid(
            b.at("ikeIntegrity"),
            format!(
                "{} with ikeEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                p.ike_integrity.as_str(),
                p.ike_encryption.as_str()
            ),
        ));
    }
    let esp_gcm = matches!(
        p.ipsec_encryption,
        IpsecEncryption::GcmAes128 | IpsecEncryption::GcmAes192 | IpsecEncryption::GcmAes256
    );
    let esp_integ_gcm = matches!(
        p.ipsec_integrity,
        IpsecIntegrity::GcmAes128 | IpsecIntegrity::GcmAes192 | IpsecIntegrity::GcmAes256
    );
    if (esp_gcm || esp_integ_gcm) && p.ipsec_encryption.as_str() != p.ipsec_integrity.as_str() {
        return Err(invalid(
            b.at("ipsecIntegrity"),
            format!(
                "{} with ipsecEncryption {}: GCMAES encryption requires the same GCMAES integrity value",
                p.ipsec_integrity.as_str(),
                p.ipsec_encryption.as_str()
            ),
        ));
    }
    if p.dh_group == DhGroup::None {
        return Err(invalid(
            b.at("dhGroup"),
            "None: an IKEv2 SA needs a Diffie-Hellman group",
        ));
    }
    Ok(p)
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
