//! The Rhai engine for playbook expressions and rules: one [`ScriptEngine`] per process,
//! every expression compiled once at load into an [`Expression`], evaluated per account.
//!
//! Invariants:
//! - **Sandboxed.** Every Rhai limit is set ([`Limits`]: operations, call depth, expression
//!   depth, string/array/map sizes, variables, functions, modules). They decide, and they
//!   are deterministic: the same expression on the same data stops at the same point on
//!   any machine under any load. The wall-clock limit per evaluation is only a last-resort
//!   safety net, far above what the operation limit allows (an expensive built-in called
//!   in a loop), so machine load never changes a decision. `eval` and `import` are disabled; Rhai has no file, network or process
//!   access of its own and none is registered. `print`/`debug` go to the log.
//! - **Compile once.** [`ScriptEngine::compile`] is the only place source text is parsed;
//!   the per-account path ([`Expression::eval`]) only runs an AST over a scope.
//! - **Failures stay local.** A script that errors or runs too long fails that one
//!   evaluation with an [`EvalError`] carrying the script position mapped back to the file
//!   the expression came from; the caller records it and goes on with the next account.
//! - **Injected clock.** Date helpers read "today" from the engine's clock, which the
//!   caller sets ([`ScriptEngine::set_today`]), or — for a pass — from the evaluating
//!   thread's day ([`ScriptEngine::on_day`]): one engine serves the daemon's pass and a
//!   dry run the API answers beside it (`keel explain`), each on its own day.
//!
//! In scripts, an account is a map (`account.segment`, `account.arr`,
//! `account.metrics.nps`, `account.fields.industry`, `account.renewal_date` as
//! `"YYYY-MM-DD"`); a value the account does not have is `()`, arithmetic on `()` gives
//! `()`, and an expression that ends on `()` is *unknown* — neither true nor false
//! (an `on_enter` fires on false/unknown → true).
//!
//! Caveat, open for the playbook language: Rhai compares `()` with a number as `false`
//! (`account.metrics.nps <= 6` is false, not unknown, for an account without an NPS; and
//! `!(…)` of it is true). Pinned by a test below so the choice is made knowingly.

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope, AST};
use serde::Serialize;

/// Resource limits for one evaluation. The defaults are generous for CS rules (a health
/// model is a few hundred operations) and stop a runaway loop in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_variables: usize,
    pub max_functions: usize,
    /// Wall-clock safety net per evaluation, checked every [`TIME_CHECK_EVERY`]
    /// operations. Far above the operation limit's cost on a loaded machine: it must
    /// never be what decides (a 100 ms limit made one condition fire for 349, 177 and
    /// 24 of the same 400 accounts on three runs).
    pub time_limit: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_variables: 256,
            max_functions: 256,
            time_limit: Duration::from_secs(10),
        }
    }
}

/// Reading the clock on every Rhai operation would cost more than the operation.
pub const TIME_CHECK_EVERY: u64 = 1024;

thread_local! {
    /// The day of the pass this thread evaluates for (days since 0001-01-01), over the
    /// engine's shared day: [`ScriptEngine::on_day`].
    static TODAY: Cell<Option<i32>> = const { Cell::new(None) };
    /// When the evaluation running on this thread must stop. Thread-local because one
    /// engine serves every worker thread, each evaluating its own account.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The one Rhai engine, configured for CS rules.
pub struct ScriptEngine {
    engine: Engine,
    /// Functions from `rules/*.rhai`, merged into every compiled expression so any
    /// playbook or health category can call them.
    library: AST,
    /// Today, as days since 0001-01-01 (chrono's `num_days_from_ce`), for the date helpers.
    today: Arc<AtomicI32>,
    time_limit: Duration,
}

/// Where an expression's text came from, so a script position maps back to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based line and column of the expression's first character in `file`.
    pub line: usize,
    pub column: usize,
    /// Columns the file indents the expression's later lines by (a YAML `|` block strips
    /// its indentation from the text Rhai sees); 0 elsewhere.
    pub indent: usize,
}

impl Origin {
    pub fn at(file: impl Into<PathBuf>, line: usize, column: usize) -> Origin {
        Origin { file: file.into(), line, column, indent: 0 }
    }

