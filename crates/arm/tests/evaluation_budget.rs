//! Small templates that would exhaust memory, CPU or the stack stop with a precise error instead:
//! values are bounded in size and nesting while they are built, evaluation in work and depth.
//! Every case runs with a per-thread allocation counter, so a regression shows up as a failed
//! assertion on the peak (the budget still stops it) rather than as an out-of-memory abort.

use arm::{parse_template, ArmError, Deployment, DeploymentContext, Map, ReferenceResolver, Value};
use proptest::prelude::*;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Counts the bytes each thread has allocated and not yet freed, and the peak of that count.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak memory this thread used while running `f` beyond what it held before, and how long it took.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    let peak = PEAK.with(Cell::get) - before;
    (out, peak.max(0) as usize, elapsed)
}

const MIB: usize = 1024 * 1024;

/// The message of running out of work.
const WORK: &str = "evaluation stopped after 67108864 units of work (about a byte of memory \
                    each, for the values built and copied, the expressions parsed and the steps \
                    taken); a template needing more cannot be deployed";

/// What any of these cases may take: the work budget (64 Mi units, about 64 MiB allocated) stops
/// each well below; the largest peaks near 70 MiB.
const MEMORY_CEILING: usize = 128 * MIB;

/// A hang guard generous enough for an unoptimized build on a loaded machine.
const TIME_CEILING: Duration = Duration::from_secs(20);

fn ctx() -> DeploymentContext {
    DeploymentContext {
        subscription_id: "sub".into(),
        resource_group: "rg".into(),
        location: "westus".into(),
        deployment_name: "dep".into(),
    }
}

struct Nothing;
impl ReferenceResolver for Nothing {
    fn reference(&self, _: &str) -> Option<Value> {
        None
    }
}

/// Binds the template, evaluates every resource and the outputs; the first error, if any.
fn deploy(template: &Value) -> Result<Map<String, Value>, ArmError> {
    let t = parse_template(&template.to_string())?;
    let d = Deployment::new(&t, &Map::new(), &ctx())?;
    for r in d.resources_in_order() {
        d.evaluate_resource(r, &Nothing)?;
    }
    d.outputs(&Nothing)
}

/// Deploys `template`, expecting a failure; checks memory and time and returns the error.
fn refused(template: &Value) -> ArmError {
    let (result, peak, elapsed) = measured(|| deploy(template));
    assert!(peak < MEMORY_CEILING, "peak allocation {} MiB", peak / MIB);
    assert!(elapsed < TIME_CEILING, "took {elapsed:?}");
    match result {
        Ok(out) => panic!("the template was accepted: {} outputs", out.len()),
        Err(e) => e,
    }
}

fn with_output(expr: &str) -> Value {
    json!({"resources": [], "outputs": {"o": {"type": "string", "value": expr}}})
}

/// `v0` = `seed`, `v{k}` = `step` applied to `v{k-1}` (`{}` stands for `variables('v{k-1}')`).
fn chain(seed: Value, step: &str, n: usize) -> Value {
    let mut vars = serde_json::Map::new();
    vars.insert("v0".into(), seed);
    for k in 1..n {
        let prev = format!("variables('v{}')", k - 1);
        vars.insert(
            format!("v{k}"),
            Value::String(format!("[{}]", step.replace("{}", &prev))),
        );
    }
    json!({"variables": vars, "resources": []})
}

