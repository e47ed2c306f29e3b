//! One or more tests for every template function, including edge cases and errors. Expressions
//! are evaluated the way an output value is, against a small template and a fake resolver.

use crate::budget::Budget;
use crate::deployment::{DeploymentContext, ReferenceResolver};
use crate::eval::{Env, Place, Scope};
use crate::template::parse_template;
use crate::ArmError;
use serde_json::{json, Map, Value};

struct Fake;

impl ReferenceResolver for Fake {
    fn reference(&self, id: &str) -> Option<Value> {
        if id.eq_ignore_ascii_case("/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1") {
            Some(json!({"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "provisioningState": "Succeeded"}))
        } else {
            None
        }
    }
}

const TEMPLATE: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.2.3.4",
  "parameters": {
    "name": {"type": "string", "defaultValue": "Hello"},
    "count": {"type": "int", "defaultValue": 5},
    "list": {"type": "array", "defaultValue": [1, 2, 3]},
    "obj": {"type": "object", "defaultValue": {"a": 1, "Nested": {"x": "y"}}},
    "derived": {"type": "string", "defaultValue": "[concat(parameters('name'), '-', string(parameters('count')))]"}
  },
  "variables": {
    "prefix": "[toLower(parameters('name'))]",
    "vnet": {"name": "[concat(variables('prefix'), 'vnet')]", "prefixes": ["10.0.0.0/16"]},
    "copy": [{"name": "subnets", "count": 3, "input": {"name": "[concat('sub', copyIndex('subnets'))]"}}]
  },
  "resources": [
    {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet1", "properties": {}}
  ]
}"#;

fn scope() -> Scope {
    let t = parse_template(TEMPLATE).unwrap();
    let ctx = DeploymentContext {
        subscription_id: "sub1".into(),
        resource_group: "rg1".into(),
        location: "westeurope".into(),
        deployment_name: "dep1".into(),
    };
    let mut s = Scope::new(t, &Map::new(), ctx).unwrap();
    s.known = vec![crate::eval::KnownResource {
        name: "vnet1".into(),
        id: "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1".into(),
    }];
    s
}

fn ev(expr: &str) -> Result<Value, ArmError> {
    let s = scope();
    let budget = Budget::new();
    let env = Env {
        place: Place::Output,
        copy: vec![("loop".into(), 2)],
        resolver: Some(&Fake),
        fn_args: None,
        budget: &budget,
    };
    s.eval_string(expr, "outputs.test.value", &env)
}

fn ok(expr: &str) -> Value {
    ev(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn err(expr: &str) -> String {
    match ev(expr) {
        Ok(v) => panic!("{expr} should fail, gave {v}"),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.starts_with("outputs.test.value: "),
                "error must name the path: {s}"
            );
            s
        }
    }
}

#[test]
fn literals_escape_and_access() {
    assert_eq!(ok("plain"), json!("plain"));
    assert_eq!(ok("[[notAnExpression]"), json!("[notAnExpression]"));
    assert_eq!(ok("['it''s']"), json!("it's"));
    assert_eq!(ok("[-42]"), json!(-42));
    assert_eq!(ok("[parameters('obj').nested.X]"), json!("y"));
    assert_eq!(ok("[parameters('obj')['a']]"), json!(1));
    assert_eq!(ok("[parameters('list')[2]]"), json!(3));
    assert!(
        err("[parameters('list')[3]]").contains("index 3 is out of range for an array of length 3")
    );
    assert!(err("[parameters('obj').missing]")
        .contains("no property 'missing' (properties: a, Nested)"));
    assert!(err("[parameters('name').x]")
        .contains("cannot read property 'x' of a value of type string"));
    assert!(err("[parameters('list')['a']]")
        .contains("cannot index a value of type array with a string"));
}

#[test]
fn function_names_are_case_insensitive() {
    assert_eq!(ok("[CONCAT('a', ToUpper('b'))]"), json!("aB"));
    assert_eq!(ok("[PARAMETERS('NAME')]"), json!("Hello"));
}

#[test]
fn unknown_function_is_named() {
    let e = err("[frobnicate(1)]");
    assert_eq!(e, "outputs.test.value: unknown function 'frobnicate'");
    assert!(err("[ns.myFunc()]").contains("unknown function 'ns.myFunc'"));
    assert!(err("[listKeys('x', '2020-01-01')]").contains("not supported"));
}

#[test]
fn syntax_errors_carry_position() {
    let e = ev("[concat('a', ]").unwrap_err();
    match e {
        ArmError::Syntax {
            position,
            ref expression,
            ..
        } => {
            assert_eq!(position, 14);
            assert_eq!(expression, "[concat('a', ]");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parameters_and_variables() {
    assert_eq!(ok("[parameters('derived')]"), json!("Hello-5"));
    assert_eq!(ok("[variables('vnet').name]"), json!("hellovnet"));
    assert_eq!(ok("[variables('Prefix')]"), json!("hello"));
    assert_eq!(ok("[variables('subnets')[1].name]"), json!("sub1"));
    assert_eq!(ok("[length(variables('subnets'))]"), json!(3));
    assert_eq!(
        err("[parameters('nope')]"),
        "outputs.test.value: the template has no parameter named 'nope'"
    );
    assert_eq!(
        err("[variables('nope')]"),
        "outputs.test.value: the template has no variable named 'nope'"
    );
    assert!(err("[parameters(1)]").contains("argument 1 must be a string, got int"));
}

#[test]
fn resource_id_overloads() {
    let base = "/subscriptions/sub1/resourceGroups/rg1/providers";
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks', 'v')]"),
        json!(format!("{base}/Microsoft.Network/virtualNetworks/v"))
    );
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]"),
        json!(format!(
            "{base}/Microsoft.Network/virtualNetworks/v/subnets/s"
        ))
    );
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks/subnets/', 'v', 'GatewaySubnet')]"),
        json!(format!(
            "{base}/Microsoft.Network/virtualNetworks/v/subnets/GatewaySubnet"
        ))
    );
    assert_eq!(
        ok("[resourceId('otherRg', 'Microsoft.Network/publicIPAddresses', 'ip')]"),
        json!("/subscriptions/sub1/resourceGroups/otherRg/providers/Microsoft.Network/publicIPAddresses/ip")
    );
    assert_eq!(
        ok("[resourceId('sub2', 'otherRg', 'Microsoft.Network/publicIPAddresses', 'ip')]"),
        json!("/subscriptions/sub2/resourceGroups/otherRg/providers/Microsoft.Network/publicIPAddresses/ip")
    );
    assert_eq!(
        ok("[resourceId('A.B/c/d/e', 'n1', 'n2', 'n3')]"),
        json!(format!("{base}/A.B/c/n1/d/n2/e/n3"))
    );
    assert!(err("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v')]")
        .contains("resource type 'Microsoft.Network/virtualNetworks/subnets' needs 2 name segment(s), got 1"));
    assert!(err("[resourceId('vnet', 'x')]").contains("no resource type given"));
    assert!(
        err("[resourceId('a', 'b', 'c', 'Microsoft.Network/x', 'n')]")
            .contains("must be argument 3 at the latest")
    );
    assert!(err("[resourceId('Microsoft.Network/virtualNetworks', 1)]")
        .contains("argument 2 must be a string"));
}

#[test]
fn subscription_and_tenant_resource_ids() {
    assert_eq!(
        ok("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r1')]"),
        json!("/subscriptions/sub1/providers/Microsoft.Authorization/roleDefinitions/r1")
    );
    assert_eq!(
        ok("[subscriptionResourceId('sub9', 'Microsoft.Resources/resourceGroups', 'g')]"),
        json!("/subscriptions/sub9/providers/Microsoft.Resources/resourceGroups/g")
    );
    assert!(
        err("[subscriptionResourceId('s', 'g', 'Microsoft.X/y', 'n')]").contains("at the latest")
    );
    assert_eq!(
        ok("[tenantResourceId('Microsoft.Management/managementGroups', 'm')]"),
        json!("/providers/Microsoft.Management/managementGroups/m")
    );
}

#[test]
fn context_functions() {
    assert_eq!(
        ok("[resourceGroup().id]"),
        json!("/subscriptions/sub1/resourceGroups/rg1")
    );
    assert_eq!(ok("[resourceGroup().location]"), json!("westeurope"));
    assert_eq!(ok("[resourceGroup().name]"), json!("rg1"));
    assert_eq!(ok("[subscription().subscriptionId]"), json!("sub1"));
    assert_eq!(ok("[subscription().id]"), json!("/subscriptions/sub1"));
    assert_eq!(ok("[deployment().name]"), json!("dep1"));
    assert_eq!(
        ok("[deployment().properties.template.contentVersion]"),
        json!("1.2.3.4")
    );
    assert!(err("[resourceGroup('x')]").contains("expects no arguments, got 1"));
}

#[test]
fn reference_via_resolver() {
    assert_eq!(
        ok("[reference(resourceId('Microsoft.Network/virtualNetworks', 'vnet1')).addressSpace.addressPrefixes[0]]"),
        json!("10.1.0.0/16")
    );
    assert_eq!(
        ok("[reference('vnet1').provisioningState]"),
        json!("Succeeded")
    );
    assert_eq!(ok("[reference('Microsoft.Network/virtualNetworks/vnet1', '2020-05-01').provisioningState]"), json!("Succeeded"));
    let full = ok("[reference(resourceId('Microsoft.Network/virtualNetworks', 'vnet1'), '2020-05-01', 'Full')]");
    assert_eq!(full["type"], "Microsoft.Network/virtualNetworks");
    assert_eq!(full["name"], "vnet1");
    assert_eq!(full["properties"]["provisioningState"], "Succeeded");
    let e =
        ev("[reference(resourceId('Microsoft.Network/virtualNetworks', 'vnet2'))]").unwrap_err();
    assert!(matches!(e, ArmError::ReferenceUnavailable { .. }), "{e:?}");
    assert!(e
        .to_string()
        .contains("virtualNetworks/vnet2' is not available"));
    assert!(err("[reference('unknownName')]").contains("no resource named 'unknownName'"));
    assert!(err("[reference('vnet1', '2020', 'Partial')]").contains("must be 'Full'"));
}

#[test]
fn reference_is_refused_in_variables() {
    let s = scope();
    let budget = Budget::new();
    let env = Env {
        place: Place::Variable,
        copy: vec![],
        resolver: Some(&Fake),
        fn_args: None,
        budget: &budget,
    };
    let e = s
        .eval_string("[reference('vnet1')]", "variables.x", &env)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "variables.x: the function 'reference' is not allowed in variables"
    );
}

#[test]
fn copy_index() {
    assert_eq!(ok("[copyIndex()]"), json!(2));
    assert_eq!(ok("[copyIndex(1)]"), json!(3));
    assert_eq!(ok("[copyIndex('LOOP')]"), json!(2));
    assert_eq!(ok("[copyIndex('loop', 10)]"), json!(12));
    assert!(err("[copyIndex('other')]").contains("no enclosing copy loop is named 'other'"));
    let s = scope();
    let budget = Budget::new();
    let env = Env {
        place: Place::Output,
        copy: vec![],
        resolver: None,
        fn_args: None,
        budget: &budget,
    };
    let e = s
        .eval_string("[copyIndex()]", "outputs.x.value", &env)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not allowed in places outside a copy loop"),
        "{e}"
    );
}