    /// The file position of a position inside the expression. Line 1 of the expression
    /// starts at the origin's column; later lines start after the block's indentation.
    /// Rhai counts columns in characters, as diagnostics do.
    fn map(&self, pos: Position) -> (usize, usize) {
        match (pos.line(), pos.position()) {
            (Some(1), Some(col)) => (self.line, self.column + col.saturating_sub(1)),
            (Some(line), col) => (self.line + line.saturating_sub(1), self.indent + col.unwrap_or(1)),
            (None, _) => (self.line, self.column),
        }
    }

    /// The file position of a byte offset in the expression's source.
    pub fn position_of(&self, source: &str, offset: usize) -> (usize, usize) {
        let (line, column) = crate::diagnostic::position_of_byte(source, offset);
        self.map(rhai_position(line, column))
    }

    /// Like [`Origin::map`], but a position past the end of `source` (Rhai's "script is
    /// incomplete" points at the end of input) is moved back to just after its last
    /// character, so the caret lands on the unfinished expression, not the next key.
    fn map_within(&self, pos: Position, source: &str) -> (usize, usize) {
        let trimmed = source.trim_end();
        let lines = trimmed.lines().count().max(1);
        let last = trimmed.lines().last().map_or(0, |l| l.chars().count());
        match pos.line() {
            Some(line) if line > lines || (line == lines && pos.position().unwrap_or(0) > last) => {
                self.map(rhai_position(lines, last + 1))
            }
            _ => self.map(pos),
        }
    }
}

/// A Rhai position, which holds 16 bits of line and column (and panics on line 0).
fn rhai_position(line: usize, column: usize) -> Position {
    let clamp = |n: usize| n.clamp(1, u16::MAX as usize) as u16;
    Position::new(clamp(line), clamp(column))
}

/// A compiled expression or rule, ready to evaluate against any number of accounts.
#[derive(Debug, Clone)]
pub struct Expression {
    ast: AST,
    source: String,
    origin: Origin,
}

/// A script that does not compile: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {message}", origin.file.display(), position.0, position.1)]
pub struct CompileError {
    pub origin: Origin,
    pub position: (usize, usize),
    pub message: String,
}

/// One evaluation that failed: where in the file, and why. The caller adds the playbook
/// and account it was evaluating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub file: PathBuf,
    pub position: (usize, usize),
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.position.0, self.position.1, self.message)
    }
}

impl std::error::Error for EvalError {}

/// What an expression said about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// The expression read a value the account does not have (`()`).
    Unknown,
}

impl ScriptEngine {
    pub fn new(limits: &Limits) -> ScriptEngine {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_variables(limits.max_variables)
            .set_max_functions(limits.max_functions)
            .set_max_modules(0);
        // Scripts are data from git, not a way to run more scripts.
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        engine.on_print(|text| tracing::info!(target: "keel::script", "{text}"));
        engine.on_debug(|text, source, pos| tracing::debug!(target: "keel::script", ?source, %pos, "{text}"));
        engine.on_progress(|ops| {
            if ops % TIME_CHECK_EVERY == 0 && DEADLINE.get().is_some_and(|d| Instant::now() > d) {
                return Some(Dynamic::from("time limit"));
            }
            None
        });

        let today = Arc::new(AtomicI32::new(NaiveDate::default().num_days_from_ce()));
        register_date_helpers(&mut engine, &today);
        register_unknown_arithmetic(&mut engine);
        ScriptEngine { engine, library: AST::empty(), today, time_limit: limits.time_limit }
    }

    /// Sets "today" for the date helpers: the evaluation pass's date in the configured
    /// time zone. One value per pass, so every account in it sees the same day.
    pub fn set_today(&self, date: NaiveDate) {
        self.today.store(date.num_days_from_ce(), Ordering::Relaxed);
    }

    pub fn today(&self) -> NaiveDate {
        from_days(today_of(&self.today)).expect("today is always a valid date")
    }

    /// "Today" is `date` for evaluations on this thread until the guard drops (a pass's
    /// worker): a pass never moves the day another thread's pass evaluates on.
    pub fn on_day(&self, date: NaiveDate) -> DayGuard {
        DayGuard(TODAY.replace(Some(date.num_days_from_ce())))
    }

