//! Virtual machines: their network interfaces are realized (each NIC on one VM); hardware, OS
//! and storage profiles are recorded, secrets masked.

use arm::EvaluatedResource;
use serde_json::Value;

use super::{invalid, Planner};
use crate::error::{Location, SiteError};
use crate::json::get_path;
use crate::model::{same_id, Resource, ResourceMeta, VirtualMachine, VmNic};
use crate::props::{self, vm::VirtualMachineResource};

impl Planner<'_> {
    /// A virtual machine resource.
    pub(super) fn vm(
        &mut self,
        mut meta: ResourceMeta,
        loc: &Location,
        ev: &EvaluatedResource,
    ) -> Result<Resource, SiteError> {
        let p = props::parse::<VirtualMachineResource>(&ev.body, loc)?.properties;
        let nics = &p.network_profile.network_interfaces;
        if nics.is_empty() {
            return Err(invalid(
                loc.at("properties.networkProfile.networkInterfaces"),
                "a virtual machine needs at least one network interface",
            ));
        }
        let mut out: Vec<VmNic> = Vec::new();
        for (i, nic) in nics.iter().enumerate() {
            let id = nic.id.as_str();
            let at = loc.at(format!(
                "properties.networkProfile.networkInterfaces[{i}].id"
            ));
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
            out.push(VmNic {
                id: id.to_string(),
                primary: nic.properties.primary.unwrap_or(i == 0),
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
        meta.notes.push(format!(
            "{}: osProfile and storageProfile are recorded, not realized (the VM is a network namespace)",
            meta.name
        ));
        Ok(Resource::VirtualMachine(VirtualMachine {
            meta,
            network_interfaces: out,
            hardware_profile: section("hardwareProfile"),
            os_profile,
            storage_profile: section("storageProfile"),
        }))
    }
}
