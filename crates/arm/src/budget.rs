//! Bounds on evaluation, so that a small template cannot exhaust memory, CPU or the stack: forty
//! variables that each double the previous one, or three nested copy loops of 800, would
//! otherwise allocate until the process dies. Every value is measured as it is built (its size as
//! compact JSON and its nesting depth), functions whose result can outgrow their arguments check
//! the size before they allocate, and each evaluation counts its work and its recursion depth.
//! Where Azure documents a limit the bound is Azure's; elsewhere it is a generous engine bound
//! that no real template comes near.

use crate::template::limits;
use serde_json::Value;
use std::cell::Cell;

/// The largest value, in bytes of compact JSON. Azure limits a template to 4 MB "after it has been
/// expanded for resource definitions that use loops ... [including] the resolved values for
/// variables and parameters" ("Resolve errors for job size exceeded", Microsoft Learn), so no
/// single value of a deployable template can be larger.
pub(crate) const MAX_VALUE_BYTES: usize = limits::TEMPLATE_BYTES;

/// The deepest nesting of arrays and objects in a value. Azure publishes no limit; serde_json,
/// which reads every template, parameter file and `json()` argument, refuses documents nested
/// deeper than 128 levels, so a template cannot write a deeper value, and a deeper computed value
/// could not be read back from a deployment record.
pub(crate) const MAX_VALUE_DEPTH: usize = 128;

/// How deeply evaluation may recurse: expression nodes, the JSON levels of the value being
/// evaluated, and the variables, parameters and user functions it follows. Azure publishes no
/// limit. Expressions nest at most 64 deep and template JSON at most 128, but variables chained
/// through each other multiply that (256 variables × 64 levels) until the stack overflows; real
/// templates stay below 50. An unoptimized build takes at most about 3 KiB of stack per level
/// (see [`LINK_LEVELS`]), and parsing the deepest expression at the bottom another 230 KiB, so
/// the deepest evaluation stays near 1 MiB: less than the 2 MiB a spawned (or test) thread gets,
/// an eighth of a main thread's 8 MiB; an optimized build takes a fraction of that.
pub(crate) const MAX_EVAL_DEPTH: usize = 256;

/// How many levels following a variable or parameter counts as, besides the levels of its value:
/// the functions that look it up and resolve it take about twice the stack of an expression
/// level.
const LINK_LEVELS: usize = 2;

/// The work one evaluation (binding a deployment, expanding its resources, evaluating one
/// resource's body, evaluating the outputs) may do. A unit is about a byte of memory allocated:
/// every value built or copied costs its size in memory ([`Size::cost`]), parsing an expression
/// four units per character, and each step (expression node, JSON node, copy iteration, expanded
/// resource) the size of one value. Since everything an evaluation keeps was charged, this bounds
/// its memory as well as its time. Azure publishes no such limit; the public templates need at
/// most 17 thousand units per evaluation, and copying 4 MB of typical template JSON (Azure's
/// whole expanded template) costs roughly 20 million. 64 Mi units take about a second in an
/// unoptimized build.
pub(crate) const MAX_WORK: u64 = 64 << 20;

/// What each node of a value costs in memory: one `serde_json::Value`.
pub(crate) const NODE_BYTES: usize = std::mem::size_of::<Value>();

/// Which bound an evaluation ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// A value built by `what` would be at least `bytes` bytes of JSON.
    Size { what: String, bytes: usize },
    /// A value built by `what` would nest at least `depth` levels deep.
    Depth { what: String, depth: usize },
    /// The evaluation did more than [`MAX_WORK`] units of work.
    Work,
    /// The evaluation recursed more than [`MAX_EVAL_DEPTH`] levels.
    Nesting,
}