    /// Compiles an expression or a rule script (statements, ending in a value), with the
    /// rule library's functions available to it.
    pub fn compile(&self, source: &str, origin: Origin) -> Result<Expression, CompileError> {
        match self.engine.compile(source) {
            Ok(ast) => Ok(Expression { ast: self.library.merge(&ast), source: source.to_string(), origin }),
            Err(err) => {
                let position = origin.map_within(err.position(), source);
                Err(CompileError { origin, position, message: err.err_type().to_string() })
            }
        }
    }

    /// Function names an expression calls that neither the rule library nor Rhai (its
    /// standard library and Keel's helpers) defines, with their byte offsets in `source`.
    /// Rhai resolves functions only when it runs them, so without this a misspelt rule
    /// (`detractr(account)`) would compile and then fail for every account.
    ///
    /// A lexical scan: identifiers directly followed by `(`, outside string literals,
    /// skipping keywords and function definitions.
    pub fn unknown_functions(&self, source: &str) -> Vec<(String, usize)> {
        const KEYWORDS: &[&str] = &[
            "if",
            "else",
            "while",
            "for",
            "loop",
            "do",
            "until",
            "switch",
            "fn",
            "return",
            "let",
            "const",
            "in",
            "throw",
            "try",
            "catch",
            "break",
            "continue",
            "Fn",
            "call",
            "curry",
            "type_of",
            "is_def_fn",
            "is_def_var",
            "is_shared",
            "print",
            "debug",
        ];
        let known: std::collections::HashSet<String> = self
            .engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|sig| sig.split('(').next())
            .map(|name| name.rsplit(' ').next().unwrap_or(name).to_string())
            .chain(self.library.iter_functions().map(|f| f.name.to_string()))
            .collect();
        let bytes = source.as_bytes();
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(after) = skip_literal(bytes, i) {
                i = after;
                continue;
            }
            if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let name = &source[start..i];
                let mut j = i;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                let defined_here = source[..start].trim_end().ends_with("fn");
                if bytes.get(j) == Some(&b'(') && !KEYWORDS.contains(&name) && !defined_here && !known.contains(name) {
                    found.push((name.to_string(), start));
                }
                continue;
            }
            i += 1;
        }
        found
    }

    /// The rule library's function names (for "did you mean").
    pub fn library_functions(&self) -> Vec<String> {
        self.library.iter_functions().map(|f| f.name.to_string()).collect()
    }

    /// Adds a rule file's functions (`fn name(account) { … }`) to the library. Only
    /// functions are kept: a rule file is a set of definitions, not a script that runs.
    /// Call before compiling the expressions that use them.
    pub fn add_library(&mut self, source: &str, origin: Origin) -> Result<(), CompileError> {
        let ast = self.engine.compile(source).map_err(|err| CompileError {
            position: origin.map_within(err.position(), source),
            origin: origin.clone(),
            message: err.err_type().to_string(),
        })?;
        self.library = self.library.merge(&ast.clone_functions_only());
        Ok(())
    }

    /// A scope with the constants every evaluation shares. Build it once per pass and
    /// per worker, then per account [`AccountScope::set_account`] rewinds and pushes: Rhai
    /// looks variables up linearly, so the scope stays short.
    pub fn scope(&self) -> AccountScope {
        let mut scope = Scope::new();
        scope.push_constant("today", self.today().to_string());
        let base = scope.len();
        AccountScope { scope, base }
    }
}

/// Restores the thread's previous day ([`ScriptEngine::on_day`]) when dropped.
pub struct DayGuard(Option<i32>);

impl Drop for DayGuard {
    fn drop(&mut self) {
        TODAY.set(self.0);
    }
}

/// The thread's day if a pass set one, else the engine's.
fn today_of(shared: &AtomicI32) -> i32 {
    TODAY.get().unwrap_or_else(|| shared.load(Ordering::Relaxed))
}

/// Why a value could not be put in an [`AccountScope`].
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// Rhai's serde conversion refused the value. `what` names it as scripts see it
    /// ("the account", "account.health", "event"); Rhai's reason is part of the message,
    /// so it is not also given as `source()`.
    #[error("cannot expose {what} to scripts: {reason}")]
    Expose { what: String, reason: Box<EvalAltResult> },
    /// [`AccountScope::set_account_property`] before any [`AccountScope::set_account`].
    #[error("no account in scope")]
    NoAccount,
}

