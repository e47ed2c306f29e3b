//! Arbitrary input never panics: it parses and evaluates, or it yields an error. Oversized input
//! hits Azure's documented limits with a clear error.

use arm::{
    parse_parameters, parse_template, Deployment, DeploymentContext, Map, ReferenceResolver, Value,
};
use proptest::prelude::*;
use serde_json::json;

fn ctx() -> DeploymentContext {
    DeploymentContext {
        subscription_id: "sub".into(),
        resource_group: "rg".into(),
        location: "westus".into(),
        deployment_name: "dep".into(),
    }
}

struct Echo;
impl ReferenceResolver for Echo {
    fn reference(&self, id: &str) -> Option<Value> {
        Some(json!({"id": id, "list": [1, 2], "n": 3}))
    }
}

/// Evaluates `expr` as an output value; Ok or Err both fine, a panic is the failure.
fn evaluate_output(expr: &str) -> Result<Value, arm::ArmError> {
    let t = json!({
        "resources": [],
        "parameters": {"p": {"type": "array", "defaultValue": [1, "a", {"k": true}]}},
        "outputs": {"o": {"type": "string", "value": expr}},
    });
    let t = parse_template(&t.to_string())?;
    let d = Deployment::new(&t, &Map::new(), &ctx())?;
    d.outputs(&Echo)
        .map(|mut o| o.remove("o").unwrap_or(Value::Null))
}

const FUNCTIONS: &[&str] = &[
    "concat",
    "format",
    "toLower",
    "split",
    "first",
    "last",
    "if",
    "equals",
    "json",
    "uniqueString",
    "guid",
    "length",
    "empty",
    "contains",
    "union",
    "intersection",
    "createArray",
    "createObject",
    "string",
    "int",
    "bool",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "min",
    "max",
    "greater",
    "less",
    "coalesce",
    "substring",
    "replace",
    "trim",
    "indexOf",
    "take",
    "skip",
    "range",
    "padLeft",
    "base64",
    "base64ToString",
    "uri",
    "uriComponent",
    "parameters",
    "variables",
    "resourceId",
    "reference",
    "copyIndex",
    "parseCidr",
    "cidrSubnet",
    "cidrHost",
    "join",
    "tryGet",
    "items",
    "resourceGroup",
    "deployment",
];

fn arg() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9 ,{}:/.%=-]{0,12}".prop_map(|s| format!("'{s}'")),
        Just("parameters('p')".to_string()),
        Just("'10.0.0.0/16'".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        (
            prop::sample::select(FUNCTIONS),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(f, args)| format!("{f}({})", args.join(", ")))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_function_calls_never_panic(e in arg()) {
        let _ = evaluate_output(&format!("[{e}]"));
        let _ = evaluate_output(&format!("[{e}.x[0]]"));
    }

    #[test]
    fn random_expression_text_never_panics(s in "\\PC{0,40}") {
        let _ = evaluate_output(&format!("[{s}]"));
    }

    #[test]
    fn random_documents_never_panic(s in "\\PC{0,200}") {
        let _ = parse_template(&s);
        let _ = parse_parameters(&s);
    }

    #[test]
    fn mangled_templates_never_panic(cut in 0usize..2000, junk in "[\\[\\]{}\",:'()a-z0-9]{0,5}") {
        let base = r#"{"parameters": {"n": {"type": "int", "defaultValue": 2}},
          "variables": {"v": "[concat('x', string(parameters('n')))]"},
          "resources": [{"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01",
            "name": "[concat(variables('v'), copyIndex())]", "copy": {"name": "l", "count": "[parameters('n')]"},
            "dependsOn": [], "properties": {"x": "[reference('y').n]"}}],
          "outputs": {"o": {"type": "int", "value": "[parameters('n')]"}}}"#;
        let cut = cut.min(base.len());
        let cut = (0..=cut).rev().find(|&i| base.is_char_boundary(i)).unwrap_or(0);
        let text = format!("{}{}{}", &base[..cut], junk, &base[cut..]);
        if let Ok(t) = parse_template(&text) {
            if let Ok(d) = Deployment::new(&t, &Map::new(), &ctx()) {
                for r in d.resources_in_order() {
                    let _ = d.evaluate_resource(r, &Echo);
                }
                let _ = d.outputs(&Echo);
            }
        }
    }
}

#[test]
fn deeply_nested_expressions_are_refused() {
    let deep = format!("[{}1{}]", "string(".repeat(200), ")".repeat(200));
    let e = evaluate_output(&deep).unwrap_err();
    assert!(e.to_string().contains("nests more than 64 levels"), "{e}");
}

#[test]
fn azure_limits_are_enforced() {
    let long = format!("[concat('{}')]", "a".repeat(25_000));
    let e = evaluate_output(&long).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "outputs.o.value: the expression is 25012 characters long; Azure allows at most 24576"
        ),
        "{e}"
    );

    let t = json!({"resources": [
        {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "[concat('a', copyIndex())]",
         "copy": {"name": "a", "count": 500}},
        {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01", "name": "[concat('b', copyIndex())]",
         "copy": {"name": "b", "count": 500}},
    ]});
    let t = parse_template(&t.to_string()).unwrap();
    let e = Deployment::new(&t, &Map::new(), &ctx()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resources: 1000 resources after expanding copy loops; Azure allows at most 800"
    );

    let mut outputs = serde_json::Map::new();
    for i in 0..65 {
        outputs.insert(format!("o{i}"), json!({"type": "int", "value": i}));
    }
    let e = parse_template(&json!({"resources": [], "outputs": outputs}).to_string()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "outputs: 65 entries; Azure allows at most 64"
    );

    let huge = format!(
        "{{\"resources\": [], \"metadata\": \"{}\"}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let e = parse_template(&huge).unwrap_err();
    assert!(
        e.to_string()
            .contains("Azure accepts at most 4194304 (4 MB)"),
        "{e}"
    );
}

#[test]
fn format_refuses_absurd_widths() {
    assert!(evaluate_output("[format('{0,99999999}', 'a')]")
        .unwrap_err()
        .to_string()
        .contains("not a valid alignment"));
    assert!(evaluate_output("[format('{0,-9223372036854775808}', 'a')]").is_err());
    assert!(evaluate_output("[format('{0:D99999999}', 1)]")
        .unwrap_err()
        .to_string()
        .contains("more than 1000 digits"));
}