#[test]
fn concat_strings_and_arrays() {
    assert_eq!(ok("[concat('a', 'b', 'c')]"), json!("abc"));
    assert_eq!(ok("[concat('n', 1)]"), json!("n1"));
    assert_eq!(
        ok("[concat(createArray(1, 2), createArray(3))]"),
        json!([1, 2, 3])
    );
    assert_eq!(ok("[concat()]"), json!(""));
    assert!(err("[concat(createArray(1), 'x')]")
        .contains("argument 2 must be an array like the first one"));
    assert!(err("[concat('x', createArray(1))]").contains("argument 2 must be a string"));
}

#[test]
fn format_function() {
    assert_eq!(ok("[format('{0}-{1}', 'a', 2)]"), json!("a-2"));
    assert_eq!(ok("[format('{{literal}} {0}', 'x')]"), json!("{literal} x"));
    assert_eq!(ok("[format('{0:D3}', 7)]"), json!("007"));
    assert_eq!(ok("[format('{0:N0}', 1234567)]"), json!("1,234,567"));
    assert_eq!(ok("[format('{0:N2}', 1234)]"), json!("1,234.00"));
    assert_eq!(ok("[format('{0:X}', 255)]"), json!("FF"));
    assert_eq!(ok("[format('{0:x4}', 255)]"), json!("00ff"));
    assert_eq!(ok("[format('{0:000}', 5)]"), json!("005"));
    assert_eq!(ok("[format('[{0,4}]', 'ab')]"), json!("[  ab]"));
    assert_eq!(ok("[format('[{0,-4}]', 'ab')]"), json!("[ab  ]"));
    assert_eq!(ok("[format('{0}', true())]"), json!("True"));
    assert!(err("[format('{1}', 'a')]").contains("only 1 value(s) were given"));
    assert!(err("[format('{0', 'a')]").contains("unclosed"));
    assert!(err("[format('{0:D2}', 'a')]").contains("needs an int"));
}