/// A reusable scope: shared constants, then the account being evaluated.
pub struct AccountScope {
    scope: Scope<'static>,
    base: usize,
}

impl AccountScope {
    /// Puts `account` (any serialisable record: an `Account`, or a richer view of it) in
    /// scope as `account`, replacing the previous one. Converted with Rhai's serde support,
    /// not through JSON text.
    pub fn set_account<T: Serialize>(&mut self, account: &T) -> Result<(), ScopeError> {
        let value = rhai::serde::to_dynamic(account)
            .map_err(|reason| ScopeError::Expose { what: "the account".into(), reason })?;
        self.scope.rewind(self.base);
        self.scope.push_constant_dynamic("account", value);
        Ok(())
    }
}

impl AccountScope {
    /// Replaces one property of the account in scope (the pass scores health with the
    /// account in scope, then adds the health it scored): converting the whole account
    /// again cost a quarter of a full pass's Rhai time.
    pub fn set_account_property<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), ScopeError> {
        let value = rhai::serde::to_dynamic(value)
            .map_err(|reason| ScopeError::Expose { what: format!("account.{name}"), reason })?;
        self.scope.rewind(self.base + 1);
        let Some(mut account) = self.scope.remove::<rhai::Map>("account") else {
            return Err(ScopeError::NoAccount);
        };
        account.insert(name.into(), value);
        self.scope.push_constant_dynamic("account", account.into());
        Ok(())
    }

    /// Removes the variables [`AccountScope::set_var`] added, keeping the account.
    pub fn clear_vars(&mut self) {
        self.scope.rewind(self.base + 1);
    }

    /// Adds another variable for the current account (e.g. `event` for event triggers);
    /// gone at the next [`AccountScope::set_account`].
    pub fn set_var<T: Serialize>(&mut self, name: &'static str, value: &T) -> Result<(), ScopeError> {
        let value =
            rhai::serde::to_dynamic(value).map_err(|reason| ScopeError::Expose { what: name.into(), reason })?;
        self.scope.push_constant_dynamic(name, value);
        Ok(())
    }
}

impl Expression {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The account paths the expression reads (`health.band`, `metrics.nps`), in order of
    /// first appearance: what a ledger entry records as "the values the trigger read".
    /// A lexical scan for `account.a.b`, outside string literals; called when a trigger
    /// fires, not per evaluation.
    pub fn reads(&self) -> Vec<String> {
        let bytes = self.source.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut paths: Vec<String> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if let Some(after) = skip_literal(bytes, i) {
                i = after;
                continue;
            }
            if bytes[i..].starts_with(b"account.") && (i == 0 || !ident(bytes[i - 1])) {
                let start = i + "account.".len();
                let mut end = start;
                while end < bytes.len() && (ident(bytes[end]) || (bytes[end] == b'.' && end > start)) {
                    end += 1;
                }
                let path = self.source[start..end].trim_end_matches('.');
                if !path.is_empty() && !paths.iter().any(|p| p == path) {
                    paths.push(path.to_string());
                }
                i = end;
                continue;
            }
            i += 1;
        }
        paths
    }

    /// Runs the expression in `scope` and returns what it produced.
    pub fn eval(&self, engine: &ScriptEngine, scope: &mut AccountScope) -> Result<Dynamic, EvalError> {
        self.run(engine, scope, &self.ast)
    }

    /// The compiled expression, with the rule library's functions ([`super::explain`]
    /// walks it).
    pub(super) fn ast(&self) -> &AST {
        &self.ast
    }

    /// Runs `ast` (this expression, or a part of it) in `scope`, under the same limits,
    /// with errors placed in this expression's file.
    pub(super) fn run(&self, engine: &ScriptEngine, scope: &mut AccountScope, ast: &AST) -> Result<Dynamic, EvalError> {
        DEADLINE.set(Some(Instant::now() + engine.time_limit));
        let result = engine.engine.eval_ast_with_scope::<Dynamic>(&mut scope.scope, ast);
        DEADLINE.set(None);
        result.map_err(|err| self.error(&err, engine))
    }

    /// Runs the expression as a condition: `true`, `false`, or unknown for `()`; anything
    /// else is an error saying what it produced.
    pub fn truth(&self, engine: &ScriptEngine, scope: &mut AccountScope) -> Result<Truth, EvalError> {
        let value = self.eval(engine, scope)?;
        if value.is_unit() {
            return Ok(Truth::Unknown);
        }
        match value.as_bool() {
            Ok(true) => Ok(Truth::True),
            Ok(false) => Ok(Truth::False),
            Err(found) => Err(EvalError {
                file: self.origin.file.clone(),
                position: (self.origin.line, self.origin.column),
                message: format!("expected the condition to be true or false, but it produced {found} ({value})"),
            }),
        }
    }

    fn error(&self, err: &EvalAltResult, engine: &ScriptEngine) -> EvalError {
        let message = match err {
            EvalAltResult::ErrorTerminated(..) => {
                format!("stopped: ran longer than the time limit of {:?}", engine.time_limit)
            }
            EvalAltResult::ErrorTooManyOperations(..) => format!(
                "stopped: exceeded the limit of {} operations (a loop that never ends?)",
                engine.engine.max_operations()
            ),
            other => {
                // Rhai's Display appends " (line L, position C)": the file position replaces it.
                let text = other.to_string();
                match text.rfind(" (line ") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                }
            }
        };
        EvalError { file: self.origin.file.clone(), position: self.origin.map(err.position()), message }
    }
}

