//! Property test: templates with arbitrary values at every property either plan or fail with an
//! error — never a panic — and whatever plans, applies and then re-plans as "no change".

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use site::ChangeAction;

fn base() -> Value {
    let mut c = connection("c1", "gw", "peer", "a-shared-key");
    c["properties"]["ipsecPolicies"] = json!([{"saLifeTimeSeconds": 27000, "saDataSizeKilobytes": 102400000, "ipsecEncryption": "GCMAES256",
        "ipsecIntegrity": "GCMAES256", "ikeEncryption": "AES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384", "pfsGroup": "ECP384"}]);
    c["properties"]["dpdTimeoutSeconds"] = json!(45);
    let vm = json!({"type": "Microsoft.Compute/virtualMachines", "apiVersion": "2018-10-01", "name": "vm1", "location": "here",
        "properties": {"hardwareProfile": {"vmSize": "A1"}, "osProfile": {"adminPassword": "x"},
                       "networkProfile": {"networkInterfaces": [{"id": "[resourceId('Microsoft.Network/networkInterfaces', 'n1')]"}]}}});
    json!([
        vnet(
            "vnet1",
            &["10.1.0.0/16"],
            &[
                ("default", "10.1.1.0/24"),
                ("GatewaySubnet", "10.1.255.0/27")
            ]
        ),
        pip("p1"),
        pip("p2"),
        nic("n1", "vnet1", "default", None),
        nic("n2", "vnet1", "default", Some("10.1.1.20")),
        vm,
        gateway("gw", "vnet1", "p1", "VpnGw1"),
        lng("peer", "198.51.100.1", &["10.2.0.0/16"]),
        c
    ])
}

/// Paths (as JSON pointers) of every leaf below each resource's properties / sku.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| leaves(x, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| leaves(x, format!("{at}/{i}"), out)),
        _ => out.push(at),
    }
}

fn pool() -> Vec<Value> {
    vec![
        json!("10.1.1.0/24"),
        json!("10.1.0.0/16"),
        json!("10.1.255.0/30"),
        json!("10.1.1.4"),
        json!("10.1.1.255"),
        json!("0.0.0.0/0"),
        json!("::1/128"),
        json!("garbage"),
        json!(""),
        json!("GatewaySubnet"),
        json!("Static"),
        json!("Standard"),
        json!("GCMAES128"),
        json!("Vnet2Vnet"),
        json!("/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/zz/subnets/q"),
        json!(0),
        json!(-1),
        json!(4294967296u64),
        json!(1.5),
        json!(true),
        json!("false"),
        Value::Null,
        json!([]),
        json!({}),
        json!({"id": 7}),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_values_never_panic_and_plans_are_idempotent(
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4),
        drop_some in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
    ) {
        let mut resources = base();
        let mut paths = Vec::new();
        for (i, r) in resources.as_array().unwrap().iter().enumerate() {
            for key in ["properties", "sku"] {
                if let Some(v) = r.get(key) {
                    leaves(v, format!("/{i}/{key}"), &mut paths);
                }
            }
        }
        let values = pool();
        for (p, v) in &muts {
            let path = &paths[p.index(paths.len())];
            *resources.pointer_mut(path).unwrap() = values[v.index(values.len())].clone();
        }
        for d in &drop_some {
            let arr = resources.as_array_mut().unwrap();
            let i = d.index(arr.len());
            arr.remove(i);
        }
        let mut t = site("azure", "203.0.113.0/29");
        let template = tpl(resources);
        if let Ok(plan) = t.site.plan(&template, Default::default(), "p") {
            t.site.apply(plan).unwrap();
            let again = t.site.plan(&template, Default::default(), "p").unwrap();
            prop_assert!(again.changes.iter().all(|c| c.action == ChangeAction::NoChange), "{:?}", again.changes);
        }
    }
}

/// The unmutated base deploys, so the property above exercises real plans, not only errors.
#[test]
fn base_template_deploys() {
    let mut t = site("azure", "203.0.113.0/29");
    deploy(&mut t.site, &tpl(base()), Default::default(), "p").unwrap();
    assert_eq!(t.site.resources().unwrap().len(), 9);
}
