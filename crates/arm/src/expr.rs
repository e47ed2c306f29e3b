//! The ARM expression language: `"[func('a', 1).prop[0]]"` strings. Parsing is separate from
//! evaluation so syntax errors are reported with a character position before anything runs.

/// One node of a parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A `'quoted'` string literal (`''` inside stands for one quote).
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A function call; `name` as written, `pos` its 1-based character position.
    Call {
        name: String,
        args: Vec<Expr>,
        pos: usize,
    },
    /// `.name` member access.
    Prop {
        base: Box<Expr>,
        name: String,
        pos: usize,
    },
    /// `[index]` element access.
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
        pos: usize,
    },
}

/// How a JSON string value is to be read.
#[derive(Debug, PartialEq)]
pub(crate) enum StringForm<'a> {
    /// A plain literal (including `[[...` escapes, already unescaped).
    Literal(std::borrow::Cow<'a, str>),
    /// An expression; the text between the outer brackets.
    Expression(&'a str),
}

/// Classifies a template string: `[...]` is an expression, `[[...]` an escaped literal (one
/// leading bracket removed); anything else, `[[abc` included, is a plain literal.
pub(crate) fn classify(s: &str) -> StringForm<'_> {
    let bracketed = s.len() >= 2 && s.starts_with('[') && s.ends_with(']');
    if bracketed && s.starts_with("[[") {
        StringForm::Literal(std::borrow::Cow::Owned(s[1..].to_string()))
    } else if bracketed {
        StringForm::Expression(&s[1..s.len() - 1])
    } else {
        StringForm::Literal(std::borrow::Cow::Borrowed(s))
    }
}

/// A syntax error: 1-based character position within the whole `[...]` string, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub position: usize,
    pub message: String,
}

/// Parses the inside of an expression string (without the outer brackets).
pub(crate) fn parse(inner: &str) -> Result<Expr, SyntaxError> {
    let mut p = Parser {
        chars: inner.chars().collect(),
        i: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.err("empty expression"));
    }
    let e = p.expr()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.err(&format!(
            "unexpected '{}' after the end of the expression",
            p.chars[p.i]
        )));
    }
    Ok(e)
}

/// How deeply calls and index expressions may nest; deeper input is refused, not overflowed.
/// Azure documents no limit (only 24,576 characters per expression); real expressions nest fewer
/// than ten levels, and evaluation has its own recursion bound (`budget::MAX_EVAL_DEPTH`).
const MAX_DEPTH: usize = 64;