/// Arithmetic with a missing value (`()`) gives `()`: `account.metrics.nps * 10.0` is
/// unknown for an account without an NPS, instead of an error that fails the account or
/// a zero that pretends to know.
fn register_unknown_arithmetic(engine: &mut Engine) {
    for op in ["+", "-", "*", "/"] {
        engine.register_fn(op, |_: (), _: rhai::INT| ());
        engine.register_fn(op, |_: rhai::INT, _: ()| ());
        engine.register_fn(op, |_: (), _: rhai::FLOAT| ());
        engine.register_fn(op, |_: rhai::FLOAT, _: ()| ());
        engine.register_fn(op, |_: (), _: ()| ());
    }
}

/// When a string literal starts at `i`, the index just after it (backslash escapes
/// honoured): the lexical scans skip what is inside quotes.
fn skip_literal(bytes: &[u8], i: usize) -> Option<usize> {
    let quote = bytes[i];
    if quote != b'"' && quote != b'\'' && quote != b'`' {
        return None;
    }
    let mut j = i + 1;
    while j < bytes.len() && bytes[j] != quote {
        j += if bytes[j] == b'\\' { 2 } else { 1 };
    }
    Some(j + 1)
}

fn from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days)
}

/// `today()`, `days_until(date)`, `days_since(date)`, `date(text)`: the date arithmetic
/// renewal and onboarding rules need. Dates are `"YYYY-MM-DD"` strings in scripts (how
/// accounts carry them); a missing date (`()`) gives `()`, so the rule is unknown rather
/// than wrong.
fn register_date_helpers(engine: &mut Engine, today: &Arc<AtomicI32>) {
    fn parse(text: &str) -> Result<NaiveDate, Box<EvalAltResult>> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| format!("expected a date like 2027-03-31, found {text:?}").into())
    }
    let clock = today.clone();
    engine.register_fn("today", move || -> String {
        from_days(today_of(&clock)).map(|d| d.to_string()).unwrap_or_default()
    });
    let clock = today.clone();
    engine.register_fn("days_until", move |date: &str| -> Result<i64, Box<EvalAltResult>> {
        Ok(i64::from(parse(date)?.num_days_from_ce() - today_of(&clock)))
    });
    let clock = today.clone();
    engine.register_fn("days_since", move |date: &str| -> Result<i64, Box<EvalAltResult>> {
        Ok(i64::from(today_of(&clock) - parse(date)?.num_days_from_ce()))
    });
    engine.register_fn("days_until", |_: ()| ());
    engine.register_fn("days_since", |_: ()| ());
    engine.register_fn("date", |text: &str| -> Result<String, Box<EvalAltResult>> { Ok(parse(text)?.to_string()) });
}

#[cfg(test)]
mod tests {

