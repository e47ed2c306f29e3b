//! Addresses in use and requested while planning (the pure rules are in `crate::ipam`).

use super::*;

impl Planner<'_> {
    /// Collects the static NIC addresses of the deployment before anything is allocated. A NIC
    /// whose body cannot be evaluated yet (it uses reference()) is skipped here; its error, if
    /// any, surfaces when it is planned.
    pub(super) fn collect_static_requests(&mut self, d: &arm::Deployment) {
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
    pub(super) fn requested_by_others(
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

    /// Addresses in use in a subnet by NICs and gateways other than `exclude`.
    pub(super) fn used_in_subnet(&self, subnet_id: &str, exclude: &str) -> BTreeSet<Ipv4Addr> {
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
}
