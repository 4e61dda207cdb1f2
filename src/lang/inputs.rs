//! The inputs a health category reads: the `metrics.<name>` and `fields.<name>` of the
//! account that its score expression, and the rule functions it calls (transitively),
//! read — each with the file position where it is first read.
//!
//! Why: a category scores `()` when an account lacks its inputs, and its weight silently
//! goes to the others. To say *which* inputs were missing (`keel health`, `keel accounts
//! show`) and that no source feeds one (`keel check`), the model must know what each
//! category reads. Scoring itself is untouched: whether a category had inputs is what the
//! scorer returned (a number or `()`), never re-derived from this list.
//!
//! Invariants:
//! - A lexical scan, as [`super::script::Expression::reads`] is: outside string literals
//!   and comments, it finds `x.metrics.name`, `x.fields.name`, `x.metrics["name"]`, and
//!   reads through a local alias (`let m = a.metrics; m.name`). A method call
//!   (`m.keys()`) is not an input. What it cannot see (a name built at run time) it
//!   leaves out: the list may be short, never wrong about a name it gives.
//! - Functions are those of the rule files in load order; a later definition of a name
//!   replaces an earlier one, as the engine's library merge does.
//! - Inputs keep the order they are first read in: the score expression, then the
//!   functions it calls in call order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::position_of_byte;
use crate::model::Account;

/// One input of a category: `metrics.nps`, read at `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `metrics.<name>` or `fields.<name>`, as a column mapping targets it.
    pub path: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Input {
    /// The record key the input lives under: (`metrics` or `fields`, name).
    pub fn parts(&self) -> (&str, &str) {
        self.path.split_once('.').unwrap_or(("", &self.path))
    }

    /// Whether `account` lacks this input: no such metric; no such field, or a null one
    /// (scripts see both as `()`).
    pub fn missing_from(&self, account: &Account) -> bool {
        match self.parts() {
            ("metrics", name) => !account.metrics.contains_key(name),
            (_, name) => account.fields.get(name).is_none_or(serde_json::Value::is_null),
        }
    }
}

/// A rule file's text, as the engine loaded it.
pub struct RuleText {
    pub file: PathBuf,
    pub text: String,
}

/// The functions defined across the rule files: name → (rule file, body byte range).
pub struct Functions<'r> {
    rules: &'r [RuleText],
    bodies: HashMap<String, (usize, usize, usize)>,
}