    #[test]
    fn reads_lists_the_account_paths_an_expression_reads() {
        let engine = ScriptEngine::new(&Limits::default());
        let source = "account.health.band == \"red\" && days_until(account.renewal_date) <= 90 \
                      || account.metrics.nps <= 6 || \"account.fields.x\" == myaccount.y || account.health.band == 1";
        let e = engine.compile(source, Origin::at("p.yaml", 1, 1)).unwrap();
        assert_eq!(e.reads(), ["health.band", "renewal_date", "metrics.nps"]);
    }

    use super::*;
    use crate::model::{Account, Segment};
    use chrono::DateTime;

    fn origin() -> Origin {
        Origin::at("playbooks/renewal.yaml", 7, 14)
    }

    fn account() -> Account {
        let mut a = Account::new("ACC-1", DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        a.name = "Acme".into();
        a.segment = Some(Segment::MidMarket);
        a.arr = Some(60_000.0);
        a.renewal_date = NaiveDate::from_ymd_opt(2027, 2, 20);
        a.metrics.insert("nps".into(), 5.0);
        a.fields.insert("industry".into(), "Retail".into());
        a
    }

    fn truth(source: &str) -> Result<Truth, EvalError> {
        let engine = ScriptEngine::new(&Limits::default());
        engine.set_today(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        let expr = engine.compile(source, origin()).unwrap();
        let mut scope = engine.scope();
        scope.set_account(&account()).unwrap();
        expr.truth(&engine, &mut scope)
    }

    #[test]
    fn expressions_read_the_account_its_metrics_and_fields() {
        assert_eq!(truth(r#"account.segment != "smb" && account.arr >= 50000"#), Ok(Truth::True));
        assert_eq!(truth("account.metrics.nps <= 6"), Ok(Truth::True), "a detractor");
        assert_eq!(truth(r#"account.fields.industry == "Retail""#), Ok(Truth::True));
        assert_eq!(truth(r#"account.segment == "enterprise""#), Ok(Truth::False));
    }

    #[test]
    fn date_helpers_use_the_injected_clock() {
        // 2026-11-22 → 2027-02-20 is 90 days.
        assert_eq!(truth("days_until(account.renewal_date) == 90"), Ok(Truth::True));
        assert_eq!(
            truth(r#"days_since("2026-11-01") == 21 && today() == "2026-11-22" && today == "2026-11-22""#),
            Ok(Truth::True)
        );
        assert_eq!(truth("days_until(account.start_date)"), Ok(Truth::Unknown), "no start date: unknown, not an error");
    }

    #[test]
    fn a_threads_day_overrides_the_engines_for_that_thread_only() {
        let engine = ScriptEngine::new(&Limits::default());
        engine.set_today(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        let expr = engine.compile("days_until(\"2026-11-30\")", origin()).unwrap();
        let days = |engine: &ScriptEngine| expr.eval(engine, &mut engine.scope()).unwrap().as_int().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _day = engine.on_day(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
                assert_eq!(days(&engine), 1);
                assert_eq!(engine.scope().scope.get_value::<String>("today").unwrap(), "2026-11-29");
            });
        });
        assert_eq!(days(&engine), 8, "another thread's day is not this one's");
    }

    #[test]
    fn a_missing_metric_is_unknown_not_false() {
        assert_eq!(truth("account.metrics.logins_30d"), Ok(Truth::Unknown));
    }

    #[test]
    fn arithmetic_on_a_missing_value_is_unknown() {
        assert_eq!(truth("account.metrics.logins_30d * 2.0"), Ok(Truth::Unknown));
        assert_eq!(truth("1 + account.metrics.logins_30d"), Ok(Truth::Unknown));
    }

    #[test]
    fn comparing_a_missing_metric_is_false_today() {
        // Documents Rhai's behaviour the module header warns about; change deliberately.
        assert_eq!(truth("account.metrics.logins_30d > 5"), Ok(Truth::False));
        assert_eq!(truth("!(account.metrics.logins_30d > 5)"), Ok(Truth::True));
    }

    #[test]
    fn a_non_boolean_condition_is_an_error_saying_what_it_produced() {
        let err = truth("account.arr").unwrap_err();
        assert!(err.message.contains("expected the condition to be true or false"), "{err}");
    }

    #[test]
    fn a_runaway_script_fails_alone_with_its_position() {
        let err = truth("let x = 0; loop { x += 1; }").unwrap_err();
        assert!(err.message.starts_with("stopped:"), "{err}");
        assert_eq!(err.file, PathBuf::from("playbooks/renewal.yaml"));

        let limits = Limits { time_limit: Duration::from_millis(5), max_operations: 0, ..Limits::default() };
        let engine = ScriptEngine::new(&limits);
        let expr = engine.compile("loop { }", origin()).unwrap();
        let err = expr.eval(&engine, &mut engine.scope()).unwrap_err();
        assert!(err.message.contains("time limit"), "{err}");
    }

    #[test]
    fn scripts_cannot_grow_without_bound_or_run_other_code() {
        let err = truth(r#"let s = "x"; loop { s += s; }"#).unwrap_err();
        assert!(err.message.contains("too large") || err.message.starts_with("stopped"), "{err}");
        let engine = ScriptEngine::new(&Limits::default());
        assert!(engine.compile(r#"eval("1")"#, origin()).is_err());
        assert!(engine.compile(r#"import "x" as y; 1"#, origin()).is_err());
    }

    #[test]
    fn errors_point_into_the_file_the_expression_came_from() {
        let engine = ScriptEngine::new(&Limits::default());
        let err = engine.compile("account.arr >", origin()).unwrap_err();
        assert_eq!(err.position.0, 7);
        assert!(err.position.1 >= 14, "{err}");
        assert!(err.to_string().starts_with("playbooks/renewal.yaml:7:"), "{err}");

        let mut block = origin();
        block.indent = 4;
        let err = engine.compile("account.arr > 1\n  && account.arr <", block.clone()).unwrap_err();
        assert_eq!(err.position, (8, 4 + 19), "the end of the unfinished line, not the next key: {err}");
        let expr = engine.compile("let a = 1;\nundefined_fn(a)", origin()).unwrap();
        let err = expr.eval(&engine, &mut engine.scope()).unwrap_err();
        assert_eq!(err.position, (8, 1), "{err}");
        assert!(err.message.contains("undefined_fn"), "{err}");
    }

    #[test]
    fn rule_functions_are_callable_from_any_expression() {
        let mut engine = ScriptEngine::new(&Limits::default());
        let rules = Origin::at("rules/churn.rhai", 1, 1);
        engine.add_library("fn detractor(a) { a.metrics.nps <= 6 }\nprint(\"not run\");", rules).unwrap();
        let expr = engine.compile("detractor(account) && account.arr > 0", origin()).unwrap();
        let mut scope = engine.scope();
        scope.set_account(&account()).unwrap();
        assert_eq!(expr.truth(&engine, &mut scope), Ok(Truth::True));
    }

    #[test]
    fn unknown_functions_are_found_before_anything_runs() {
        let mut engine = ScriptEngine::new(&Limits::default());
        engine.add_library("fn detractor(a) { a.metrics.nps <= 6 }", Origin::at("rules/r.rhai", 1, 1)).unwrap();
        let src = "detractr(account) || days_until(account.renewal_date) < 30 && \"x(\".len() > 0 || [1].contains(1)";
        assert_eq!(engine.unknown_functions(src), [("detractr".to_string(), 0)]);
        assert!(engine.unknown_functions("if detractor(account) { 1 } else { abs(-1) }").is_empty());
        assert_eq!(origin().position_of("a &&\n  b(x)", 7), (8, 3));
    }

    #[test]
    fn one_scope_serves_many_accounts() {
        let engine = ScriptEngine::new(&Limits::default());
        let expr = engine.compile("account.arr > 10000", origin()).unwrap();
        let mut scope = engine.scope();
        let mut seen = Vec::new();
        for arr in [5_000.0, 50_000.0, 500.0] {
            let mut a = account();
            a.arr = Some(arr);
            scope.set_account(&a).unwrap();
            seen.push(expr.truth(&engine, &mut scope).unwrap());
        }
        assert_eq!(seen, [Truth::False, Truth::True, Truth::False]);
        assert_eq!(scope.scope.len(), scope.base + 1, "the scope does not grow per account");
    }
}