#[test]
fn case_functions() {
    assert_eq!(ok("[toLower('AbC')]"), json!("abc"));
    assert_eq!(ok("[toUpper('AbC')]"), json!("ABC"));
    assert!(err("[toLower(1)]").contains("argument 1 must be a string, got int"));
    assert!(err("[toUpper()]").contains("expects 1 argument, got 0"));
}

#[test]
fn split_function() {
    assert_eq!(ok("[split('a,b,,c', ',')]"), json!(["a", "b", "", "c"]));
    assert_eq!(
        ok("[split('a;b,c', createArray(',', ';'))]"),
        json!(["a", "b", "c"])
    );
    assert_eq!(ok("[split('10.0.0.0/16', '/')[1]]"), json!("16"));
    assert_eq!(ok("[split('', ',')]"), json!([""]));
    assert!(err("[split('a', 1)]").contains("argument 2 must be a string or an array of strings"));
}

#[test]
fn first_and_last() {
    assert_eq!(ok("[first(createArray(1, 2))]"), json!(1));
    assert_eq!(ok("[last(createArray(1, 2))]"), json!(2));
    assert_eq!(ok("[first('abc')]"), json!("a"));
    assert_eq!(ok("[last('abc')]"), json!("c"));
    assert_eq!(ok("[first(createArray())]"), Value::Null);
    assert_eq!(ok("[last('')]"), json!(""));
    assert!(err("[first(1)]").contains("must be an array or a string"));
}