impl<'r> Functions<'r> {
    pub fn new(rules: &'r [RuleText]) -> Functions<'r> {
        let mut bodies = HashMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let tokens = tokenize(&rule.text);
            let mut i = 0;
            while i < tokens.len() {
                if let (Tok::Ident("fn"), Some(Tok::Ident(name))) = (&tokens[i].tok, tokens.get(i + 1).map(|t| &t.tok))
                {
                    // The body: from the first `{` after the name to its matching `}`.
                    if let Some(open) = (i + 2..tokens.len()).find(|&j| tokens[j].tok == Tok::Punct('{')) {
                        let mut depth = 0usize;
                        let mut close = tokens.len() - 1;
                        for (j, t) in tokens.iter().enumerate().skip(open) {
                            match t.tok {
                                Tok::Punct('{') => depth += 1,
                                Tok::Punct('}') => {
                                    depth -= 1;
                                    if depth == 0 {
                                        close = j;
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                        bodies.insert(name.to_string(), (index, tokens[open].at, tokens[close].at));
                        i = close;
                    }
                }
                i += 1;
            }
        }
        Functions { rules, bodies }
    }

    /// The inputs `source` reads (an expression whose byte offsets `position` maps to its
    /// file), directly and through the rule functions it calls.
    pub fn inputs_of(&self, source: &str, file: &Path, position: impl Fn(usize) -> (usize, usize)) -> Vec<Input> {
        let mut inputs: Vec<Input> = Vec::new();
        let mut push = |path: String, file: &Path, (line, column): (usize, usize)| {
            if !inputs.iter().any(|i| i.path == path) {
                inputs.push(Input { path, file: file.to_path_buf(), line, column });
            }
        };
        let (reads, mut calls) = scan(source);
        for (path, at) in reads {
            push(path, file, position(at));
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut next = 0;
        while next < calls.len() {
            let name = calls[next].clone();
            next += 1;
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(&(index, start, end)) = self.bodies.get(&name) else { continue };
            let rule = &self.rules[index];
            let (reads, more) = scan(&rule.text[start..end]);
            for (path, at) in reads {
                push(path, &rule.file, position_of_byte(&rule.text, start + at));
            }
            calls.extend(more);
        }
        inputs
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'s> {
    Ident(&'s str),
    Str(&'s str),
    Punct(char),
}

struct Token<'s> {
    tok: Tok<'s>,
    /// Byte offset in the scanned text.
    at: usize,
}

/// Identifiers, string literals (their content) and single punctuation characters, with
/// comments and whitespace left out. `?.` (Rhai's elvis access) reads as `.`.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != c {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(bytes.len());
            tokens.push(Token { tok: Tok::Str(&text[i + 1..end]), at: i });
            i = end + 1;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Ident(&text[start..i]), at: start });
        } else if c.is_ascii_digit() {
            // A number (`0.95`): its dot is not a property access.
            while i < bytes.len() && (ident(bytes[i]) || bytes[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'?' && bytes.get(i + 1) == Some(&b'.') {
            tokens.push(Token { tok: Tok::Punct('.'), at: i });
            i += 2;
        } else {
            // Any other character, one at a time (multi-byte ones are never punctuation
            // that matters here).
            let ch = text[i..].chars().next().unwrap_or(' ');
            tokens.push(Token { tok: Tok::Punct(ch), at: i });
            i += ch.len_utf8();
        }
    }
    tokens
}

/// The inputs a piece of script reads (path, byte offset of the access) and the
/// functions it calls, in order.
fn scan(text: &str) -> (Vec<(String, usize)>, Vec<String>) {
    const KINDS: [&str; 2] = ["metrics", "fields"];
    let tokens = tokenize(text);
    let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
    let dot = |i: usize| tok(i) == Some(&Tok::Punct('.'));
    // The name read after position `i` (`.name` not followed by `(`, or `["name"]`), and
    // the index after it.
    let name_at = |i: usize| -> Option<&str> {
        match (tok(i), tok(i + 1), tok(i + 2), tok(i + 3)) {
            (Some(Tok::Punct('.')), Some(Tok::Ident(name)), next, _) if next != Some(&Tok::Punct('(')) => Some(name),
            (Some(Tok::Punct('[')), Some(Tok::Str(name)), Some(Tok::Punct(']')), _) => Some(name),
            _ => None,
        }
    };
    let mut aliases: HashMap<&str, &str> = HashMap::new();
    let mut reads = Vec::new();
    let mut calls = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Tok::Ident(word) = token.tok else { continue };
        let after_dot = i > 0 && dot(i - 1);
        // `let m = a.metrics;`
        if matches!(word, "let" | "const") {
            if let (Some(Tok::Ident(alias)), Some(Tok::Punct('=')), Some(Tok::Ident(_)), true, Some(Tok::Ident(kind))) =
                (tok(i + 1), tok(i + 2), tok(i + 3), dot(i + 4), tok(i + 5))
            {
                if KINDS.contains(kind) && matches!(tok(i + 6), Some(Tok::Punct(';')) | None) {
                    aliases.insert(alias, kind);
                }
            }
            continue;
        }
        if after_dot {
            continue;
        }
        if tok(i + 1) == Some(&Tok::Punct('(')) {
            let defined = i > 0 && tok(i - 1) == Some(&Tok::Ident("fn"));
            if !defined {
                calls.push(word.to_string());
            }
            continue;
        }
        // `a.metrics.name` / `a.metrics["name"]`
        if dot(i + 1) {
            if let Some(Tok::Ident(kind)) = tok(i + 2) {
                if KINDS.contains(kind) {
                    if let Some(name) = name_at(i + 3) {
                        reads.push((format!("{kind}.{name}"), token.at));
                        continue;
                    }
                }
            }
        }
        // `m.name` through an alias
        if let Some(kind) = aliases.get(word) {
            if let Some(name) = name_at(i + 1) {
                reads.push((format!("{kind}.{name}"), token.at));
            }
        }
    }
    (reads, calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(inputs: &[Input]) -> Vec<(&str, usize, usize)> {
        inputs.iter().map(|i| (i.path.as_str(), i.line, i.column)).collect()
    }

    #[test]
    fn inputs_are_found_through_calls_and_aliases_with_their_positions() {
        let rules = vec![RuleText {
            file: "rules/h.rhai".into(),
            text: "// a.metrics.commented\nfn helper(x) { x }\nfn usage(a) {\n    let m = a.metrics;\n    if m.logins != () { helper(m.logins / 2.0) } else { m.keys().len() + a.fields[\"tier\"] }\n}\nfn unused(a) { a.metrics.never }\n"
                .into(),
        }];
        let functions = Functions::new(&rules);
        let expr = "usage(account) + account.metrics.nps * 0.5 + \"account.metrics.quoted\".len()";
        let inputs = functions.inputs_of(expr, Path::new("rules/health.yaml"), |at| (9, 10 + at));
        assert_eq!(paths(&inputs), [("metrics.nps", 9, 27), ("metrics.logins", 5, 8), ("fields.tier", 5, 74)]);
    }

    #[test]
    fn a_later_definition_replaces_an_earlier_one() {
        let rules = vec![
            RuleText { file: "a.rhai".into(), text: "fn s(a) { a.metrics.old }".into() },
            RuleText { file: "b.rhai".into(), text: "fn s(a) { a.metrics.new }".into() },
        ];
        let inputs = Functions::new(&rules).inputs_of("s(account)", Path::new("h.yaml"), |_| (1, 1));
        assert_eq!(paths(&inputs), [("metrics.new", 1, 11)]);
    }
}