impl Exceeded {
    /// The error text: what was exceeded and where the bound comes from.
    pub(crate) fn message(&self) -> String {
        match self {
            Exceeded::Size { what, bytes } => format!(
                "{what} would be at least {bytes} bytes of JSON; a value may have at most \
                 {MAX_VALUE_BYTES} (Azure's 4 MB limit on the expanded template)"
            ),
            Exceeded::Depth { what, depth } => format!(
                "{what} would nest at least {depth} levels deep; a value may nest at most \
                 {MAX_VALUE_DEPTH} (the deepest JSON a template can hold)"
            ),
            Exceeded::Work => format!(
                "evaluation stopped after {MAX_WORK} units of work (about a byte of memory each, \
                 for the values built and copied, the expressions parsed and the steps taken); \
                 a template needing more cannot be deployed"
            ),
            Exceeded::Nesting => format!(
                "evaluation nests more than {MAX_EVAL_DEPTH} levels deep through expressions, \
                 values, variables and parameters"
            ),
        }
    }
}

/// A value's size as compact JSON, its nesting depth (0 for scalars, 1 for `[1]`) and its
/// number of nodes (every array, object and scalar in it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Size {
    /// Bytes of compact JSON, as `serde_json::to_string` writes it.
    pub bytes: usize,
    /// Levels of arrays and objects.
    pub depth: usize,
    /// Arrays, objects and scalars, the value itself included, plus one per object member for
    /// its entry (name and hash) in the object's map.
    pub nodes: usize,
}

impl Size {
    /// About the memory the value takes: its text plus one `Value` per node. What building or
    /// copying it costs in work units.
    pub(crate) fn cost(self) -> usize {
        self.bytes
            .saturating_add(self.nodes.saturating_mul(NODE_BYTES))
    }

    /// Checks both bounds; `what` names what built the value, for the error.
    pub(crate) fn check(self, what: impl Fn() -> String) -> Result<Size, Exceeded> {
        if self.bytes > MAX_VALUE_BYTES {
            return Err(Exceeded::Size {
                what: what(),
                bytes: self.bytes,
            });
        }
        if self.depth > MAX_VALUE_DEPTH {
            return Err(Exceeded::Depth {
                what: what(),
                depth: self.depth,
            });
        }
        Ok(self)
    }
}

/// Measures `v`. Descends at most one level past [`MAX_VALUE_DEPTH`] (a deeper value is reported as
/// [`MAX_VALUE_DEPTH`] + 2 deep, and its size counts what was measured), so measuring cannot
/// overflow the stack whatever the value.
pub(crate) fn measure(v: &Value) -> Size {
    measure_at(v, 0)
}

fn measure_at(v: &Value, level: usize) -> Size {
    let scalar = |bytes| Size {
        bytes,
        depth: 0,
        nodes: 1,
    };
    if level > MAX_VALUE_DEPTH && (v.is_array() || v.is_object()) {
        return Size {
            bytes: 2,
            depth: 1,
            nodes: 1,
        };
    }
    match v {
        Value::Null => scalar(4),
        Value::Bool(b) => scalar(if *b { 4 } else { 5 }),
        Value::Number(n) => scalar(number_len(n)),
        Value::String(s) => scalar(json_str_len(s)),
        Value::Array(a) => {
            let mut size = Size {
                bytes: 2 + a.len().saturating_sub(1),
                depth: 0,
                nodes: 1,
            };
            for x in a {
                size.add(measure_at(x, level + 1), 0);
            }
            size.depth += 1;
            size
        }
        Value::Object(m) => {
            let mut size = Size {
                bytes: 2 + m.len().saturating_sub(1),
                depth: 0,
                nodes: 1,
            };
            for (k, x) in m {
                size.add(measure_at(x, level + 1), json_str_len(k) + 1);
                size.nodes += 1;
            }
            size.depth += 1;
            size
        }
    }
}

impl Size {
    /// Adds a member of a container: its size plus `extra` bytes (an object member's name).
    pub(crate) fn add(&mut self, member: Size, extra: usize) {
        self.bytes = self
            .bytes
            .saturating_add(member.bytes)
            .saturating_add(extra);
        self.depth = self.depth.max(member.depth);
        self.nodes = self.nodes.saturating_add(member.nodes);
    }
}

/// Bytes of `s` as a JSON string literal, quotes and escapes included (serde_json's escaping).
pub(crate) fn json_str_len(s: &str) -> usize {
    let escapes: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() + 2 + escapes
}