#[test]
fn if_is_lazy() {
    assert_eq!(ok("[if(equals(1, 1), 'yes', 'no')]"), json!("yes"));
    assert_eq!(ok("[if(false(), frobnicate(), 'no')]"), json!("no"));
    assert_eq!(ok("[if('true', 1, 2)]"), json!(1));
    assert!(err("[if(1, 'a', 'b')]").contains("the condition must be a bool, got int"));
    assert!(err("[if(true(), 'a')]").contains("expects 3 arguments, got 2"));
}

#[test]
fn equality_and_logic() {
    assert_eq!(ok("[equals('a', 'a')]"), json!(true));
    assert_eq!(ok("[equals('a', 'A')]"), json!(false));
    assert_eq!(
        ok("[equals(createArray(1, 2), createArray(1, 2))]"),
        json!(true)
    );
    assert_eq!(ok("[equals(1, '1')]"), json!(false));
    assert_eq!(ok("[not(true())]"), json!(false));
    assert_eq!(ok("[and(true(), true(), false())]"), json!(false));
    assert_eq!(ok("[or(false(), true())]"), json!(true));
    assert_eq!(ok("[true()]"), json!(true));
    assert_eq!(ok("[false()]"), json!(false));
    assert_eq!(ok("[null()]"), Value::Null);
    assert!(err("[not('x')]").contains("argument 1 must be a bool, got string"));
    assert!(err("[and(true())]").contains("expects at least 2 arguments, got 1"));
    assert!(err("[equals(1)]").contains("expects 2 arguments, got 1"));
}

#[test]
fn json_function() {
    assert_eq!(ok("[json('{\"a\": [1, true]}').a[1]]"), json!(true));
    assert_eq!(ok("[json('null')]"), Value::Null);
    assert_eq!(ok("[json('5')]"), json!(5));
    assert!(err("[json('{bad')]").contains("argument 1 is not valid JSON"));
}

#[test]
fn unique_string_and_guid() {
    assert_eq!(ok("[uniqueString('aaa')]"), json!("zavj67f3en4hc"));
    assert_eq!(
        ok("[uniqueString('xxx', 'yyy', 'zzz')]"),
        json!("lghi7k5js7itq")
    );
    assert_eq!(
        ok("[uniqueString('foo', 'bar', 'baz')]"),
        json!("xzi4ioaxtmth4")
    );
    assert_eq!(ok("[length(uniqueString(resourceGroup().id))]"), json!(13));
    assert!(err("[uniqueString()]").contains("expects at least 1 arguments, got 0"));
    assert!(err("[uniqueString(1)]").contains("argument 1 must be a string"));
    assert_eq!(
        ok("[guid('a', 'b', 'c')]"),
        json!("a98fa280-e03f-5afa-8d8e-92d0a9c201e8")
    );
    assert!(err("[guid(createArray())]").contains("argument 1 must be a string"));
}

