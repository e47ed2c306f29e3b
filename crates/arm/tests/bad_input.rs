//! Bad input: each case yields exactly one precise error that names the place.

use arm::{
    parse_parameters, parse_template, ArmError, Deployment, DeploymentContext, Map,
    ReferenceResolver, Value,
};
use serde_json::json;

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

const GOOD: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "gatewaySku": {"type": "string", "defaultValue": "Basic", "allowedValues": ["Basic", "Standard"]},
    "sharedKey": {"type": "securestring"},
    "subnetCount": {"type": "int", "defaultValue": 2}
  },
  "resources": [
    {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "pip1"},
    {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "pip2"},
    {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "pip3"},
    {
      "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet1",
      "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [
          {"name": "a", "properties": {"addressPrefix": "10.0.1.0/24"}},
          {"name": "b", "properties": {"addressPrefix": "[subnetPrefix('10.0.0.0/16', 24, 2)]"}}
        ]
      }
    }
  ]
}"#;

fn bind(template: &str, params: Value) -> Result<Deployment, ArmError> {
    let t = parse_template(template)?;
    let p: Map<String, Value> = serde_json::from_value(params).unwrap();
    Deployment::new(&t, &p, &ctx())
}

#[test]
fn malformed_json_reports_line_and_column() {
    let broken = "{\n  \"resources\": [\n    {\"name\": \"x\",, }\n  ]\n}";
    let e = parse_template(broken).unwrap_err();
    assert!(
        matches!(
            e,
            ArmError::Json {
                line: 3,
                column: 18,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "template: malformed JSON at line 3, column 18: key must be a string"
    );
    let e = parse_parameters("{\"parameters\": {\"a\": {\"value\": 1}}").unwrap_err();
    assert!(
        matches!(
            e,
            ArmError::Json {
                what: "parameters file",
                line: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_function_names_function_and_path() {
    let d = bind(GOOD, json!({"sharedKey": "k"})).unwrap();
    let vnet = &d.resources_in_order()[3];
    let e = d.evaluate_resource(vnet, &NoResources).unwrap_err();
    assert_eq!(
        e,
        ArmError::UnknownFunction {
            path: "resources[3].properties.subnets[1].properties.addressPrefix".into(),
            name: "subnetPrefix".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "resources[3].properties.subnets[1].properties.addressPrefix: unknown function 'subnetPrefix'"
    );
}

#[test]
fn missing_required_parameter() {
    let e = bind(GOOD, json!({})).unwrap_err();
    assert_eq!(
        e,
        ArmError::MissingParameter {
            path: "parameters.sharedKey".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "parameters.sharedKey: required parameter has no value"
    );
}

#[test]
fn value_not_in_allowed_values() {
    let e = bind(GOOD, json!({"sharedKey": "k", "gatewaySku": "Foo"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.gatewaySku: value 'Foo' is not one of the allowed values [Basic, Standard]"
    );
}

#[test]
fn wrong_parameter_type() {
    let e = bind(GOOD, json!({"sharedKey": "k", "subnetCount": "two"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.subnetCount: expected a value of type int, got string 'two'"
    );
    let e = bind(GOOD, json!({"sharedKey": 5})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.sharedKey: expected a value of type securestring, got int"
    );
}

#[test]
fn expression_syntax_error_names_path_and_position() {
    let t = GOOD.replace("\"name\": \"pip2\"", "\"name\": \"[concat('pip', 2]\"");
    let e = bind(&t, json!({"sharedKey": "k"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[1].name: invalid expression '[concat('pip', 2]' at character 17: missing ')' to close the arguments of concat"
    );
}

#[test]
fn wrongly_shaped_sections() {
    let e = parse_template(r#"{"resources": {}}"#).unwrap_err();
    assert_eq!(e.to_string(), "resources: expected an array, got object");
    let e =
        parse_template(r#"{"parameters": {"p": {"type": "text"}}, "resources": []}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.p.type: unknown parameter type 'text' (expected string, securestring, int, bool, array, object or secureObject)"
    );
    let e = parse_template(r#"{"resources": [{"type": "Microsoft.Network/virtualNetworks"}]}"#)
        .unwrap_err();
    assert_eq!(e.to_string(), "resources[0]: a resource must have a 'name'");
    let e = parse_template(r#"{"resources": [], "outputs": {"o": {"value": 1}}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "outputs.o.type: an output must declare its type"
    );
    let e = parse_template(r#"{"resources": [], "resourcez": []}"#).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("resourcez: unknown template section"));
    let e = parse_template(r#"{"parameters": []}"#).unwrap_err();
    assert_eq!(e.to_string(), "parameters: expected an object, got array");
    let e = parse_template("[]").unwrap_err();
    assert_eq!(
        e.to_string(),
        "(template): a template must be a JSON object, got array"
    );
    let e = parse_template(r#"{"resources": [{"type": "Microsoft.Network/virtualNetworks", "name": "v", "dependsOn": "x"}]}"#)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[0].dependsOn: expected an array, got string"
    );
}

#[test]
fn resource_name_not_matching_its_type() {
    let t = r#"{"resources": [{"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "2020-05-01", "name": "justone"}]}"#;
    let e = bind(t, json!({})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources[0].name: type 'Microsoft.Network/virtualNetworks/subnets' and name 'justone' do not form a resource id: resource type 'Microsoft.Network/virtualNetworks/subnets' needs 2 name segment(s), got 1"
    );
}

#[test]
fn parameter_files_in_both_shapes() {
    let wrapped = parse_parameters(
        r#"{"$schema": "x", "contentVersion": "1.0.0.0", "parameters": {"a": {"value": 1}, "b": {"value": [2]}}}"#,
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(wrapped),
        json!({"a": 1, "b": [2]})
    );
    let plain = parse_parameters(r#"{"a": 1, "parameters": "not wrapped"}"#).unwrap();
    assert_eq!(
        serde_json::Value::Object(plain),
        json!({"a": 1, "parameters": "not wrapped"})
    );
    let az_style =
        parse_parameters(r#"{"a": {"value": "x"}, "b": {"value": {"value": 1, "k": 2}}}"#).unwrap();
    assert_eq!(
        serde_json::Value::Object(az_style),
        json!({"a": "x", "b": {"value": 1, "k": 2}})
    );
    let e = parse_parameters(
        r#"{"contentVersion": "1.0.0.0", "parameters": {"a": {"reference": {"keyVault": {}}}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.a.reference: Key Vault references are not supported; give a 'value'"
    );
    let e =
        parse_parameters(r#"{"contentVersion": "1.0.0.0", "parameters": {"a": 5}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.a: expected an object with a 'value', got int"
    );
}

#[test]
fn names_declared_twice_ignoring_case() {
    let e = parse_template(r#"{"parameters": {"vnet": {"type": "string"}, "VNet": {"type": "string"}}, "resources": []}"#)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameters.VNet: parameter 'VNet' is declared more than once (names are case-insensitive)"
    );
    let e = bind(
        r#"{"variables": {"a": 1, "A": 2}, "resources": []}"#,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "variables.A: variable 'A' is declared more than once (names are case-insensitive)"
    );
    let e = bind(
        r#"{"variables": {"a": 1, "copy": [{"name": "A", "count": 1, "input": 1}]}, "resources": []}"#,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "variables.copy[0].name: variable 'A' is declared more than once (names are case-insensitive)");
}