#[test]
fn forty_concat_doublings_stop_at_the_variable_that_outgrows_the_limit() {
    let e = refused(&chain(json!("x"), "concat({}, {})", 40));
    assert!(matches!(e, ArmError::Limit { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "variables.v22: the result of concat() would be at least 4194306 bytes of JSON; a value \
         may have at most 4194304 (Azure's 4 MB limit on the expanded template) (in \
         '[concat(variables('v21'), variables('v21'))]')"
    );
    assert_eq!(e.path(), "variables.v22");
}

#[test]
fn array_doublings_stop_too() {
    for (step, seed) in [
        ("concat({}, {})", json!(["abc"])),
        ("createArray({}, {})", json!(1)),
        (
            "union(createArray({}), createArray(createArray({})))",
            json!(0),
        ),
        ("createObject('a', {}, 'b', {})", json!("x")),
        ("items(createObject('a', {}, 'b', {}))", json!(1)),
        (
            "json(concat('[', string({}), ',', string({}), ']'))",
            json!([1]),
        ),
    ] {
        let e = refused(&chain(seed, step, 40));
        let text = e.to_string();
        assert!(matches!(e, ArmError::Limit { .. }), "{step}: {e:?}");
        assert!(text.starts_with("variables.v"), "{step}: {text}");
        assert!(
            text.contains("bytes of JSON; a value may have at most 4194304")
                || text.contains("levels deep; a value may nest at most 128")
                || text.contains("evaluation stopped after 67108864 units of work"),
            "{step}: {text}"
        );
    }
}

/// `{"copy": [{"name": n, "count": 800, "input": inner}]}`
fn property_copy(name: &str, inner: Value) -> Value {
    json!({"copy": [{"name": name, "count": 800, "input": inner}]})
}

#[test]
fn nested_variable_copies_800_cubed_are_refused() {
    let t = json!({
        "variables": {"copy": [{
            "name": "outer", "count": 800,
            "input": property_copy("middle", property_copy("inner", json!("[copyIndex('inner')]"))),
        }]},
        "resources": [],
    });
    assert_eq!(
        refused(&t).to_string(),
        format!("variables.copy[0].input.copy[0].input.copy[0].input: {WORK} (in '[copyIndex('inner')]')")
    );
}

#[test]
fn nested_property_copies_800_cubed_are_refused() {
    let t = json!({"resources": [{
        "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01", "name": "vnet",
        "properties": property_copy("a", property_copy("b", property_copy("c", json!("[copyIndex('c')]")))),
    }]});
    assert_eq!(
        refused(&t).to_string(),
        format!("resources[0].properties.copy[0].input.copy[0].input.copy[0].input: {WORK} (in '[copyIndex('c')]')")
    );
}

#[test]
fn nested_resource_copies_stop_expanding() {
    let t = json!({"resources": [{
        "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01",
        "name": "[concat('vnet', copyIndex())]", "copy": {"name": "vnets", "count": 800},
        "resources": [{
            "type": "subnets", "apiVersion": "2020-05-01",
            "name": "[concat('s', copyIndex('subnets'))]", "copy": {"name": "subnets", "count": 800},
            "dependsOn": ["[concat('vnet', copyIndex('vnets'))]"],
        }],
    }]});
    let e = refused(&t);
    assert_eq!(
        e.to_string(),
        "resources: more than 6400 resources after expanding copy loops (expansion stopped at \
         resources[0].resources[0]); Azure allows at most 800"
    );
}

#[test]
fn copy_count_from_a_parameter_is_bounded() {
    let t = json!({
        "parameters": {"n": {"type": "int", "defaultValue": 1_000_000_000}},
        "variables": {"copy": [{"name": "xs", "count": "[parameters('n')]", "input": "x"}]},
        "resources": [],
    });
    assert_eq!(
        refused(&t).to_string(),
        "variables.copy[0].count: copy count 1000000000 is outside 0..800"
    );
}

#[test]
fn range_and_pad_left_refuse_huge_counts() {
    assert_eq!(
        refused(&with_output("[string(range(0, 2000000000))]")).to_string(),
        "outputs.o.value: range(): count 2000000000 must be between 0 and 10000"
    );
    assert_eq!(
        refused(&with_output("[padLeft('x', 1000000000)]")).to_string(),
        "outputs.o.value: padLeft(): total length 1000000000 must be between 0 and 16384"
    );
}

/// A 2 MiB string variable `big` (21 doublings of 'x') plus `extra` variables.
fn with_big(extra: Value, outputs: Value) -> Value {
    let mut t = chain(json!("x"), "concat({}, {})", 22);
    let vars = t["variables"].as_object_mut().unwrap();
    vars.insert("big".into(), json!("[variables('v21')]"));
    for (k, v) in extra.as_object().unwrap() {
        vars.insert(k.clone(), v.clone());
    }
    t["outputs"] = outputs;
    t
}

#[test]
fn growing_string_functions_check_before_they_allocate() {
    for (expr, function) in [
        ("[replace(variables('big'), 'x', 'xxxxxxxx')]", "replace"),
        ("[join(range(0, 10000), variables('big'))]", "join"),
        ("[format('{0}{0}{0}', variables('big'))]", "format"),
        (
            "[base64(concat(variables('big'), variables('big')))]",
            "concat",
        ),
        (
            "[base64(concat(variables('big'), substring(variables('big'), 0, 1100000)))]",
            "base64",
        ),
        (
            "[uriComponent(replace(substring(variables('big'), 0, 1500000), 'x', ' '))]",
            "uriComponent",
        ),
        (
            "[string(createArray(replace(substring(variables('big'), 0, 1500000), 'x', '\"')))]",
            "string",
        ),
        (
            "[dataUri(concat(variables('big'), substring(variables('big'), 0, 1100000)))]",
            "dataUri",
        ),
    ] {
        let t = with_big(json!({}), json!({"o": {"type": "string", "value": expr}}));
        let e = refused(&t);
        let text = e.to_string();
        assert!(matches!(e, ArmError::Limit { .. }), "{expr}: {e:?}");
        assert!(
            text.starts_with(&format!(
                "outputs.o.value: the result of {function}() would be at least "
            )),
            "{expr}: {text}"
        );
        assert!(text.ends_with(&format!("(in '{expr}')")), "{expr}: {text}");
    }
}

#[test]
fn splitting_into_millions_of_parts_is_refused() {
    let t = with_big(
        json!({}),
        json!({"o": {"type": "int", "value": "[length(split(variables('big'), 'x'))]"}}),
    );
    assert!(refused(&t)
        .to_string()
        .starts_with("outputs.o.value: the result of split() would be at least "),);
}

#[test]
fn copying_a_large_value_over_and_over_runs_out_of_work() {
    let t = with_big(
        json!({"copy": [{"name": "outer", "count": 800, "input": property_copy("inner", json!("[empty(variables('big'))]"))}]}),
        json!({}),
    );
    let e = refused(&t);
    assert_eq!(
        e.to_string(),
        format!("variables.copy[0].input.copy[0].input: {WORK} (in '[empty(variables('big'))]')")
    );
}

#[test]
fn many_delimiters_are_work() {
    let t = with_big(
        json!({"delims": "[split(substring(variables('big'), 0, 200000), '')]"}),
        json!({"o": {"type": "int", "value": "[length(split(variables('big'), concat(createArray('y'), variables('delims'))))]"}}),
    );
    let e = refused(&t);
    assert!(e.to_string().contains("units of work"), "{e}");
}

#[test]
fn deeply_nested_values_are_refused() {
    let step = format!("{}{{}}{}", "createArray(".repeat(60), ")".repeat(60));
    let e = refused(&chain(json!(1), &step, 10));
    assert!(matches!(e, ArmError::Limit { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("variables.v3: the result of createArray() would nest at least 129 levels deep; a value may nest at most 128"),
        "{e}"
    );
}

/// Variables (or parameters) `x255` .. `x0`, declared last first so that evaluating the first
/// follows the whole chain; `x{k}` is `wrap` applied to a reference to `x{k-1}`.
fn deep_chain(kind: &str, wrap: impl Fn(&str) -> String) -> Value {
    let mut decls = serde_json::Map::new();
    for k in (1..256).rev() {
        let expr = format!("[{}]", wrap(&format!("{kind}s('x{}')", k - 1)));
        decls.insert(format!("x{k}"), json!(expr));
    }
    decls.insert("x0".into(), json!(true));
    if kind == "parameter" {
        for d in decls.values_mut() {
            *d = json!({"type": "bool", "defaultValue": d.clone()});
        }
    }
    json!({format!("{kind}s"): decls, "resources": []})
}

#[test]
fn variables_chained_deeply_cannot_overflow_the_stack() {
    // each link nests 60 if()s deep, in the branch or in the condition; or is a bare reference,
    // the path that takes the most stack per level
    let in_branch = |next: &str| format!("{}{next}{}", "if(true(), ".repeat(60), ", 0)".repeat(60));
    let in_condition = |next: &str| {
        format!(
            "{}{next}{}",
            "if(".repeat(60),
            ", true(), false())".repeat(60)
        )
    };
    let bare = |next: &str| next.to_string();
    let run = move || {
        for (kind, wrap, quoted) in [
            (
                "variable",
                &in_branch as &dyn Fn(&str) -> String,
                "[if(true(), ",
            ),
            ("variable", &in_condition, "[if(if("),
            ("parameter", &in_condition, "[if(if("),
            ("parameter", &bare, "[parameters('x"),
        ] {
            let e = refused(&deep_chain(kind, wrap));
            assert!(matches!(e, ArmError::Limit { .. }), "{e:?}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("{kind}s.x")), "{text}");
            assert!(
                text.contains(&format!(
                    ": evaluation nests more than 256 levels deep through expressions, values, \
                     variables and parameters (in '{quoted}"
                )),
                "{text}"
            );
        }
    };
    // budget::MAX_EVAL_DEPTH keeps the deepest evaluation within 1.5 MiB even unoptimized
    std::thread::Builder::new()
        .stack_size(3 * MIB / 2)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deeply_nested_expressions_are_a_syntax_error() {
    let deep = format!("[{}1{}]", "createArray(".repeat(200), ")".repeat(200));
    assert!(refused(&with_output(&deep))
        .to_string()
        .contains("the expression nests more than 64 levels deep"));
}

#[test]
fn recursive_variables_are_detected() {
    let t = json!({"variables": {"a": "[variables('b')]", "b": "[concat(variables('a'), 'x')]"}, "resources": []});
    assert_eq!(
        refused(&t).to_string(),
        "variables.a: circular reference: variable 'a' depends on itself"
    );
}

#[test]
fn union_and_intersection_of_large_arrays_are_linear() {
    let args: Vec<String> = (0..5)
        .map(|i| format!("range({}, 10000)", i * 10000))
        .collect();
    let t = json!({
        "variables": {"xs": format!("[concat({})]", args.join(", "))},
        "resources": [],
        "outputs": {
            "u": {"type": "int", "value": "[length(union(variables('xs'), variables('xs')))]"},
            "i": {"type": "int", "value": "[length(intersection(variables('xs'), variables('xs')))]"},
        },
    });
    let (out, peak, elapsed) = measured(|| deploy(&t));
    let out = out.unwrap();
    assert_eq!(out["u"], 50_000);
    assert_eq!(out["i"], 50_000);
    assert!(peak < MEMORY_CEILING, "peak {} MiB", peak / MIB);
    assert!(elapsed < TIME_CEILING, "took {elapsed:?}");
}

/// Functions whose result can be larger than their arguments, applied to earlier variables; each
/// takes and returns strings, so any chain of them is well typed.
const GROWERS: &[&str] = &[
    "concat({a}, {b})",
    "string(createArray({a}, {b}, {a}))",
    "string(union(createArray({a}), createArray({b})))",
    "string(createObject('x', {a}, 'y', {b}))",
    "replace({a}, '1', '1111')",
    "padLeft({a}, 9000, '0')",
    "format('{0}-{1}-{0}', {a}, {b})",
    "join(createArray({a}, {b}), {a})",
    "string(split({a}, ','))",
    "base64({a})",
    "uriComponent({a})",
    "dataUri({a})",
    "string(items(createObject('k', {a})))",
    "string(json(string(createArray({a}, {b}))))",
    "string(range(0, min(length({a}), 10000)))",
    "toUpper({a})",
];

/// A grower and which earlier variable is its second argument (the first is always the previous
/// variable, so chains keep growing).
fn grower() -> impl Strategy<Value = (usize, usize)> {
    (0..GROWERS.len(), any::<prop::sample::Index>()).prop_map(|(g, b)| (g, b.index(usize::MAX)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any chain of growing functions either stays within the bounds or fails with an error, in
    /// bounded memory and time; a `Limit` error is the only way past the size bound.
    #[test]
    fn random_growth_never_exceeds_the_budget(steps in prop::collection::vec(grower(), 1..40)) {
        let mut vars = serde_json::Map::new();
        vars.insert("v0".into(), json!("ab,1"));
        for (k, (g, b)) in steps.iter().enumerate() {
            let a = format!("variables('v{k}')");
            let b = format!("variables('v{}')", b % (k + 1));
            let expr = GROWERS[*g].replace("{a}", &a).replace("{b}", &b);
            vars.insert(format!("v{}", k + 1), Value::String(format!("[{expr}]")));
        }
        let last = format!("[string(variables('v{}'))]", steps.len());
        let t = json!({"variables": vars, "resources": [], "outputs": {"o": {"type": "string", "value": last}}});
        let (result, peak, elapsed) = measured(|| deploy(&t));
        prop_assert!(peak < MEMORY_CEILING, "peak {} MiB", peak / MIB);
        prop_assert!(elapsed < TIME_CEILING, "took {:?}", elapsed);
        match result {
            Ok(out) => {
                let o = out["o"].as_str().unwrap_or_default();
                prop_assert!(o.len() <= 4 * MIB, "an output of {} bytes got through", o.len());
            }
            Err(ArmError::Limit { message, .. }) => {
                prop_assert!(message.contains("at most") || message.contains("units of work") || message.contains("nests more than"), "{}", message);
            }
            Err(ArmError::Function { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
    }
}