#[test]
fn length_and_empty() {
    assert_eq!(ok("[length('abc')]"), json!(3));
    assert_eq!(ok("[length(createArray(1, 2))]"), json!(2));
    assert_eq!(ok("[length(parameters('obj'))]"), json!(2));
    assert!(err("[length(1)]").contains("must be a string, array or object"));
    assert_eq!(ok("[empty('')]"), json!(true));
    assert_eq!(ok("[empty(createArray())]"), json!(true));
    assert_eq!(ok("[empty(json('{}'))]"), json!(true));
    assert_eq!(ok("[empty(null())]"), json!(true));
    assert_eq!(ok("[empty('x')]"), json!(false));
    assert!(err("[empty(3)]").contains("must be a string, array, object or null"));
}

#[test]
fn contains_function() {
    assert_eq!(ok("[contains('OneTwo', 'Two')]"), json!(true));
    assert_eq!(ok("[contains('OneTwo', 'two')]"), json!(false));
    assert_eq!(ok("[contains(createArray('a', 'b'), 'b')]"), json!(true));
    assert_eq!(ok("[contains(parameters('obj'), 'NESTED')]"), json!(true));
    assert_eq!(ok("[contains(parameters('obj'), 'zzz')]"), json!(false));
    assert!(err("[contains(1, 1)]").contains("must be a string, array or object"));
}

#[test]
fn union_and_intersection() {
    assert_eq!(
        ok("[union(createArray(1, 2), createArray(2, 3))]"),
        json!([1, 2, 3])
    );
    assert_eq!(
        ok("[union(json('{\"a\": 1, \"n\": {\"x\": 1}}'), json('{\"b\": 2, \"n\": {\"y\": 2}}'))]"),
        json!({"a": 1, "n": {"x": 1, "y": 2}, "b": 2})
    );
    assert_eq!(
        ok("[union(json('{\"a\": 1}'), json('{\"a\": 2}')).a]"),
        json!(2)
    );
    assert!(err("[union(createArray(1), 'x')]")
        .contains("argument 2 must be an array like the first one"));
    assert_eq!(
        ok("[intersection(createArray(1, 2, 3), createArray(3, 2, 9))]"),
        json!([2, 3])
    );
    assert_eq!(
        ok("[intersection(json('{\"a\": 1, \"b\": 2}'), json('{\"a\": 1, \"b\": 3}'))]"),
        json!({"a": 1})
    );
    assert!(err("[intersection(createArray(1))]").contains("expects at least 2 arguments"));
    assert!(err("[intersection('a', 'b')]").contains("must be an array or an object"));
}

#[test]
fn array_and_object_construction() {
    assert_eq!(
        ok("[createArray(1, 'a', createArray())]"),
        json!([1, "a", []])
    );
    assert_eq!(ok("[createArray()]"), json!([]));
    assert_eq!(ok("[array('x')]"), json!(["x"]));
    assert_eq!(ok("[array(createArray(1))]"), json!([1]));
    assert!(err("[array(parameters('obj')).length]")
        .contains("cannot read property 'length' of a value of type array"));
    assert!(err("[array()]").contains("expects 1 argument, got 0"));
}

#[test]
fn array_function_on_object_wraps() {
    assert_eq!(ok("[length(array(parameters('obj')))]"), json!(1));
}

#[test]
fn create_object_and_items() {
    assert_eq!(
        ok("[createObject('a', 1, 'b', createArray(2))]"),
        json!({"a": 1, "b": [2]})
    );
    assert_eq!(ok("[createObject()]"), json!({}));
    assert!(err("[createObject('a')]").contains("even number of arguments"));
    assert!(err("[createObject(1, 2)]").contains("keys must be strings"));
    assert_eq!(
        ok("[items(json('{\"b\": 2, \"a\": 1}'))]"),
        json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    );
    assert!(err("[items(createArray())]").contains("must be an object"));
}

