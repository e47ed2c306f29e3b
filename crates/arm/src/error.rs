//! Errors of the template engine. Every variant except malformed JSON names the template path of
//! the offending value, because a user fixing a template needs to know *where*, not only *what*.

use thiserror::Error;

/// Everything that can go wrong while parsing or evaluating a deployment template.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArmError {
    /// The document is not well-formed JSON (position is 1-based line:column).
    #[error("{what}: malformed JSON at line {line}, column {column}: {message}")]
    Json {
        /// What was being handled.
        what: &'static str,
        /// The line.
        line: usize,
        /// The column.
        column: usize,
        /// What is wrong, in words.
        message: String,
    },

    /// A section of the document has the wrong JSON shape (e.g. `resources` is not an array).
    #[error("{path}: {message}")]
    Structure {
        /// Where it is.
        path: String,
        /// What is wrong, in words.
        message: String,
    },

    /// A `[...]` expression string is not valid expression syntax.
    #[error("{path}: invalid expression '{expression}' at character {position}: {message}")]
    Syntax {
        /// Where it is.
        path: String,
        /// The expression as written.
        expression: String,
        /// Where in the text.
        position: usize,
        /// What is wrong, in words.
        message: String,
    },

    /// An expression calls a function the engine does not know.
    #[error("{path}: unknown function '{name}'")]
    UnknownFunction {
        /// Where it is.
        path: String,
        /// The name concerned.
        name: String,
    },

    /// A function was called with the wrong number or types of arguments, or failed on its input.
    #[error("{path}: {function}(): {message}")]
    Function {
        /// Where it is.
        path: String,
        /// The template function.
        function: String,
        /// What is wrong, in words.
        message: String,
    },

    /// `parameters('x')` or `variables('x')` names something the template does not declare.
    #[error("{path}: the template has no {kind} named '{name}'")]
    UndefinedName {
        /// Where it is.
        path: String,
        /// Which kind.
        kind: &'static str,
        /// The name concerned.
        name: String,
    },

    /// Property access (`.x`) or index access (`[i]`) does not fit the value it is applied to.
    #[error("{path}: {message}")]
    Access {
        /// Where it is.
        path: String,
        /// What is wrong, in words.
        message: String,
    },

    /// A parameter without `defaultValue` was given no value.
    #[error("{path}: required parameter has no value")]
    MissingParameter {
        /// Where it is.
        path: String,
    },

    /// A value was supplied for a parameter the template does not declare.
    #[error("{path}: the template declares no such parameter (declared: {declared})")]
    UnknownParameter {
        /// Where it is.
        path: String,
        /// What the template declares.
        declared: String,
    },

    /// A parameter (or output) value is not of the declared type.
    #[error("{path}: expected a value of type {expected}, got {actual}")]
    Type {
        /// Where it is.
        path: String,
        /// What was expected.
        expected: String,
        /// What was given.
        actual: String,
    },

    /// A parameter value is not one of its `allowedValues`.
    #[error("{path}: value {value} is not one of the allowed values [{allowed}]")]
    NotAllowed {
        /// Where it is.
        path: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },

    /// A parameter value violates `minValue`, `maxValue`, `minLength` or `maxLength`.
    #[error("{path}: {message}")]
    OutOfRange {
        /// Where it is.
        path: String,
        /// What is wrong, in words.
        message: String,
    },

    /// Variables or parameter defaults refer to each other in a circle.
    #[error("{path}: circular reference: {chain}")]
    CircularReference {
        /// Where it is.
        path: String,
        /// The chain of references.
        chain: String,
    },

    /// A `dependsOn` entry names no resource defined in the template.
    #[error("{path}: dependsOn '{target}' does not name a resource defined in the template")]
    UnresolvedDependency {
        /// Where it is.
        path: String,
        /// What it refers to.
        target: String,
    },

    /// A `dependsOn` entry matches more than one resource, so the intent is unclear.
    #[error("{path}: dependsOn '{target}' is ambiguous: it matches {matches}")]
    AmbiguousDependency {
        /// Where it is.
        path: String,
        /// What it refers to.
        target: String,
        /// What matched.
        matches: String,
    },

    /// The `dependsOn` graph has a cycle, so no deployment order exists.
    #[error("circular dependency between resources: {cycle}")]
    DependencyCycle {
        /// The resources in the cycle.
        cycle: String,
    },

    /// Two resources of the template resolve to the same resource id.
    #[error("{path}: resource '{id}' is defined multiple times in the template (also at {other})")]
    DuplicateResource {
        /// Where it is.
        path: String,
        /// The identifier concerned.
        id: String,
        /// The other one.
        other: String,
    },

    /// `reference()` names a resource the resolver knows nothing about (not deployed yet or absent).
    #[error("{path}: reference(): resource '{resource_id}' is not available (not deployed yet?)")]
    ReferenceUnavailable {
        /// Where it is.
        path: String,
        /// The resource id referred to.
        resource_id: String,
    },

    /// A function was used where Azure does not allow it (e.g. `reference()` in variables).
    #[error("{path}: the function '{function}' is not allowed in {place}")]
    NotAllowedHere {
        /// Where it is.
        path: String,
        /// The template function.
        function: String,
        /// Where in the config file.
        place: &'static str,
    },

    /// Evaluation would exceed a bound on value size, value nesting, recursion or total work.
    #[error("{path}: {message}{}", in_expression(.expression))]
    Limit {
        /// Where it is.
        path: String,
        /// The expression as written.
        expression: String,
        /// What is wrong, in words.
        message: String,
    },
}

