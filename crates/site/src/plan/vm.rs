//! Virtual machines (networking realized, the rest recorded).

use super::*;

impl Planner<'_> {
    pub(super) fn vm(
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
}