#[test]
fn conversions() {
    assert_eq!(ok("[string(5)]"), json!("5"));
    assert_eq!(ok("[string(true())]"), json!("True"));
    assert_eq!(ok("[string(createArray(1, 'a'))]"), json!("[1,\"a\"]"));
    assert_eq!(ok("[string(json('{\"a\":1}'))]"), json!("{\"a\":1}"));
    assert_eq!(ok("[string('s')]"), json!("s"));
    assert_eq!(ok("[int('42')]"), json!(42));
    assert_eq!(ok("[int(-3)]"), json!(-3));
    assert!(err("[int('4x')]").contains("'4x' cannot be converted to an int"));
    assert_eq!(ok("[bool('TRUE')]"), json!(true));
    assert_eq!(ok("[bool('false')]"), json!(false));
    assert_eq!(ok("[bool(0)]"), json!(false));
    assert_eq!(ok("[bool(1)]"), json!(true));
    assert!(err("[bool('yes')]").contains("cannot be converted to a bool"));
}

#[test]
fn arithmetic() {
    assert_eq!(ok("[add(2, 3)]"), json!(5));
    assert_eq!(ok("[sub(2, 3)]"), json!(-1));
    assert_eq!(ok("[mul(4, 3)]"), json!(12));
    assert_eq!(ok("[div(7, 2)]"), json!(3));
    assert_eq!(ok("[div(-7, 2)]"), json!(-3));
    assert_eq!(ok("[mod(7, 3)]"), json!(1));
    assert!(err("[div(1, 0)]").contains("division by zero"));
    assert!(err("[mod(1, 0)]").contains("division by zero"));
    assert!(err("[add(9223372036854775807, 1)]").contains("overflows"));
    assert!(err("[add('1', 2)]").contains("argument 1 must be an int, got string"));
    assert!(err("[mul(1)]").contains("expects 2 arguments, got 1"));
}

#[test]
fn min_and_max() {
    assert_eq!(ok("[min(3, 1, 2)]"), json!(1));
    assert_eq!(ok("[max(3, 1, 2)]"), json!(3));
    assert_eq!(ok("[min(parameters('list'))]"), json!(1));
    assert_eq!(ok("[max(parameters('list'))]"), json!(3));
    assert!(err("[max(createArray())]").contains("the array is empty"));
    assert!(err("[min(1, 'a')]").contains("argument 2 must be an int"));
}

#[test]
fn comparisons() {
    assert_eq!(ok("[greater(2, 1)]"), json!(true));
    assert_eq!(ok("[greater('b', 'a')]"), json!(true));
    assert_eq!(ok("[greaterOrEquals(1, 1)]"), json!(true));
    assert_eq!(ok("[less(1, 2)]"), json!(true));
    assert_eq!(ok("[less('b', 'a')]"), json!(false));
    assert_eq!(ok("[lessOrEquals(2, 1)]"), json!(false));
    assert!(err("[less(1, 'a')]").contains("both arguments must be ints or both strings"));
}

#[test]
fn coalesce_function() {
    assert_eq!(ok("[coalesce(null(), null(), 'x', 'y')]"), json!("x"));
    assert_eq!(ok("[coalesce(null())]"), Value::Null);
    assert!(err("[coalesce()]").contains("expects at least 1 arguments"));
}

#[test]
fn substring_function() {
    assert_eq!(ok("[substring('hello', 1, 3)]"), json!("ell"));
    assert_eq!(ok("[substring('hello', 2)]"), json!("llo"));
    assert_eq!(ok("[substring('hello', 5, 0)]"), json!(""));
    assert!(err("[substring('hello', 6)]").contains("start index 6 is outside the string"));
    assert!(err("[substring('hello', 3, 5)]").contains("goes past the end"));
    assert!(err("[substring('hello', -1, 1)]").contains("start index -1"));
}

#[test]
fn replace_and_trim() {
    assert_eq!(ok("[replace('a-b-c', '-', '')]"), json!("abc"));
    assert_eq!(ok("[replace('aaa', 'A', 'b')]"), json!("aaa"));
    assert!(err("[replace('a', '', 'b')]").contains("must not be empty"));
    assert_eq!(ok("[trim('  x y  ')]"), json!("x y"));
    assert!(err("[trim(1)]").contains("argument 1 must be a string"));
}

#[test]
fn starts_ends_with() {
    assert_eq!(ok("[startsWith('abcdef', 'AB')]"), json!(true));
    assert_eq!(ok("[startsWith('abcdef', 'e')]"), json!(false));
    assert_eq!(ok("[endsWith('abcdef', 'EF')]"), json!(true));
    assert_eq!(ok("[endsWith('abcdef', 'a')]"), json!(false));
    assert!(err("[endsWith('a')]").contains("expects 2 arguments"));
}

