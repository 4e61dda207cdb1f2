//! A condition taken apart: the value of each of its sub-expressions for one account,
//! for `keel explain` ("`account.health.score < 60` → `72.4 < 60` → false").
//!
//! The compiled Rhai AST is walked (rhai's `internals`): `&&`/`||` chains, `!`, operators
//! (comparisons, arithmetic) and function calls are taken apart; anything else (a
//! property path, a constant, a method call) is a leaf. Each node is evaluated as its own
//! small AST, built from the node itself and the expression's function library, by the
//! same engine and in the same account scope as the whole expression — so every value
//! shown is Rhai's own, and Rhai's semantics are never re-implemented here. The only
//! rule applied by hand is short-circuiting: after a `false` operand of `&&` (a `true` of
//! `||`), or one that is neither, the operands after it are shown as not evaluated,
//! because Rhai does not evaluate them.
//!
//! Invariants:
//! - Reading only: evaluating an expression's parts has no effect on the scope (scripts
//!   see `account` as a constant) or the account.
//! - Bounded: at most [`MAX_PARTS`] nodes, [`MAX_DEPTH`] levels; values are cut to a
//!   bounded size ([`bounded`]), long strings and lists ending in `…`.
//! - A script of statements (`let x = …; x > 1`) is not taken apart: its parts would
//!   read variables only the whole defines. Its result alone is shown.
//! - Source spans come from the AST's positions (each node's first character) and the
//!   operators between siblings; the text is trimmed of the operator and of brackets
//!   that belong to the enclosing expression. Only the displayed text depends on that:
//!   the value is always the node's.

use rhai::{Dynamic, Expr, Position, Stmt, AST};
use serde::{Deserialize, Serialize};

use super::render::one_line;
use super::script::{AccountScope, Expression, ScriptEngine};

/// Nodes shown for one expression, at most.
pub const MAX_PARTS: usize = 64;
/// Levels of nesting shown, at most.
pub const MAX_DEPTH: usize = 8;
/// Characters of a string value shown before `…`.
pub const MAX_TEXT: usize = 80;
/// Items of a list (or keys of a map) shown before `…`.
pub const MAX_ITEMS: usize = 10;

/// One sub-expression and what it came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The sub-expression as written.
    pub source: String,
    /// The sub-expression with the values of its operands in their place (`72.4 < 60`,
    /// `days_until("2027-02-20")`), for an operator or a function call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_values: Option<String>,
    pub outcome: Outcome,
    /// Its operands that are not constants, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
}

/// What a sub-expression came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// A value (bounded, see [`bounded`]).
    Value { value: serde_json::Value },
    /// `()`: a value it reads is missing — Keel's "unknown".
    Unknown,
    /// Skipped by `&&`/`||`, as Rhai skips it.
    NotEvaluated { why: String },
    /// Rhai refused it (a type mismatch, a limit): its message.
    Error { error: String },
}

impl Outcome {
    /// The outcome in a few words: `false`, `72.4`, `"smb"`, `unknown`, `not evaluated`.
    pub fn text(&self) -> String {
        match self {
            Outcome::Value { value } => value.to_string(),
            Outcome::Unknown => "unknown (missing value)".into(),
            Outcome::NotEvaluated { .. } => "not evaluated".into(),
            Outcome::Error { error } => format!("error: {error}"),
        }
    }

    /// The value as an operand inside `with_values`.
    fn operand(&self) -> String {
        match self {
            // A map (the account, a rule's argument) is its own part's business.
            Outcome::Value { value: serde_json::Value::Object(m) } if !m.is_empty() => "{…}".into(),
            Outcome::Value { value } => value.to_string(),
            Outcome::Unknown => "()".into(),
            Outcome::NotEvaluated { .. } => "…".into(),
            Outcome::Error { .. } => "error".into(),
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Outcome::Value { value } => value.as_bool(),
            _ => None,
        }
    }
}

