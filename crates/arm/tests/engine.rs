//! Engine behaviour beyond the public templates: child resources, copy loops, conditions,
//! dependsOn forms, ordering, parameters, variables, outputs and secret handling.

use arm::{parse_template, ArmError, Deployment, DeploymentContext, Map, ReferenceResolver, Value};
use serde_json::json;

const RG: &str = "/subscriptions/sub/resourceGroups/rg/providers";

fn ctx() -> DeploymentContext {
    DeploymentContext {
        subscription_id: "sub".into(),
        resource_group: "rg".into(),
        location: "westus".into(),
        deployment_name: "dep".into(),
    }
}

struct NoResources;
impl ReferenceResolver for NoResources {
    fn reference(&self, _: &str) -> Option<Value> {
        None
    }
}

struct Everything;
impl ReferenceResolver for Everything {
    fn reference(&self, id: &str) -> Option<Value> {
        Some(json!({"ipAddress": "203.0.113.7", "echo": id}))
    }
}

fn template(resources: Value, extra: Value) -> String {
    let mut t = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources,
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            t[k] = v;
        }
    }
    t.to_string()
}

fn deploy(t: &str, params: Value) -> Result<Deployment, ArmError> {
    let t = parse_template(t)?;
    let p: Map<String, Value> = serde_json::from_value(params).unwrap();
    Deployment::new(&t, &p, &ctx())
}

fn order(d: &Deployment) -> Vec<String> {
    d.resources_in_order()
        .iter()
        .map(|r| r.name.clone())
        .collect()
}

fn res(ty: &str, name: &str) -> Value {
    json!({"type": ty, "apiVersion": "2020-05-01", "name": name, "properties": {}})
}

#[test]
fn nested_children_are_flattened_with_full_type_and_name() {
    let t = template(
        json!([{
            "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet1",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
            "resources": [
                {"type": "subnets", "apiVersion": "2020-05-01", "name": "front", "properties": {"addressPrefix": "10.0.1.0/24"}},
                {"type": "subnets", "apiVersion": "2020-05-01", "name": "back", "dependsOn": ["front"],
                 "properties": {"addressPrefix": "10.0.2.0/24"}}
            ]
        }]),
        json!({}),
    );
    let d = deploy(&t, json!({})).unwrap();
    let rs = d.resources_in_order();
    assert_eq!(order(&d), vec!["vnet1", "vnet1/front", "vnet1/back"]);
    assert_eq!(
        rs[1].resource_type,
        "Microsoft.Network/virtualNetworks/subnets"
    );
    assert_eq!(
        rs[1].id,
        format!("{RG}/Microsoft.Network/virtualNetworks/vnet1/subnets/front")
    );
    assert_eq!(rs[1].path, "resources[0].resources[0]");
    assert_eq!(
        rs[1].depends_on,
        vec![format!("{RG}/Microsoft.Network/virtualNetworks/vnet1")]
    );
    let back = d.evaluate_resource(&rs[2], &NoResources).unwrap();
    assert_eq!(back.body["name"], "vnet1/back");
    assert_eq!(
        back.body["type"],
        "Microsoft.Network/virtualNetworks/subnets"
    );
    assert!(back.body.get("dependsOn").is_none() && back.body.get("resources").is_none());
    let parent = d.evaluate_resource(&rs[0], &NoResources).unwrap();
    assert!(
        parent.body.get("resources").is_none(),
        "children are separate resources"
    );
}