#[test]
fn index_of_functions() {
    assert_eq!(ok("[indexOf('test', 'T')]"), json!(0));
    assert_eq!(ok("[indexOf('abcdef', 'CD')]"), json!(2));
    assert_eq!(ok("[indexOf('abc', 'z')]"), json!(-1));
    assert_eq!(ok("[lastIndexOf('abcabc', 'B')]"), json!(4));
    assert_eq!(ok("[lastIndexOf('abc', 'z')]"), json!(-1));
    assert_eq!(ok("[indexOf(createArray('a', 'b', 'b'), 'b')]"), json!(1));
    assert_eq!(
        ok("[lastIndexOf(createArray('a', 'b', 'b'), 'b')]"),
        json!(2)
    );
    assert!(err("[indexOf(1, 'a')]").contains("must be a string or an array"));
}

#[test]
fn take_and_skip() {
    assert_eq!(ok("[take(createArray(1, 2, 3), 2)]"), json!([1, 2]));
    assert_eq!(ok("[take('hello', 2)]"), json!("he"));
    assert_eq!(ok("[take('hello', 10)]"), json!("hello"));
    assert_eq!(ok("[take(createArray(1), -1)]"), json!([]));
    assert_eq!(ok("[skip(createArray(1, 2, 3), 2)]"), json!([3]));
    assert_eq!(ok("[skip('hello', 3)]"), json!("lo"));
    assert_eq!(ok("[skip('hello', -3)]"), json!("hello"));
    assert!(err("[skip(1, 1)]").contains("must be an array or a string"));
}

#[test]
fn range_function() {
    assert_eq!(ok("[range(5, 3)]"), json!([5, 6, 7]));
    assert_eq!(ok("[range(0, 0)]"), json!([]));
    assert!(err("[range(0, -1)]").contains("between 0 and 10000"));
    assert!(err("[range(0, 10001)]").contains("between 0 and 10000"));
    assert!(err("[range(2147483647, 1)]").contains("must not exceed"));
}

#[test]
fn pad_left_function() {
    assert_eq!(ok("[padLeft('123', 5, '0')]"), json!("00123"));
    assert_eq!(ok("[padLeft(7, 3, '0')]"), json!("007"));
    assert_eq!(ok("[padLeft('abc', 2)]"), json!("abc"));
    assert_eq!(ok("[padLeft('a', 3)]"), json!("  a"));
    assert!(err("[padLeft('a', 3, 'xy')]").contains("exactly one character"));
}

#[test]
fn base64_functions() {
    assert_eq!(
        ok("[base64('one, two, three')]"),
        json!("b25lLCB0d28sIHRocmVl")
    );
    assert_eq!(
        ok("[base64ToString('b25lLCB0d28sIHRocmVl')]"),
        json!("one, two, three")
    );
    assert!(err("[base64ToString('***')]").contains("not valid base64"));
}

#[test]
fn uri_functions() {
    assert_eq!(
        ok("[uri('http://contoso.org/firstpath', 'myscript.sh')]"),
        json!("http://contoso.org/myscript.sh")
    );
    assert_eq!(
        ok("[uri('http://contoso.org/firstpath/', 'myscript.sh')]"),
        json!("http://contoso.org/firstpath/myscript.sh")
    );
    assert_eq!(
        ok("[uri('http://contoso.org/a/b', '/c')]"),
        json!("http://contoso.org/c")
    );
    assert_eq!(
        ok("[uri('http://contoso.org', 'x')]"),
        json!("http://contoso.org/x")
    );
    assert!(err("[uri('notauri', 'x')]").contains("is not an absolute URI"));
    assert_eq!(
        ok("[uriComponent('http://contoso.com/resources/nested/azuredeploy.json')]"),
        json!("http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json")
    );
    assert_eq!(ok("[uriComponentToString('a%20b%2Fc')]"), json!("a b/c"));
    assert!(err("[uriComponentToString('%zz')]").contains("not a valid escape"));
}