impl Expression {
    /// The expression taken apart for the account in `scope`, each part evaluated by
    /// `engine` in that scope.
    pub fn explain(&self, engine: &ScriptEngine, scope: &mut AccountScope) -> Part {
        let source = self.source();
        let whole = (0, source.trim_end().trim_end_matches(';').trim_end().len());
        let root = match self.ast().statements() {
            [Stmt::Expr(e)] => Some(e.as_ref().clone()),
            [Stmt::FnCall(call, pos)] => Some(Expr::FnCall(call.clone(), *pos)),
            _ => None,
        };
        let Some(root) = root else {
            let outcome = outcome(self.run(engine, scope, self.ast()));
            return Part { source: source.trim().to_string(), with_values: None, outcome, parts: Vec::new() };
        };
        let mut walk = Walk { expr: self, engine, scope, nodes: 0, lines: line_starts(source) };
        walk.part(&root, whole, 0)
    }
}

struct Walk<'a> {
    expr: &'a Expression,
    engine: &'a ScriptEngine,
    scope: &'a mut AccountScope,
    nodes: usize,
    /// Byte offset of each line's start in the source.
    lines: Vec<usize>,
}

impl Walk<'_> {
    fn part(&mut self, node: &Expr, span: (usize, usize), depth: usize) -> Part {
        self.nodes += 1;
        let source = self.text(span);
        let outcome = self.eval(node);
        let mut part = Part { source, with_values: None, outcome, parts: Vec::new() };
        if depth >= MAX_DEPTH || self.nodes >= MAX_PARTS {
            return part;
        }
        match node {
            Expr::And(operands, _) | Expr::Or(operands, _) => {
                let and = matches!(node, Expr::And(..));
                let (op, stop) = if and { ("&&", false) } else { ("||", true) };
                let spans = self.operand_spans(operands, span, op);
                let mut stopped: Option<String> = None;
                for (operand, sub) in operands.iter().zip(spans) {
                    if let Some(why) = &stopped {
                        part.parts.push(Part {
                            source: self.text(sub),
                            with_values: None,
                            outcome: Outcome::NotEvaluated { why: why.clone() },
                            parts: Vec::new(),
                        });
                        continue;
                    }
                    let p = self.part(operand, sub, depth + 1);
                    stopped = match p.outcome.as_bool() {
                        Some(b) if b == stop => Some(format!("`{op}` stops at the first {stop}")),
                        Some(_) => None,
                        None => Some(format!("`{op}` stops at an operand that is neither true nor false")),
                    };
                    part.parts.push(p);
                }
            }
            Expr::FnCall(call, _) if !call.args.is_empty() => {
                let args: Vec<&Expr> = call.args.iter().collect();
                let name = call.name.as_str();
                let spans = if call.is_operator_call() && args.len() == 2 {
                    // `lhs op rhs`: the operator's position splits them.
                    let op_at = self.offset(node.position()).unwrap_or(span.0).clamp(span.0, span.1);
                    let rhs_at = self.start(args[1]).unwrap_or(op_at).clamp(op_at, span.1);
                    vec![(span.0, op_at), (rhs_at, span.1)]
                } else {
                    self.call_spans(&args, span)
                };
                let mut values = Vec::new();
                for (arg, sub) in args.iter().zip(spans) {
                    let p = self.part(arg, sub, depth + 1);
                    values.push(p.outcome.operand());
                    if !is_constant(arg) {
                        part.parts.push(p);
                    }
                }
                part.with_values = Some(match (call.is_operator_call(), values.as_slice()) {
                    (true, [one]) => format!("{name}{one}"),
                    (true, [lhs, rhs]) => format!("{lhs} {name} {rhs}"),
                    _ => format!("{name}({})", values.join(", ")),
                });
                // A call whose only operand is a path shows its value once, in
                // `with_values`; a part for the path would repeat it.
                if part.parts.len() == 1 && part.parts[0].parts.is_empty() && !call.is_operator_call() {
                    part.parts.clear();
                }
            }
            _ => {}
        }
        part
    }

    /// The node evaluated alone, as its own AST with the expression's functions.
    fn eval(&mut self, node: &Expr) -> Outcome {
        let ast = AST::new([Stmt::Expr(Box::new(node.clone()))], self.expr.ast().shared_lib().clone());
        outcome(self.expr.run(self.engine, self.scope, &ast))
    }

    /// The spans of an `&&`/`||` chain's operands: each from its first character to the
    /// next one's, less the operator.
    fn operand_spans(&self, operands: &[Expr], span: (usize, usize), op: &str) -> Vec<(usize, usize)> {
        let starts: Vec<usize> =
            operands.iter().map(|o| self.start(o).unwrap_or(span.0).clamp(span.0, span.1)).collect();
        (0..operands.len())
            .map(|i| {
                let end = starts.get(i + 1).copied().unwrap_or(span.1).max(starts[i]);
                self.trim_operator((starts[i], end), op)
            })
            .collect()
    }

    /// The spans of a function call's arguments: from each one's first character to the
    /// next argument's in the source (less the comma), the last to the closing bracket.
    /// Source order, not argument order: `x in list` is `contains(list, x)`.
    fn call_spans(&self, args: &[&Expr], span: (usize, usize)) -> Vec<(usize, usize)> {
        let starts: Vec<usize> = args.iter().map(|a| self.start(a).unwrap_or(span.0).clamp(span.0, span.1)).collect();
        starts
            .iter()
            .map(|&start| {
                let end = starts.iter().copied().filter(|&s| s > start).min().unwrap_or(span.1);
                let (start, end) = self.trim_operator((start, end), ",");
                self.trim_operator((start, end), " in")
            })
            .collect()
    }

    /// `span` without the trailing `op` and surrounding blanks.
    fn trim_operator(&self, (start, end): (usize, usize), op: &str) -> (usize, usize) {
        let text = self.expr.source().get(start..end).unwrap_or("");
        let text = text.trim_end();
        let text = text.strip_suffix(op).unwrap_or(text);
        (start, start + text.len())
    }

    /// The source text of a span, trimmed of blanks and of brackets that open or close
    /// outside it, then of a pair that encloses all of it.
    fn text(&self, (start, end): (usize, usize)) -> String {
        let source = self.expr.source();
        let mut text = source.get(start..end).unwrap_or("").trim();
        loop {
            let before = text;
            // Unmatched closers at the end, openers at the end, closers at the start.
            let mut depth: i64 = 0;
            let mut cut_end = text.len();
            for (i, c) in text.char_indices() {
                match c {
                    '(' | '[' => depth += 1,
                    ')' | ']' => {
                        depth -= 1;
                        if depth < 0 {
                            cut_end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            text = text[..cut_end].trim();
            text = text.trim_end_matches(['(', '[', ',']).trim_end();
            if text.starts_with('(') && text.ends_with(')') && encloses(text) {
                text = text[1..text.len() - 1].trim();
            }
            if text == before {
                break;
            }
        }
        one_line(text)
    }

    /// A node's first character: the smallest position in it.
    fn start(&self, node: &Expr) -> Option<usize> {
        let mut least: Option<usize> = None;
        node.walk(&mut vec![], &mut |path| {
            if let Some(rhai::ASTNode::Expr(e)) = path.last() {
                if let Some(at) = self.offset(e.position()) {
                    least = Some(least.map_or(at, |l| l.min(at)));
                }
            }
            true
        });
        least
    }

    /// The byte offset of a Rhai position (line and column, in characters).
    fn offset(&self, pos: Position) -> Option<usize> {
        let (line, column) = (pos.line()?, pos.position()?);
        let source = self.expr.source();
        let line_start = *self.lines.get(line.checked_sub(1)?)?;
        let rest = &source[line_start..];
        Some(line_start + rest.char_indices().nth(column.saturating_sub(1)).map_or(rest.len(), |(i, _)| i))
    }
}

/// Whether the first `(` of `text` closes at its last character.
fn encloses(text: &str) -> bool {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

fn line_starts(source: &str) -> Vec<usize> {
    std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

fn is_constant(e: &Expr) -> bool {
    matches!(
        e,
        Expr::DynamicConstant(..)
            | Expr::BoolConstant(..)
            | Expr::IntegerConstant(..)
            | Expr::FloatConstant(..)
            | Expr::CharConstant(..)
            | Expr::StringConstant(..)
            | Expr::Unit(..)
    )
}

fn outcome(result: Result<Dynamic, super::script::EvalError>) -> Outcome {
    match result {
        Ok(v) if v.is_unit() => Outcome::Unknown,
        Ok(v) => {
            let value = rhai::serde::from_dynamic::<serde_json::Value>(&v).unwrap_or_else(|_| v.to_string().into());
            Outcome::Value { value: bounded(value) }
        }
        Err(e) => Outcome::Error { error: e.message },
    }
}

/// `value` cut to a bounded size: strings to [`MAX_TEXT`] characters, lists and maps
/// to [`MAX_ITEMS`] entries, each cut marked with `…`.
pub fn bounded(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.chars().count() > MAX_TEXT => {
            Value::String(s.chars().take(MAX_TEXT).chain(std::iter::once('…')).collect())
        }
        Value::Array(items) => {
            let more = items.len() > MAX_ITEMS;
            let mut kept: Vec<Value> = items.into_iter().take(MAX_ITEMS).map(bounded).collect();
            if more {
                kept.push(Value::String("…".into()));
            }
            Value::Array(kept)
        }
        Value::Object(map) => {
            let more = map.len() > MAX_ITEMS;
            let mut kept: serde_json::Map<String, Value> =
                map.into_iter().take(MAX_ITEMS).map(|(k, v)| (k, bounded(v))).collect();
            if more {
                kept.insert("…".into(), Value::String("…".into()));
            }
            Value::Object(kept)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::script::{Limits, Origin};
    use crate::model::{Account, Segment};
    use chrono::{DateTime, NaiveDate};

    fn explain(source: &str) -> Part {
        let mut engine = ScriptEngine::new(&Limits::default());
        engine.add_library("fn detractor(a) { a.metrics.nps <= 6 }", Origin::at("rules/r.rhai", 1, 1)).unwrap();
        engine.set_today(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        let mut a = Account::new("ACC-1", DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        a.name = "Acme".into();
        a.segment = Some(Segment::MidMarket);
        a.arr = Some(60_000.0);
        a.renewal_date = NaiveDate::from_ymd_opt(2027, 2, 20);
        a.metrics.insert("score".into(), 72.4);
        a.metrics.insert("nps".into(), 5.0);
        a.fields.insert("notes".into(), "x".repeat(200).into());
        let expr = engine.compile(source, Origin::at("p.yaml", 1, 1)).unwrap();
        let mut scope = engine.scope();
        scope.set_account(&a).unwrap();
        expr.explain(&engine, &mut scope)
    }

    /// `source → with_values → outcome`, one line per part, indented by depth.
    fn lines(part: &Part) -> Vec<String> {
        fn walk(p: &Part, depth: usize, out: &mut Vec<String>) {
            let with = p.with_values.as_ref().map_or(String::new(), |w| format!(" → {w}"));
            out.push(format!("{}{}{with} → {}", "  ".repeat(depth), p.source, p.outcome.text()));
            for c in &p.parts {
                walk(c, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(part, 0, &mut out);
        out
    }

    #[test]
    fn a_comparison_shows_its_operands_values() {
        assert_eq!(
            lines(&explain("account.metrics.score < 60")),
            ["account.metrics.score < 60 → 72.4 < 60 → false", "  account.metrics.score → 72.4",]
        );
    }

    #[test]
    fn and_or_show_each_operand_and_what_short_circuiting_skipped() {
        let p = explain(r#"account.metrics.score < 60 && account.segment != "smb" || account.arr >= 50000"#);
        assert_eq!(
            lines(&p),
            [
                r#"account.metrics.score < 60 && account.segment != "smb" || account.arr >= 50000 → true"#,
                r#"  account.metrics.score < 60 && account.segment != "smb" → false"#,
                "    account.metrics.score < 60 → 72.4 < 60 → false",
                "      account.metrics.score → 72.4",
                r#"    account.segment != "smb" → not evaluated"#,
                "  account.arr >= 50000 → 60000.0 >= 50000 → true",
                "    account.arr → 60000.0",
            ]
        );
        let skipped = &p.parts[0].parts[1].outcome;
        assert_eq!(skipped, &Outcome::NotEvaluated { why: "`&&` stops at the first false".into() });
        // `||` stops at the first true; brackets group, and are not part of the operands.
        let p = explain(r#"(account.arr > 1 || account.metrics.nps > 9) && !(account.segment == "smb")"#);
        assert_eq!(
            lines(&p),
            [
                r#"(account.arr > 1 || account.metrics.nps > 9) && !(account.segment == "smb") → true"#,
                "  account.arr > 1 || account.metrics.nps > 9 → true",
                "    account.arr > 1 → 60000.0 > 1 → true",
                "      account.arr → 60000.0",
                "    account.metrics.nps > 9 → not evaluated",
                r#"  !(account.segment == "smb") → !false → true"#,
                r#"    account.segment == "smb" → "mid_market" == "smb" → false"#,
                r#"      account.segment → "mid_market""#,
            ]
        );
    }

    #[test]
    fn function_calls_show_their_arguments_and_rule_functions_run() {
        assert_eq!(
            lines(&explain("days_until(account.renewal_date) <= 90 && detractor(account)")),
            [
                "days_until(account.renewal_date) <= 90 && detractor(account) → true",
                "  days_until(account.renewal_date) <= 90 → 90 <= 90 → true",
                r#"    days_until(account.renewal_date) → days_until("2027-02-20") → 90"#,
                "  detractor(account) → detractor({…}) → true",
            ]
        );
    }

    #[test]
    fn in_reads_in_source_order() {
        assert_eq!(
            lines(&explain(r#"account.segment in ["smb", "mid_market"]"#)),
            [r#"account.segment in ["smb", "mid_market"] → contains(["smb","mid_market"], "mid_market") → true"#,]
        );
        let p = explain(r#"account.fields.notes in [account.name, "x"] || "Acme" in [account.name]"#);
        assert_eq!(p.parts[0].source, r#"account.fields.notes in [account.name, "x"]"#);
        assert_eq!(
            p.parts[0].parts.iter().map(|p| p.source.as_str()).collect::<Vec<_>>(),
            [r#"[account.name, "x"]"#, "account.fields.notes"]
        );
        assert_eq!(p.parts[1].source, r#""Acme" in [account.name]"#);
    }

    #[test]
    fn missing_values_are_unknown() {
        let p = explain("account.metrics.logins_30d * 2.0 > 10 || days_until(account.start_date) < 5");
        assert_eq!(
            lines(&p)[..4],
            [
                "account.metrics.logins_30d * 2.0 > 10 || days_until(account.start_date) < 5 → false".to_string(),
                "  account.metrics.logins_30d * 2.0 > 10 → () > 10 → false".into(),
                "    account.metrics.logins_30d * 2.0 → () * 2.0 → unknown (missing value)".into(),
                "      account.metrics.logins_30d → unknown (missing value)".into(),
            ]
        );
        assert_eq!(explain("account.metrics.logins_30d").outcome, Outcome::Unknown);
    }

    #[test]
    fn long_values_are_cut_and_scripts_of_statements_show_their_result() {
        let p = explain("account.fields.notes.len() > 10 && account.fields.notes != \"\"");
        let notes = &p.parts[1].with_values.as_deref().unwrap();
        assert!(notes.contains(&format!("\"{}…\"", "x".repeat(MAX_TEXT))), "{notes}");
        let p = explain("let s = account.metrics.score;\ns < 60");
        assert_eq!((p.outcome, p.parts.len()), (Outcome::Value { value: false.into() }, 0));
        let list = bounded(serde_json::json!((0..30).collect::<Vec<_>>()));
        assert_eq!(list.as_array().unwrap().len(), MAX_ITEMS + 1);
    }
}