struct Parser {
    chars: Vec<char>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.i >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }
    /// Position in the original string: +1 for the opening '[' and +1 for 1-based counting.
    fn pos(&self) -> usize {
        self.i + 2
    }
    fn err(&self, msg: &str) -> SyntaxError {
        SyntaxError {
            position: self.pos(),
            message: msg.to_string(),
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: char, what: &str) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            match self.peek() {
                Some(found) => Err(self.err(&format!("expected {what}, found '{found}'"))),
                None => Err(self.err(&format!("expected {what}, found the end of the expression"))),
            }
        }
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(&format!(
                "the expression nests more than {MAX_DEPTH} levels deep"
            )));
        }
        let e = self.expr_inner();
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        loop {
            self.skip_ws();
            match self.peek() {
                Some('.') => {
                    let pos = self.pos();
                    self.i += 1;
                    self.skip_ws();
                    let name = self
                        .ident()
                        .ok_or_else(|| self.err("expected a property name after '.'"))?;
                    e = Expr::Prop {
                        base: Box::new(e),
                        name,
                        pos,
                    };
                }
                Some('[') => {
                    let pos = self.pos();
                    self.i += 1;
                    self.skip_ws();
                    let index = self.expr()?;
                    self.expect(']', "']'")?;
                    e = Expr::Index {
                        base: Box::new(e),
                        index: Box::new(index),
                        pos,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '_' || c == '$') {
            self.i += 1;
        }
        if self.i == start {
            None
        } else {
            Some(self.chars[start..self.i].iter().collect())
        }
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        self.skip_ws();
        let pos = self.pos();
        match self.peek() {
            None => Err(self.err("expected a value, found the end of the expression")),
            Some('\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let mut name = self.ident().unwrap_or_default();
                // user-defined functions are written namespace.name(...)
                if self.peek() == Some('.') {
                    let save = self.i;
                    self.i += 1;
                    if let Some(member) = self.ident() {
                        self.skip_ws();
                        if self.peek() == Some('(') {
                            name = format!("{name}.{member}");
                        } else {
                            self.i = save;
                        }
                    } else {
                        self.i = save;
                    }
                }
                self.skip_ws();
                if self.peek() != Some('(') {
                    return Err(SyntaxError {
                        position: pos,
                        message: format!("'{name}' is not a function call (expected '(' after it)"),
                    });
                }
                self.i += 1;
                let mut args = Vec::new();
                self.skip_ws();
                if self.peek() == Some(')') {
                    self.i += 1;
                    return Ok(Expr::Call { name, args, pos });
                }
                loop {
                    args.push(self.expr()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some(')') => {
                            self.i += 1;
                            return Ok(Expr::Call { name, args, pos });
                        }
                        Some(c) => {
                            return Err(self.err(&format!(
                                "expected ',' or ')' in the arguments of {name}, found '{c}'"
                            )))
                        }
                        None => {
                            return Err(
                                self.err(&format!("missing ')' to close the arguments of {name}"))
                            )
                        }
                    }
                }
            }
            Some(c) => Err(self.err(&format!("unexpected '{c}'"))),
        }
    }

    fn string(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.pos();
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(SyntaxError {
                        position: start,
                        message: "string literal is not terminated".into(),
                    })
                }
                Some('\'') => {
                    if self.chars.get(self.i + 1) == Some(&'\'') {
                        s.push('\'');
                        self.i += 2;
                    } else {
                        self.i += 1;
                        return Ok(Expr::Str(s));
                    }
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.i;
        let pos = self.pos();
        if matches!(self.peek(), Some('-') | Some('+')) {
            self.i += 1;
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.peek() == Some('.')
            && matches!(self.chars.get(self.i + 1), Some(c) if c.is_ascii_digit())
        {
            return Err(SyntaxError {
                position: pos,
                message: "floating point literals are not supported".into(),
            });
        }
        let text: String = self.chars[start..self.i].iter().collect();
        text.parse::<i64>().map(Expr::Int).map_err(|_| SyntaxError {
            position: pos,
            message: format!("'{text}' is not a valid integer"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Expr>, pos: usize) -> Expr {
        Expr::Call {
            name: name.into(),
            args,
            pos,
        }
    }

    #[test]
    fn classify_forms() {
        assert_eq!(classify("abc"), StringForm::Literal("abc".into()));
        assert_eq!(classify("[[abc]"), StringForm::Literal("[abc]".into()));
        assert_eq!(classify("[f()]"), StringForm::Expression("f()"));
        assert_eq!(classify("[abc"), StringForm::Literal("[abc".into()));
        assert_eq!(classify("["), StringForm::Literal("[".into()));
        assert_eq!(classify("[[abc"), StringForm::Literal("[[abc".into()));
        assert_eq!(classify("[]"), StringForm::Expression(""));
    }

    #[test]
    fn nested_calls_literals_and_access() {
        let e = parse("concat('it''s', -3, f().a[0])").unwrap();
        let inner = Expr::Index {
            base: Box::new(Expr::Prop {
                base: Box::new(call("f", vec![], 22)),
                name: "a".into(),
                pos: 25,
            }),
            index: Box::new(Expr::Int(0)),
            pos: 27,
        };
        assert_eq!(
            e,
            call(
                "concat",
                vec![Expr::Str("it's".into()), Expr::Int(-3), inner],
                2
            )
        );
    }

    #[test]
    fn whitespace_is_allowed() {
        assert_eq!(
            parse("  f ( 1 , 'a' )  ").unwrap(),
            call("f", vec![Expr::Int(1), Expr::Str("a".into())], 4)
        );
    }

    #[test]
    fn namespaced_function_name() {
        assert_eq!(parse("ns.fn()").unwrap(), call("ns.fn", vec![], 2));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("concat('a'").unwrap_err();
        assert!(e.message.contains("missing ')'"), "{e:?}");
        let e = parse("concat('a)").unwrap_err();
        assert_eq!(e.position, 9);
        assert!(e.message.contains("not terminated"));
        let e = parse("foo").unwrap_err();
        assert!(e.message.contains("not a function call"));
        let e = parse("f() g()").unwrap_err();
        assert_eq!(e.position, 6);
        assert!(parse("").is_err());
        assert!(parse("f(1.5)").unwrap_err().message.contains("floating"));
        assert!(parse("f(1,)").is_err());
        let deep = format!("{}1{}", "f(".repeat(100), ")".repeat(100));
        assert!(parse(&deep)
            .unwrap_err()
            .message
            .contains("more than 64 levels"));
        let ok = format!("{}1{}", "f(".repeat(60), ")".repeat(60));
        assert!(parse(&ok).is_ok());
    }
}