/// How much of the expression a [`ArmError::Limit`] quotes: enough to recognise it.
const QUOTED_CHARS: usize = 200;

/// ` in '[expression]'` for the error text, cut to [`QUOTED_CHARS`]; nothing when there is no
/// expression (a copy loop, a whole resource).
fn in_expression(expression: &str) -> String {
    if expression.is_empty() {
        return String::new();
    }
    if expression.chars().count() > QUOTED_CHARS {
        let cut: String = expression.chars().take(QUOTED_CHARS - 3).collect();
        format!(" (in '{cut}...')")
    } else {
        format!(" (in '{expression}')")
    }
}

impl ArmError {
    /// The template path this error points at (empty for malformed JSON and dependency cycles).
    pub fn path(&self) -> &str {
        match self {
            ArmError::Json { .. } | ArmError::DependencyCycle { .. } => "",
            ArmError::Structure { path, .. }
            | ArmError::Syntax { path, .. }
            | ArmError::UnknownFunction { path, .. }
            | ArmError::Function { path, .. }
            | ArmError::UndefinedName { path, .. }
            | ArmError::Access { path, .. }
            | ArmError::MissingParameter { path }
            | ArmError::UnknownParameter { path, .. }
            | ArmError::Type { path, .. }
            | ArmError::NotAllowed { path, .. }
            | ArmError::OutOfRange { path, .. }
            | ArmError::CircularReference { path, .. }
            | ArmError::UnresolvedDependency { path, .. }
            | ArmError::AmbiguousDependency { path, .. }
            | ArmError::DuplicateResource { path, .. }
            | ArmError::ReferenceUnavailable { path, .. }
            | ArmError::NotAllowedHere { path, .. }
            | ArmError::Limit { path, .. } => path,
        }
    }

    /// Replaces every occurrence of a secret (securestring / secureObject value) in the error's
    /// text, so secure parameter values can never leak through an error message.
    pub(crate) fn redact(self, secrets: &[String]) -> ArmError {
        if secrets.is_empty() {
            return self;
        }
        let r = |s: String| crate::secret::redact_str(&s, secrets);
        match self {
            ArmError::Json {
                what,
                line,
                column,
                message,
            } => ArmError::Json {
                what,
                line,
                column,
                message: r(message),
            },
            ArmError::Structure { path, message } => ArmError::Structure {
                path: r(path),
                message: r(message),
            },
            ArmError::Syntax {
                path,
                expression,
                position,
                message,
            } => ArmError::Syntax {
                path: r(path),
                expression: r(expression),
                position,
                message: r(message),
            },
            ArmError::UnknownFunction { path, name } => ArmError::UnknownFunction {
                path: r(path),
                name,
            },
            ArmError::Function {
                path,
                function,
                message,
            } => ArmError::Function {
                path: r(path),
                function,
                message: r(message),
            },
            ArmError::UndefinedName { path, kind, name } => ArmError::UndefinedName {
                path: r(path),
                kind,
                name: r(name),
            },
            ArmError::Access { path, message } => ArmError::Access {
                path: r(path),
                message: r(message),
            },
            ArmError::MissingParameter { path } => ArmError::MissingParameter { path },
            ArmError::UnknownParameter { path, declared } => {
                ArmError::UnknownParameter { path, declared }
            }
            ArmError::Type {
                path,
                expected,
                actual,
            } => ArmError::Type {
                path,
                expected,
                actual: r(actual),
            },
            ArmError::NotAllowed {
                path,
                value,
                allowed,
            } => ArmError::NotAllowed {
                path,
                value: r(value),
                allowed: r(allowed),
            },
            ArmError::OutOfRange { path, message } => ArmError::OutOfRange {
                path,
                message: r(message),
            },
            ArmError::CircularReference { path, chain } => ArmError::CircularReference {
                path: r(path),
                chain,
            },
            ArmError::UnresolvedDependency { path, target } => ArmError::UnresolvedDependency {
                path: r(path),
                target: r(target),
            },
            ArmError::AmbiguousDependency {
                path,
                target,
                matches,
            } => ArmError::AmbiguousDependency {
                path: r(path),
                target: r(target),
                matches: r(matches),
            },
            ArmError::DependencyCycle { cycle } => ArmError::DependencyCycle { cycle: r(cycle) },
            ArmError::DuplicateResource { path, id, other } => ArmError::DuplicateResource {
                path: r(path),
                id: r(id),
                other: r(other),
            },
            ArmError::ReferenceUnavailable { path, resource_id } => {
                ArmError::ReferenceUnavailable {
                    path: r(path),
                    resource_id: r(resource_id),
                }
            }
            ArmError::NotAllowedHere {
                path,
                function,
                place,
            } => ArmError::NotAllowedHere {
                path: r(path),
                function,
                place,
            },
            ArmError::Limit {
                path,
                expression,
                message,
            } => ArmError::Limit {
                path: r(path),
                expression: r(expression),
                message: r(message),
            },
        }
    }
}