#[test]
fn top_level_child_resource_and_dependency_forms() {
    let t = template(
        json!([
            {"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "2020-05-01", "name": "vnet1/sub1",
             "dependsOn": ["[resourceId('Microsoft.Network/virtualNetworks', 'vnet1')]"],
             "properties": {"addressPrefix": "10.0.1.0/24"}},
            {"type": "Microsoft.Network/networkInterfaces", "apiVersion": "2020-05-01", "name": "nic1",
             "dependsOn": ["Microsoft.Network/virtualNetworks/vnet1/subnets/sub1", "pip1"],
             "properties": {}},
            res("Microsoft.Network/publicIPAddresses", "pip1"),
            res("Microsoft.Network/virtualNetworks", "vnet1"),
        ]),
        json!({}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(order(&d), vec!["pip1", "vnet1", "vnet1/sub1", "nic1"]);
    let sub = &d.resources_in_order()[2];
    assert_eq!(
        sub.id,
        format!("{RG}/Microsoft.Network/virtualNetworks/vnet1/subnets/sub1")
    );
    assert_eq!(
        sub.resource_type,
        "Microsoft.Network/virtualNetworks/subnets"
    );
    assert_eq!(
        d.resources_in_order()[3].depends_on,
        vec![
            format!("{RG}/Microsoft.Network/virtualNetworks/vnet1/subnets/sub1"),
            format!("{RG}/Microsoft.Network/publicIPAddresses/pip1")
        ]
    );
}

#[test]
fn independent_resources_keep_template_order() {
    let t = template(
        json!([
            res("Microsoft.Network/publicIPAddresses", "c"),
            res("Microsoft.Network/publicIPAddresses", "a"),
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "b", "dependsOn": ["d"]},
            res("Microsoft.Network/publicIPAddresses", "d"),
            res("Microsoft.Network/publicIPAddresses", "e"),
        ]),
        json!({}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(order(&d), vec!["c", "a", "d", "b", "e"]);
}

#[test]
fn dependency_cycle_names_the_resources() {
    let t = template(
        json!([
            res("Microsoft.Network/publicIPAddresses", "free"),
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "x", "dependsOn": ["y"]},
            {"type": "Microsoft.Network/networkInterfaces", "apiVersion": "2020-05-01", "name": "y",
             "dependsOn": ["[resourceId('Microsoft.Network/virtualNetworks', 'x')]"]},
        ]),
        json!({}),
    );
    let e = deploy(&t, json!({})).unwrap_err();
    assert!(matches!(e, ArmError::DependencyCycle { .. }));
    assert_eq!(
        e.to_string(),
        "circular dependency between resources: Microsoft.Network/virtualNetworks/x (resources[1]) -> Microsoft.Network/networkInterfaces/y (resources[2]) -> Microsoft.Network/virtualNetworks/x"
    );
}

#[test]
fn unresolved_and_ambiguous_dependencies() {
    let t = template(
        json!([{"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "x",
                "dependsOn": ["[concat('Microsoft.Network/publicIPAddresses/', 'nothere')]"]}]),
        json!({}),
    );
    assert_eq!(
        deploy(&t, json!({})).unwrap_err().to_string(),
        "resources[0].dependsOn[0]: dependsOn 'Microsoft.Network/publicIPAddresses/nothere' does not name a resource defined in the template"
    );
    let t = template(
        json!([
            res("Microsoft.Network/publicIPAddresses", "same"),
            res("Microsoft.Network/virtualNetworks", "same"),
            {"type": "Microsoft.Network/connections", "apiVersion": "2020-05-01", "name": "c", "dependsOn": ["same"]},
        ]),
        json!({}),
    );
    let e = deploy(&t, json!({})).unwrap_err();
    assert!(matches!(e, ArmError::AmbiguousDependency { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with("resources[2].dependsOn[0]: dependsOn 'same' is ambiguous"));
}

#[test]
fn copy_loops_expand_and_can_be_depended_on_by_loop_name() {
    let t = template(
        json!([
            {"type": "Microsoft.Network/connections", "apiVersion": "2020-05-01", "name": "conn",
             "dependsOn": ["pips"], "properties": {}},
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01",
             "name": "[concat('pip', copyIndex(1))]",
             "copy": {"name": "pips", "count": "[parameters('n')]"},
             "properties": {"idleTimeoutInMinutes": "[add(4, copyIndex())]"}}
        ]),
        json!({"parameters": {"n": {"type": "int", "defaultValue": 3}}}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(order(&d), vec!["pip1", "pip2", "pip3", "conn"]);
    let pip3 = &d.resources_in_order()[2];
    assert_eq!(
        pip3.copy.as_ref().map(|c| (c.name.as_str(), c.index)),
        Some(("pips", 2))
    );
    assert_eq!(
        d.evaluate_resource(pip3, &NoResources).unwrap().body["properties"]["idleTimeoutInMinutes"],
        6
    );
    assert_eq!(d.resources_in_order()[3].depends_on.len(), 3);
    let d0 = deploy(&t, json!({"n": 0})).unwrap();
    assert_eq!(order(&d0), vec!["conn"]);
    let e = deploy(&t, json!({"n": 900})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[1].copy.count: copy count 900 is outside 0..800"
    );
}

#[test]
fn conditions_skip_resources_and_their_dependencies() {
    let t = template(
        json!([
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "optional",
             "condition": "[parameters('withIp')]"},
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet",
             "dependsOn": ["optional"]}
        ]),
        json!({"parameters": {"withIp": {"type": "bool"}}}),
    );
    let d = deploy(&t, json!({"withIp": "false"})).unwrap();
    assert_eq!(order(&d), vec!["vnet"]);
    assert_eq!(d.skipped_resources()[0].name, "optional");
    assert!(d.resources_in_order()[0].depends_on.is_empty());
    let d = deploy(&t, json!({"withIp": true})).unwrap();
    assert_eq!(order(&d), vec!["optional", "vnet"]);
}

#[test]
fn property_copy_builds_arrays() {
    let t = template(
        json!([{
            "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet",
            "properties": {
                "copy": [{"name": "subnets", "count": "[length(parameters('prefixes'))]",
                          "input": {"name": "[concat('sub', copyIndex('subnets'))]",
                                    "properties": {"addressPrefix": "[parameters('prefixes')[copyIndex('subnets')]]"}}}]
            }
        }]),
        json!({"parameters": {"prefixes": {"type": "array"}}}),
    );
    let d = deploy(&t, json!({"prefixes": ["10.0.0.0/24", "10.0.1.0/24"]})).unwrap();
    let e = d
        .evaluate_resource(&d.resources_in_order()[0], &NoResources)
        .unwrap();
    assert_eq!(
        e.body["properties"]["subnets"],
        json!([
            {"name": "sub0", "properties": {"addressPrefix": "10.0.0.0/24"}},
            {"name": "sub1", "properties": {"addressPrefix": "10.0.1.0/24"}}
        ])
    );
}

#[test]
fn reference_creates_an_implicit_dependency() {
    let t = template(
        json!([
            {"type": "Microsoft.Network/localNetworkGateways", "apiVersion": "2020-05-01", "name": "lgw",
             "properties": {"gatewayIpAddress": "[reference('pip').ipAddress]"}},
            res("Microsoft.Network/publicIPAddresses", "pip"),
        ]),
        json!({}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(order(&d), vec!["pip", "lgw"]);
    let lgw = d
        .evaluate_resource(&d.resources_in_order()[1], &Everything)
        .unwrap();
    assert_eq!(lgw.body["properties"]["gatewayIpAddress"], "203.0.113.7");
    let e = d
        .evaluate_resource(&d.resources_in_order()[1], &NoResources)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("resources[0].properties.gatewayIpAddress: reference(): resource '{RG}/Microsoft.Network/publicIPAddresses/pip' is not available (not deployed yet?)")
    );
}

#[test]
fn reference_is_refused_in_resource_names() {
    let t = template(
        json!([res(
            "Microsoft.Network/publicIPAddresses",
            "[reference('x').name]"
        )]),
        json!({}),
    );
    assert_eq!(
        deploy(&t, json!({})).unwrap_err().to_string(),
        "resources[0].name: the function 'reference' is not allowed in a resource's name, type, apiVersion, condition, dependsOn or copy count"
    );
}

#[test]
fn names_are_case_insensitive() {
    let t = r#"{
      "$schema": "x", "contentVersion": "1.0.0.0",
      "Parameters": {"VnetName": {"Type": "String", "DefaultValue": "v"}},
      "Variables": {"Prefix": "[toUpper(PARAMETERS('vnetname'))]"},
      "Resources": [{"TYPE": "Microsoft.Network/virtualNetworks", "ApiVersion": "2020-05-01",
                     "NAME": "[variables('PREFIX')]", "Properties": {"x": "[parameters('VNETNAME')]"}}],
      "Outputs": {"o": {"Type": "String", "Value": "[variables('prefix')]"}}
    }"#;
    let d = deploy(t, json!({"vnetNAME": "abc"})).unwrap();
    assert_eq!(order(&d), vec!["ABC"]);
    assert_eq!(d.parameter("VNETNAME"), Some(json!("abc")));
    assert_eq!(d.outputs(&NoResources).unwrap()["o"], "ABC");
}

#[test]
fn expression_object_keys_and_escapes() {
    let t = template(
        json!([{"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "p",
                "tags": {"[parameters('tagName')]": "[[literal]", "plain": "[concat('a', 'b')]"}}]),
        json!({"parameters": {"tagName": {"type": "string", "defaultValue": "env"}}}),
    );
    let d = deploy(&t, json!({})).unwrap();
    let e = d
        .evaluate_resource(&d.resources_in_order()[0], &NoResources)
        .unwrap();
    assert_eq!(e.body["tags"], json!({"env": "[literal]", "plain": "ab"}));
}

#[test]
fn parameter_types_are_coerced_like_azure() {
    let t = template(
        json!([]),
        json!({"parameters": {
            "flag": {"type": "bool"}, "num": {"type": "int"}, "obj": {"type": "object", "defaultValue": {}},
        }, "outputs": {
            "flag": {"type": "bool", "value": "[parameters('flag')]"},
            "num": {"type": "int", "value": "[parameters('num')]"},
        }}),
    );
    let d = deploy(&t, json!({"flag": "False", "num": "123"})).unwrap();
    let o = d.outputs(&NoResources).unwrap();
    assert_eq!(o["flag"], json!(false));
    assert_eq!(o["num"], json!(123));
    assert_eq!(
        deploy(&t, json!({"flag": "nope", "num": 1}))
            .unwrap_err()
            .to_string(),
        "parameters.flag: expected a value of type bool, got string 'nope'"
    );
    assert_eq!(
        deploy(&t, json!({"flag": true, "num": "12a"}))
            .unwrap_err()
            .to_string(),
        "parameters.num: expected a value of type int, got string '12a'"
    );
    assert_eq!(
        deploy(&t, json!({"flag": true, "num": 1, "obj": [1]}))
            .unwrap_err()
            .to_string(),
        "parameters.obj: expected a value of type object, got array [1]"
    );
}

#[test]
fn parameter_ranges_lengths_and_allowed_arrays() {
    let t = template(
        json!([]),
        json!({"parameters": {
            "n": {"type": "int", "minValue": 1, "maxValue": 10, "defaultValue": 5},
            "s": {"type": "string", "minLength": 2, "maxLength": 4, "defaultValue": "abc"},
            "zones": {"type": "array", "allowedValues": ["1", "2", "3"], "defaultValue": ["1"]},
        }}),
    );
    assert!(deploy(&t, json!({})).is_ok());
    assert_eq!(
        deploy(&t, json!({"n": 0})).unwrap_err().to_string(),
        "parameters.n: value 0 is less than the minimum value 1"
    );
    assert_eq!(
        deploy(&t, json!({"n": 11})).unwrap_err().to_string(),
        "parameters.n: value 11 is greater than the maximum value 10"
    );
    assert_eq!(
        deploy(&t, json!({"s": "a"})).unwrap_err().to_string(),
        "parameters.s: length 1 is less than the minimum length 2"
    );
    assert_eq!(
        deploy(&t, json!({"s": "abcde"})).unwrap_err().to_string(),
        "parameters.s: length 5 is greater than the maximum length 4"
    );
    assert_eq!(
        deploy(&t, json!({"zones": ["1", "4"]}))
            .unwrap_err()
            .to_string(),
        "parameters.zones: value '4' is not one of the allowed values [1, 2, 3]"
    );
    assert_eq!(
        deploy(&t, json!({"extra": 1})).unwrap_err().to_string(),
        "parameters.extra: the template declares no such parameter (declared: n, s, zones)"
    );
}

#[test]
fn defaults_may_use_other_parameters_but_not_in_a_circle() {
    let t = template(
        json!([]),
        json!({"parameters": {
            "full": {"type": "string", "defaultValue": "[concat(parameters('base'), '-gw')]"},
            "base": {"type": "string", "defaultValue": "[resourceGroup().name]"},
        }}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(d.parameter("full"), Some(json!("rg-gw")));
    let t = template(
        json!([]),
        json!({"parameters": {
            "a": {"type": "string", "defaultValue": "[parameters('b')]"},
            "b": {"type": "string", "defaultValue": "[parameters('a')]"},
        }}),
    );
    let e = deploy(&t, json!({})).unwrap_err();
    assert!(matches!(e, ArmError::CircularReference { .. }), "{e}");
    let t = template(
        json!([]),
        json!({"parameters": {"a": {"type": "string", "defaultValue": "[variables('v')]"}}, "variables": {"v": "x"}}),
    );
    assert_eq!(
        deploy(&t, json!({})).unwrap_err().to_string(),
        "parameters.a.defaultValue: the function 'variables' is not allowed in parameter default values"
    );
}

#[test]
fn variables_nest_and_cycles_are_reported() {
    let t = template(
        json!([]),
        json!({"variables": {
            "settings": {"name": "[variables('base')]", "list": ["[variables('base')]", {"deep": "[length(variables('base'))]"}]},
            "base": "net",
        }, "outputs": {"o": {"type": "object", "value": "[variables('settings')]"}}}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(
        d.outputs(&NoResources).unwrap()["o"],
        json!({"name": "net", "list": ["net", {"deep": 3}]})
    );
    let t = template(
        json!([]),
        json!({"variables": {"a": "[variables('b')]", "b": "[concat(variables('a'), 'x')]"}}),
    );
    let e = deploy(&t, json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "variables.a: circular reference: variable 'a' depends on itself"
    );
}

#[test]
fn outputs_are_type_checked_conditional_and_copyable() {
    let t = template(
        json!([]),
        json!({"parameters": {"pw": {"type": "securestring", "defaultValue": "hunter2"}},
        "outputs": {
            "skipped": {"type": "string", "condition": "[equals(1, 2)]", "value": "x"},
            "list": {"type": "array", "copy": {"count": 3, "input": "[mul(copyIndex(), 10)]"}},
            "secret": {"type": "securestring", "value": "[parameters('pw')]"},
        }}),
    );
    let d = deploy(&t, json!({})).unwrap();
    let o = d.outputs(&NoResources).unwrap();
    assert_eq!(o.keys().collect::<Vec<_>>(), vec!["list"]);
    assert_eq!(o["list"], json!([0, 10, 20]));
    let t = template(
        json!([]),
        json!({"outputs": {"bad": {"type": "int", "value": "abc"}}}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(
        d.outputs(&NoResources).unwrap_err().to_string(),
        "outputs.bad.value: expected a value of type int, got string"
    );
}

#[test]
fn secure_values_never_appear_in_errors_or_debug() {
    let t = template(
        json!([{"type": "Microsoft.Network/connections", "apiVersion": "2020-05-01", "name": "c",
                "properties": {"sharedKey": "[parameters('psk')]", "bad": "[int(parameters('psk'))]"}}]),
        json!({"parameters": {
            "psk": {"type": "securestring"},
            "sku": {"type": "securestring", "allowedValues": ["A"], "defaultValue": "A"},
        }, "variables": {"v": "[int(parameters('psk'))]"}}),
    );
    // the variable fails while converting the secret: the message must not carry it
    let e = deploy(&t, json!({"psk": "Sup3rS3cret"})).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("Sup3rS3cret"), "{shown}");
    assert!(shown.contains("variables.v"), "{shown}");
    // allowedValues on a secure parameter does not echo the value
    let e = deploy(&t, json!({"psk": "x", "sku": "Sup3rS3cret"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.sku: value (secure value) is not one of the allowed values [A]"
    );
    // a wrong type for a secure parameter does not echo the value
    let e = deploy(&t, json!({"psk": ["Sup3rS3cret"]})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.psk: expected a value of type securestring, got array"
    );
}

#[test]
fn secure_values_are_masked_in_resource_errors_and_debug() {
    let t = template(
        json!([{"type": "Microsoft.Network/connections", "apiVersion": "2020-05-01", "name": "c",
                "properties": {"sharedKey": "[parameters('psk')]", "bad": "[int(parameters('psk'))]"}}]),
        json!({"parameters": {"psk": {"type": "securestring"}}}),
    );
    let d = deploy(&t, json!({"psk": "Sup3rS3cret"})).unwrap();
    let e = d
        .evaluate_resource(&d.resources_in_order()[0], &NoResources)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[0].properties.bad: int(): '***' cannot be converted to an int"
    );
    assert!(!format!("{d:?}").contains("Sup3rS3cret"));
    let t2 = template(
        json!([{"type": "Microsoft.Network/connections", "apiVersion": "2020-05-01", "name": "c",
                "properties": {"sharedKey": "[parameters('psk')]"}}]),
        json!({"parameters": {"psk": {"type": "securestring"}}}),
    );
    let d = deploy(&t2, json!({"psk": "Sup3rS3cret"})).unwrap();
    let r = d
        .evaluate_resource(&d.resources_in_order()[0], &NoResources)
        .unwrap();
    assert_eq!(
        r.body["properties"]["sharedKey"], "Sup3rS3cret",
        "the resource provider gets the real key"
    );
    assert!(!format!("{r:?}").contains("Sup3rS3cret"));
    assert_eq!(d.parameters_redacted()["psk"], "***");
}

#[test]
fn api_version_is_required_unless_a_profile_supplies_it() {
    let t = template(
        json!([{"type": "Microsoft.Network/virtualNetworks", "name": "v"}]),
        json!({}),
    );
    assert_eq!(
        deploy(&t, json!({})).unwrap_err().to_string(),
        "resources[0]: the resource has no apiVersion (and the template no apiProfile)"
    );
    let t = template(
        json!([{"type": "Microsoft.Network/virtualNetworks", "name": "v"}]),
        json!({"apiProfile": "2020-09-01-hybrid"}),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(
        d.resources_in_order()[0].api_version.as_deref(),
        Some("2018-11-01")
    );
    assert_eq!(d.api_profile(), Some("2020-09-01-hybrid"));
    let t = template(
        json!([{"type": "Contoso.Widgets/widgets", "name": "w"}]),
        json!({"apiProfile": "2020-09-01-hybrid"}),
    );
    assert!(deploy(&t, json!({})).unwrap_err().to_string().starts_with(
        "resources[0]: the resource has no apiVersion and apiProfile '2020-09-01-hybrid' gives none for 'Contoso.Widgets/widgets'"
    ));
}

#[test]
fn variable_copy_and_unique_string_in_names() {
    let t = template(
        json!([{"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2019-06-01",
                "name": "[concat('st', uniqueString(resourceGroup().id))]"}]),
        json!({"variables": {"copy": [{"name": "disks", "count": 2, "input": {"lun": "[copyIndex('disks')]"}}]},
               "outputs": {"d": {"type": "array", "value": "[variables('disks')]"},
                           "u": {"type": "string", "value": "[uniqueString('/subscriptions/sub/resourceGroups/rg')]"}}}),
    );
    let d = deploy(&t, json!({})).unwrap();
    let name = &d.resources_in_order()[0].name;
    assert_eq!(name.len(), 15);
    let outputs = d.outputs(&NoResources).unwrap();
    assert_eq!(name, &format!("st{}", outputs["u"].as_str().unwrap()));
    assert_eq!(outputs["d"], json!([{"lun": 0}, {"lun": 1}]));
}

#[test]
fn deployment_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Deployment>();
    assert_send_sync::<arm::EvaluatedResource>();
    assert_send_sync::<arm::Template>();
    let t = template(
        json!([res(
            "Microsoft.Network/publicIPAddresses",
            "[parameters('n')]"
        )]),
        json!({"parameters": {"n": {"type": "string"}}}),
    );
    let d = deploy(&t, json!({"n": "pip"})).unwrap();
    let name = std::thread::scope(|s| s.spawn(|| d.parameter("n")).join().unwrap());
    assert_eq!(name, Some(json!("pip")));
}

#[test]
fn serial_copy_loops_deploy_in_batches() {
    let t = template(
        json!([
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01",
             "name": "[concat('ip', copyIndex())]",
             "copy": {"name": "ips", "count": 5, "mode": "Serial", "batchSize": 2}},
        ]),
        json!({}),
    );
    let d = deploy(&t, json!({})).unwrap();
    let deps: Vec<Vec<String>> = d
        .resources_in_order()
        .iter()
        .map(|r| {
            r.depends_on
                .iter()
                .map(|id| id.rsplit('/').next().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        deps,
        vec![
            vec![],
            vec![],
            vec!["ip0".to_string()],
            vec!["ip1".to_string()],
            vec!["ip2".to_string()]
        ]
    );
    let bad = t.replace("\"Serial\"", "\"sideways\"");
    assert_eq!(
        deploy(&bad, json!({})).unwrap_err().to_string(),
        "resources[0].copy.mode: copy mode must be 'serial' or 'parallel', got 'sideways'"
    );
    let bad = t.replace("\"batchSize\":2", "\"batchSize\":0");
    assert_eq!(
        deploy(&bad, json!({})).unwrap_err().to_string(),
        "resources[0].copy.batchSize: batchSize must be an int from 1 to 800, got 0"
    );
}

#[test]
fn user_defined_functions() {
    let t = template(
        json!([{"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01",
                "name": "[lab.name('Hub', 1)]"}]),
        json!({
            "parameters": {"suffix": {"type": "string", "defaultValue": "x"}},
            "variables": {"v": 1},
            "functions": [{"namespace": "lab", "members": {
                "name": {"parameters": [{"name": "base", "type": "string"}, {"name": "n", "type": "int"}],
                         "output": {"type": "string", "value": "[concat(toLower(parameters('base')), '-', string(parameters('n')))]"}},
                "usesVariables": {"parameters": [], "output": {"type": "int", "value": "[variables('v')]"}},
                "usesTemplateParameter": {"parameters": [], "output": {"type": "string", "value": "[parameters('suffix')]"}},
                "callsOther": {"parameters": [], "output": {"type": "string", "value": "[lab.name('a', 1)]"}},
                "wrongType": {"parameters": [], "output": {"type": "int", "value": "text"}},
            }}],
            "outputs": {"o": {"type": "string", "value": "[LAB.Name('Spoke', 2)]"}},
        }),
    );
    let d = deploy(&t, json!({})).unwrap();
    assert_eq!(order(&d), vec!["hub-1"]);
    assert_eq!(d.outputs(&NoResources).unwrap()["o"], "spoke-2");

    let with_output = |expr: &str| {
        let mut v: Value = serde_json::from_str(&t).unwrap();
        v["outputs"]["o"]["value"] = json!(expr);
        deploy(&v.to_string(), json!({}))
            .unwrap()
            .outputs(&NoResources)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        with_output("[lab.name('a')]"),
        "outputs.o.value: lab.name(): expects 2 argument(s), got 1"
    );
    assert_eq!(
        with_output("[lab.name('a', 'b')]"),
        "outputs.o.value: lab.name(): argument 2 ('n') must be int, got string"
    );
    assert_eq!(
        with_output("[lab.usesVariables()]"),
        "functions[0].members.usesVariables.output.value: the function 'variables' is not allowed in user-defined functions"
    );
    assert_eq!(
        with_output("[lab.usesTemplateParameter()]"),
        "functions[0].members.usesTemplateParameter.output.value: the template has no function parameter named 'suffix'"
    );
    assert_eq!(
        with_output("[lab.callsOther()]"),
        "functions[0].members.callsOther.output.value: the function 'lab.name' is not allowed in user-defined functions (they cannot call each other)"
    );
    assert_eq!(
        with_output("[lab.wrongType()]"),
        "functions[0].members.wrongType.output.value: expected a value of type int, got string"
    );
    assert_eq!(
        with_output("[lab.missing()]"),
        "outputs.o.value: unknown function 'lab.missing'"
    );
    assert_eq!(
        with_output("[other.name('a', 1)]"),
        "outputs.o.value: unknown function 'other.name'"
    );
}