/// Bytes of a JSON number, without formatting integers into a buffer.
fn number_len(n: &serde_json::Number) -> usize {
    fn digits(mut x: u64) -> usize {
        let mut d = 1;
        while x >= 10 {
            x /= 10;
            d += 1;
        }
        d
    }
    if let Some(u) = n.as_u64() {
        digits(u)
    } else if let Some(i) = n.as_i64() {
        1 + digits(i.unsigned_abs())
    } else {
        n.to_string().len()
    }
}

/// The work and recursion counters of one evaluation. Not shared between threads: each entry point
/// of the engine makes its own.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    work: Cell<u64>,
    depth: Cell<usize>,
}

impl Budget {
    /// A fresh budget for one evaluation.
    pub(crate) fn new() -> Budget {
        Budget::default()
    }

    /// Spends one step: the size of one value.
    pub(crate) fn step(&self) -> Result<(), Exceeded> {
        self.charge(NODE_BYTES)
    }

    /// Spends `units` of work; fails once the total passes [`MAX_WORK`].
    pub(crate) fn charge(&self, units: usize) -> Result<(), Exceeded> {
        let total = self.work.get().saturating_add(units as u64);
        self.work.set(total);
        if total > MAX_WORK {
            Err(Exceeded::Work)
        } else {
            Ok(())
        }
    }

    /// Enters one level of recursion, left again when the guard drops; fails past
    /// [`MAX_EVAL_DEPTH`].
    pub(crate) fn enter(&self) -> Result<DepthGuard<'_>, Exceeded> {
        self.enter_levels(1)
    }

    /// Follows a variable or parameter to evaluate it: [`LINK_LEVELS`] levels.
    pub(crate) fn enter_link(&self) -> Result<DepthGuard<'_>, Exceeded> {
        self.enter_levels(LINK_LEVELS)
    }

    fn enter_levels(&self, levels: usize) -> Result<DepthGuard<'_>, Exceeded> {
        let d = self.depth.get() + levels;
        if d > MAX_EVAL_DEPTH {
            return Err(Exceeded::Nesting);
        }
        self.depth.set(d);
        Ok(DepthGuard {
            budget: self,
            levels,
        })
    }
}

/// Levels of evaluation recursion; leaving the scope leaves them.
pub(crate) struct DepthGuard<'a> {
    budget: &'a Budget,
    levels: usize,
}

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.budget.depth.set(self.budget.depth.get() - self.levels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn measure_matches_serde_json() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-12345),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!("a\"b\\c\n\u{1}\u{7f}é"),
            json!([]),
            json!({}),
            json!([1, [2, {"k\"": [null, "x"]}], {"a": {}, "b": []}]),
        ] {
            assert_eq!(measure(&v).bytes, v.to_string().len(), "{v}");
        }
        assert_eq!(measure(&json!([[1], {"a": [[]]}])).depth, 4);
        assert_eq!(measure(&json!([[1], {"a": [[]]}])).nodes, 7);
        assert_eq!(measure(&json!("x")).depth, 0);
    }

    #[test]
    fn measuring_a_deep_value_stops_past_the_bound() {
        let mut v = json!(1);
        for _ in 0..10_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(measure(&v).depth, MAX_VALUE_DEPTH + 2);
        v = json!([[[[[[[[[[1]]]]]]]]]]);
        for _ in 0..MAX_VALUE_DEPTH - 9 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(
            measure(&v).depth,
            MAX_VALUE_DEPTH + 1,
            "exact just past the bound"
        );
        // dropping a value this deep recurses too; take it apart level by level
        while let Value::Array(mut a) = v {
            v = a.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn budget_counts_work_and_depth() {
        let b = Budget::new();
        assert!(b.charge(MAX_WORK as usize).is_ok());
        assert_eq!(b.charge(1), Err(Exceeded::Work));
        let b = Budget::new();
        let mut guards = Vec::new();
        for _ in 0..MAX_EVAL_DEPTH {
            guards.push(b.enter().unwrap());
        }
        assert!(matches!(b.enter(), Err(Exceeded::Nesting)));
        guards.pop();
        assert!(b.enter().is_ok());
    }
}