#[test]
fn cidr_functions() {
    assert_eq!(
        ok("[parseCidr('10.144.0.0/20')]"),
        json!({"network": "10.144.0.0", "netmask": "255.255.240.0", "broadcast": "10.144.15.255",
               "firstUsable": "10.144.0.1", "lastUsable": "10.144.15.254", "cidr": 20})
    );
    assert_eq!(
        ok("[parseCidr('fdad:3236:5555::/48')]"),
        json!({"network": "fdad:3236:5555::", "netmask": "ffff:ffff:ffff::", "firstUsable": "fdad:3236:5555::",
               "lastUsable": "fdad:3236:5555:ffff:ffff:ffff:ffff:ffff", "cidr": 48})
    );
    assert_eq!(ok("[parseCidr('10.1.2.3/24').network]"), json!("10.1.2.0"));
    assert_eq!(ok("[parseCidr('0.0.0.0/0').netmask]"), json!("0.0.0.0"));
    assert!(err("[parseCidr('10.0.0.0')]").contains("not in CIDR notation"));
    assert!(err("[parseCidr('10.0.0.0/33')]").contains("prefix length 33 is larger than 32"));
    assert!(err("[parseCidr('10.0.0.300/8')]").contains("is not an IP address"));
    assert_eq!(
        ok("[cidrSubnet('10.144.0.0/20', 24, 4)]"),
        json!("10.144.4.0/24")
    );
    assert_eq!(
        ok("[cidrSubnet('10.144.0.0/20', 20, 0)]"),
        json!("10.144.0.0/20")
    );
    assert_eq!(
        ok("[cidrSubnet('fdad:3236:5555::/48', 52, 1)]"),
        json!("fdad:3236:5555:1000::/52")
    );
    assert!(err("[cidrSubnet('10.144.0.0/20', 24, 16)]")
        .contains("subnet index 16 is out of range: 10.144.0.0/20 holds 16 /24 subnets"));
    assert!(err("[cidrSubnet('10.144.0.0/20', 16, 0)]").contains("between 20 and 32"));
    assert_eq!(ok("[cidrHost('10.144.3.0/24', 0)]"), json!("10.144.3.1"));
    assert_eq!(
        ok("[cidrHost('10.144.3.0/24', 253)]"),
        json!("10.144.3.254")
    );
    assert_eq!(
        ok("[cidrHost('fdad:3236:5555:3000::/52', 4)]"),
        json!("fdad:3236:5555:3000::5")
    );
    assert!(err("[cidrHost('10.144.3.0/24', 254)]").contains("host index 254 is out of range"));
    assert!(err("[cidrHost('10.144.3.0/24', -1)]").contains("out of range"));
}

#[test]
fn join_flatten_object_keys_try_get() {
    assert_eq!(
        ok("[join(createArray('a', 'b', 1), ', ')]"),
        json!("a, b, 1")
    );
    assert_eq!(ok("[join(createArray(), '-')]"), json!(""));
    assert!(err("[join(createArray(createArray()), '-')]")
        .contains("element 0 of the array must be a string"));
    assert_eq!(
        ok("[flatten(createArray(createArray(1, 2), createArray(), createArray(3)))]"),
        json!([1, 2, 3])
    );
    assert!(err("[flatten(createArray(1))]").contains("element 0 must be an array"));
    assert_eq!(
        ok("[objectKeys(parameters('obj'))]"),
        json!(["a", "Nested"])
    );
    assert!(err("[objectKeys('x')]").contains("must be an object"));
    assert_eq!(ok("[tryGet(parameters('obj'), 'nested', 'x')]"), json!("y"));
    assert_eq!(
        ok("[tryGet(parameters('obj'), 'missing', 'x')]"),
        Value::Null
    );
    assert_eq!(ok("[tryGet(parameters('list'), 1)]"), json!(2));
    assert_eq!(ok("[tryGet(parameters('list'), 7)]"), Value::Null);
    assert!(err("[tryGet(parameters('obj'), true())]")
        .contains("argument 2 must be a string or an int"));
}

#[test]
fn data_uri_functions() {
    assert_eq!(
        ok("[dataUri('Hello')]"),
        json!("data:text/plain;charset=utf8;base64,SGVsbG8=")
    );
    assert_eq!(
        ok("[dataUriToString('data:;base64,SGVsbG8sIFdvcmxkIQ==')]"),
        json!("Hello, World!")
    );
    assert_eq!(
        ok("[dataUriToString('data:text/plain,a%20b')]"),
        json!("a b")
    );
    assert!(err("[dataUriToString('hello')]").contains("is not a data URI"));
}

#[test]
fn extension_resource_id_function() {
    assert_eq!(
        ok("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'lock1')]"),
        json!(
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Authorization/locks/lock1"
        )
    );
    assert!(
        err("[extensionResourceId('rg', 'Microsoft.Authorization/locks', 'l')]")
            .contains("is not a resource id")
    );
    assert!(
        err("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks')]")
            .contains("expects at least 3 arguments")
    );
}
