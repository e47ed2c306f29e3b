//! Network security groups: rules checked as Azure checks them (priority range, unique names,
//! one priority per direction, either the single or the plural form of each field), child
//! `securityRules` resources merged into their NSG.

use serde_json::Value;

use super::{invalid, unsupported, Planner};
use crate::error::{Location, SiteError};
use crate::model::nsg::{AddressMatch, NetworkSecurityGroup, PortRange, SecurityRule};
use crate::model::{Resource, ResourceMeta};
use crate::props::nsg::{Address, NsgResource, Ports, RuleProperties, RuleResource};
use crate::props::{self};

/// `*`-or-list fields: the single form, or the plural one, not both.
fn one_or_many<T: Copy>(
    single: Option<T>,
    many: &Option<Vec<T>>,
    at: &dyn Fn(&str) -> Location,
    names: (&str, &str),
) -> Result<Vec<T>, SiteError> {
    match (single, many.as_deref()) {
        (Some(_), Some(m)) if !m.is_empty() => Err(invalid(
            at(names.1),
            format!("give either {} or {}, not both", names.0, names.1),
        )),
        (Some(s), _) => Ok(vec![s]),
        (None, Some(m)) if !m.is_empty() => Ok(m.to_vec()),
        _ => Err(invalid(
            at(names.0),
            format!("is required (or {})", names.1),
        )),
    }
}

/// One rule's properties at `at(...)`.
fn rule(
    name: &str,
    p: &RuleProperties,
    at: &dyn Fn(&str) -> Location,
) -> Result<SecurityRule, SiteError> {
    if !(100..=4096).contains(&p.priority) {
        return Err(invalid(
            at("priority"),
            format!(
                "{} is out of range: a rule's priority is 100 … 4096",
                p.priority
            ),
        ));
    }
    for (field, v) in [
        (
            "sourceApplicationSecurityGroups",
            &p.source_application_security_groups,
        ),
        (
            "destinationApplicationSecurityGroups",
            &p.destination_application_security_groups,
        ),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(unsupported(
                at(field),
                "application security groups are not realized by the lab: use address prefixes",
            ));
        }
    }
    let ports = |single: Option<Ports>,
                 many: &Option<Vec<Ports>>,
                 names|
     -> Result<Vec<PortRange>, SiteError> {
        let list = one_or_many(single, many, at, names)?;
        // `*` anywhere means any port
        Ok(if list.iter().any(|p| p.0.is_none()) {
            Vec::new()
        } else {
            list.iter().filter_map(|p| p.0).collect()
        })
    };
    let addrs = |single: Option<Address>,
                 many: &Option<Vec<Address>>,
                 names|
     -> Result<Vec<AddressMatch>, SiteError> {
        Ok(one_or_many(single, many, at, names)?
            .into_iter()
            .map(|a| a.0)
            .collect())
    };
    Ok(SecurityRule {
        name: name.to_string(),
        description: p.description.clone(),
        protocol: p.protocol,
        source_ports: ports(
            p.source_port_range,
            &p.source_port_ranges,
            ("sourcePortRange", "sourcePortRanges"),
        )?,
        destination_ports: ports(
            p.destination_port_range,
            &p.destination_port_ranges,
            ("destinationPortRange", "destinationPortRanges"),
        )?,
        source: addrs(
            p.source_address_prefix,
            &p.source_address_prefixes,
            ("sourceAddressPrefix", "sourceAddressPrefixes"),
        )?,
        destination: addrs(
            p.destination_address_prefix,
            &p.destination_address_prefixes,
            ("destinationAddressPrefix", "destinationAddressPrefixes"),
        )?,
        access: p.access,
        priority: p.priority as u16,
        direction: p.direction,
    })
}

/// Names unique, and no two rules of one direction at one priority (Azure refuses both).
fn check_rules(
    rules: &[SecurityRule],
    at_rule: &dyn Fn(usize) -> Location,
) -> Result<(), SiteError> {
    for (i, r) in rules.iter().enumerate() {
        for earlier in &rules[..i] {
            if earlier.name.eq_ignore_ascii_case(&r.name) {
                return Err(invalid(
                    at_rule(i),
                    format!(
                        "a rule named '{}' is already in this network security group",
                        r.name
                    ),
                ));
            }
            if earlier.direction == r.direction && earlier.priority == r.priority {
                return Err(invalid(
                    at_rule(i),
                    format!(
                        "rules '{}' and '{}' have the same priority {} and direction {:?}",
                        earlier.name, r.name, r.priority, r.direction
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Planner<'_> {
    /// A network security group resource. Its `securityRules` replace the stored ones, as a
    /// PUT does on ARM (child rules of the same deployment are merged in after it).
    pub(super) fn nsg(
        &mut self,
        meta: ResourceMeta,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<NsgResource>(body, loc)?.properties;
        let mut rules = Vec::new();
        for (i, r) in p.security_rules.iter().enumerate() {
            let at =
                |field: &str| loc.at(format!("properties.securityRules[{i}].properties.{field}"));
            rules.push(rule(&r.name, &r.properties, &at)?);
        }
        check_rules(&rules, &|i| {
            loc.at(format!("properties.securityRules[{i}]"))
        })?;
        Ok(Resource::NetworkSecurityGroup(NetworkSecurityGroup {
            meta,
            security_rules: rules,
        }))
    }

    /// A child `securityRules` resource: merged into its network security group.
    pub(super) fn nsg_child_rule(
        &mut self,
        id: &str,
        loc: &Location,
        body: &Value,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<RuleResource>(body, loc)?.properties;
        let lower = id.to_ascii_lowercase();
        let (nsg_id, name) = lower
            .find("/securityrules/")
            .map(|at| (&id[..at], &id[at + "/securityrules/".len()..]))
            .filter(|(_, n)| !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| invalid(loc.at("name"), format!("{id} is not a security rule id")))?;
        let Some(Resource::NetworkSecurityGroup(mut nsg)) = self.find(nsg_id).cloned() else {
            return Err(SiteError::MissingReference {
                at: loc.at("name"),
                target: nsg_id.to_string(),
            });
        };
        let r = rule(name, &p, &|field: &str| {
            loc.at(format!("properties.{field}"))
        })?;
        match nsg
            .security_rules
            .iter()
            .position(|x| x.name.eq_ignore_ascii_case(name))
        {
            Some(i) => nsg.security_rules[i] = r,
            None => nsg.security_rules.push(r),
        }
        check_rules(&nsg.security_rules, &|_| loc.at("properties.priority"))?;
        nsg.meta.deployment = self.deployment_name.clone();
        Ok(Resource::NetworkSecurityGroup(nsg))
    }
}
