//! User-facing error reports about files CS Ops write (config, playbooks, rules,
//! templates, test files): where (file:line:column), the offending line with a caret,
//! what was expected, and a "did you mean" when a near name exists. Rendered like
//! rustc/cargo so it reads as a message about *their* file, never as a crash.
//!
//! Invariants:
//! - **One position convention.** Lines are 1-based and split at `\n` (a `\r` before it
//!   is not part of the line, so CRLF files count like LF ones). Columns are 1-based and
//!   count characters (Unicode scalar values), a tab counting as one: what rustc and cargo
//!   print and what an editor's go-to-line:column takes. Every producer converts to it:
//!   Rhai positions already count characters; serde_yaml's are turned into this from its
//!   byte offset ([`position_of_byte`]); byte offsets found by scanning the text go
//!   through [`column_of_byte`].
//! - **Rendering never panics.** Any text (wide characters, combining marks, tabs, control
//!   characters) and any position renders: [`Diagnostic::with_source`] keeps the position
//!   inside the text, and a column is turned into a byte offset on a character boundary.
//! - **A leading BOM is not part of a file.** Windows editors save UTF-8 with U+FEFF first;
//!   every user file Keel reads goes through [`read_source`], which drops it, so positions
//!   and parsers see the text the user sees.
//!
//! Rendering is annotate-snippets, the crate rustc and cargo render their diagnostics
//! with: a span-based snippet, wide and zero-width characters measured for the caret,
//! tabs expanded, control characters shown as symbols rather than sent to the terminal.
//! (codespan-reporting wants a file database for one line; miette is built around
//! fancy graphical reports and its own error trait.) Keel renders it plain, without
//! colour and with whole lines, as the output goes to logs and CI as often as to a terminal.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use annotate_snippets::{AnnotationKind, Level, Origin, Renderer, Snippet};

/// A problem in a user's file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column (in characters, see the module doc); `None` when the error
    /// has no position (e.g. unreadable file).
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key in question (`sync.accounts.columns`), when known.
    pub key: Option<String>,
    pub message: String,
    /// The source line at `position`, for the snippet.
    pub snippet: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// Fills in the snippet from the file's text. A position outside the text (a line past
    /// the end, a column past the end of its line) is moved to the end of the text or of
    /// the line, so the report still shows where the file stops.
    pub fn with_source(mut self, text: &str) -> Self {
        if let Some((line, column)) = self.position {
            let lines: Vec<&str> = text.lines().collect();
            let (line, column) = match lines.len() {
                0 => (1, 1),
                n if line > n => (n, lines[n - 1].chars().count() + 1),
                _ => (line.max(1), column),
            };
            let snippet = lines.get(line - 1).copied().unwrap_or("");
            let column = column.clamp(1, snippet.chars().count() + 1);
            self.position = Some((line, column));
            self.snippet = Some(snippet.to_string());
        }
        self
    }
}

/// How wide a line may be before the renderer elides its start: never, in practice. A
/// report shows the whole line, as the file has it.
const WHOLE_LINES: usize = 1 << 20;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The caller prefixes "error: ", as it does for every error the CLI prints.
        let path = self.file.display().to_string();
        let title = Level::ERROR.no_name().primary_title(self.message.as_str());
        let group = match (self.position, &self.snippet) {
            (Some((line, column)), Some(snippet)) => {
                let start = byte_of_column(snippet, column);
                let rest = &snippet[start..];
                // A script's position is a name or a token: underline that, not the line.
                let width = if path.ends_with(".rhai") { script_token(rest) } else { underline(rest) };
                let end = start + width;
                title.element(
                    Snippet::source(snippet.as_str())
                        .line_start(line)
                        .path(path.as_str())
                        .annotation(AnnotationKind::Primary.span(start..end)),
                )
            }
            (Some((line, column)), None) => title.element(Origin::path(path.as_str()).line(line).char_column(column)),
            (None, _) => title.element(Origin::path(path.as_str())),
        };
        let group = match &self.key {
            Some(key) => group.element(Level::NOTE.with_name("key").message(key.as_str())),
            None => group,
        };
        let group = match &self.help {
            Some(help) => group.element(Level::HELP.message(help.as_str())),
            None => group,
        };
        writeln!(f, "{}", Renderer::plain().term_width(WHOLE_LINES).render(&[group]))
    }
}

/// How many bytes of `rest` the caret underlines: a quoted scalar whole, else up to the
/// `:` of a key or the end of the value (a trailing comment excluded); at least one
/// character where there is one.
fn underline(rest: &str) -> usize {
    let width = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |end| end + 2),
        _ => {
            let end = rest.find(" #").unwrap_or(rest.len());
            let value = rest[..end].trim_end();
            match value.find(": ") {
                Some(colon) => colon,
                None => value.strip_suffix(':').unwrap_or(value).len(),
            }
        }
    };
    match width.min(rest.len()) {
        0 => rest.chars().next().map_or(0, char::len_utf8),
        w => w,
    }
}

/// How many bytes of `rest` a position in a Rhai script underlines: a dotted name
/// (`m.roi_achieved_pct`) whole, else one character.
fn script_token(rest: &str) -> usize {
    let name = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
    match name {
        0 => rest.chars().next().map_or(0, char::len_utf8),
        n => n,
    }
}

/// Reads a user's file as text, without a leading byte-order mark.
pub fn read_source(path: &Path) -> io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    strip_bom(&mut text);
    Ok(text)
}

/// Drops a leading byte-order mark (U+FEFF, which some editors write first), for text
/// read other than by [`read_source`].
pub fn strip_bom(text: &mut String) {
    const BOM: char = '\u{feff}';
    if text.starts_with(BOM) {
        text.replace_range(..BOM.len_utf8(), "");
    }
}

/// The 1-based character column of byte offset `byte` in `line` (rounded down to a
/// character boundary; past the end, the column after the last character).
pub fn column_of_byte(line: &str, byte: usize) -> usize {
    line[..floor_boundary(line, byte)].chars().count() + 1
}

/// The byte offset of 1-based character column `column` in `line`: always a character
/// boundary, the line's length for a column past its end.
pub fn byte_of_column(line: &str, column: usize) -> usize {
    line.char_indices().nth(column.saturating_sub(1)).map_or(line.len(), |(i, _)| i)
}

/// The 1-based line and character column of byte offset `byte` in `text`.
pub fn position_of_byte(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, byte)];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

fn floor_boundary(text: &str, byte: usize) -> usize {
    let mut i = byte.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One step of a path into a YAML document: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where a key of a block-style YAML document is: 1-based line, the key's column, and
/// the column of its value when the value is on the same line. `path` is the chain of
/// mapping keys from the root.
///
/// serde_yaml reports errors raised while deserialising a value at the start of the
/// enclosing mapping, a line or more away from the culprit; this finds the key itself.
/// It reads indentation only (no flow style, no anchors): when it cannot find the key it
/// returns `None` and the caller keeps serde_yaml's position.
pub fn yaml_key_position(text: &str, path: &[&str]) -> Option<(usize, usize, Option<usize>)> {
    let segs: Vec<Seg> = path.iter().map(|k| Seg::Key(k)).collect();
    yaml_path_position(text, &segs)
}

/// [`yaml_key_position`] for paths that go through lists (`actions[1].email.to`). For a
/// list item, the position is its `-`.
pub fn yaml_path_position(text: &str, path: &[Seg]) -> Option<(usize, usize, Option<usize>)> {
    let lines: Vec<&str> = text.lines().collect();
    // Where to search next, the indentation the search must stay deeper than, and whether
    // the first line searched is a list item's line, whose content follows its "- ".
    let (mut from, mut parent_indent, mut item_line): (usize, Option<usize>, bool) = (0, None, false);
    let mut found = None;
    for seg in path {
        let mut hit = None;
        let mut item_indent = None;
        let mut count = 0;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let mut content = line.trim_start();
            let mut indent = line.len() - content.len();
            if item_line && i == from {
                content = content.strip_prefix('-').map(str::trim_start).unwrap_or(content);
                indent = line.len() - content.len();
            }
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let is_item = content == "-" || content.starts_with("- ");
            let inside = match parent_indent {
                None => true,
                // A list may sit at its key's own indentation (`key:\n- a`).
                Some(p) => indent > p || (matches!(seg, Seg::Index(_)) && is_item && indent == p),
            };
            if !inside {
                break;
            }
            match seg {
                Seg::Key(key) => {
                    let rest = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")]
                        .into_iter()
                        .find_map(|k| content.strip_prefix(k.as_str()).map(str::len));
                    if let Some(rest_len) = rest {
                        let after = &line[line.len() - rest_len..];
                        let value_col = after
                            .find(|c: char| !c.is_whitespace())
                            .filter(|&o| !after[o..].starts_with('#'))
                            .map(|o| line.len() - rest_len + o + 1);
                        hit = Some((i, indent, value_col, false));
                        break;
                    }
                }
                Seg::Index(n) => {
                    if is_item && item_indent.is_none_or(|d| d == indent) {
                        item_indent = Some(indent);
                        if count == *n {
                            hit = Some((i, indent, None, true));
                            break;
                        }
                        count += 1;
                    }
                }
            }
        }
        let (i, indent, value_col, is_item) = hit?;
        // Scanned in bytes; reported in characters.
        let line = lines[i];
        found = Some((i + 1, column_of_byte(line, indent), value_col.map(|v| column_of_byte(line, v - 1))));
        from = if is_item { i } else { i + 1 };
        parent_indent = Some(indent);
        item_line = is_item;
    }
    found
}

/// The closest candidate to `word` within a small edit distance, for "did you mean".
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.len() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars; inputs are short names, so O(n·m) is nothing.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Parses a YAML file Keel reads (config, health model, later playbooks) into a strict
/// serde type, turning serde's error into a [`Diagnostic`]: the key's path, the position
/// of the key (or its value) found in the text, and a "did you mean" for misspelt keys.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Box<Diagnostic>> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
        // The path as owned segments (keys and list indices), for the locator.
        let segments: Vec<(Option<String>, usize)> = err
            .path()
            .iter()
            .map_while(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some((Some(key.clone()), 0)),
                serde_path_to_error::Segment::Seq { index } => Some((None, *index)),
                _ => None,
            })
            .collect();
        let key = err.path().to_string();
        let inner = err.into_inner();
        let mut message = inner.to_string();
        // serde_yaml appends " at line L column C"; the diagnostic shows that itself.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // ...and prefixes the path of the enclosing mapping, which the key line shows.
        if let Some((prefix, rest)) = message.split_once(": ") {
            if key.starts_with(prefix) && !prefix.contains(' ') {
                message = rest.to_string();
            }
        }
        let help = unknown_field_help(&message);
        let unknown_key = message.starts_with("unknown field");
        let segs: Vec<Seg> = segments
            .iter()
            .map(|(k, i)| match k {
                Some(k) => Seg::Key(k),
                None => Seg::Index(*i),
            })
            .collect();
        let position = match yaml_path_position(text, &segs) {
            // An unknown key is the key's fault; anything else is its value's.
            Some((line, key_col, value_col)) => {
                Some((line, if unknown_key { key_col } else { value_col.unwrap_or(key_col) }))
            }
            // serde_yaml's own lines also break at U+2028 and a lone `\r`; its byte offset
            // gives the position in Keel's convention.
            None => inner.location().map(|l| position_of_byte(text, l.index())),
        };
        Box::new(
            Diagnostic {
                file: path.to_path_buf(),
                position,
                // "." is the root; "?" is where serde could not tell (a syntax error).
                key: (key != "." && key != "?").then_some(key),
                message,
                snippet: None,
                help,
            }
            .with_source(text),
        )
    })
}

/// For serde's "unknown field `tigger`, expected one of `a`, `b`": the nearest expected name.
fn unknown_field_help(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let names = expected.split('`').skip(1).step_by(2);
    did_you_mean(unknown, names).map(|near| format!("did you mean `{near}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_their_values() {
        let text = "email:\n  # SMTP\n  smtp:\n    host: x\n    password: ${P}\napi:\n  token: y\n";
        assert_eq!(yaml_key_position(text, &["email", "smtp", "password"]), Some((5, 5, Some(15))));
        assert_eq!(yaml_key_position(text, &["api", "token"]), Some((7, 3, Some(10))));
        assert_eq!(yaml_key_position(text, &["email", "token"]), None);
        let cols = "sync:\n  accounts:\n    columns:\n      \"Account Name\": nam\n";
        assert_eq!(yaml_key_position(cols, &["sync", "accounts", "columns", "Account Name"]), Some((4, 7, Some(23))));
    }

    #[test]
    fn finds_keys_inside_list_items() {
        let text = "actions:\n  - task:\n      title: x\n  - email:\n      to: y\n      template: t\nexit: z\n";
        let path = [Seg::Key("actions"), Seg::Index(1), Seg::Key("email"), Seg::Key("template")];
        assert_eq!(yaml_path_position(text, &path), Some((6, 7, Some(17))));
        assert_eq!(yaml_path_position(text, &[Seg::Key("actions"), Seg::Index(1)]), Some((4, 3, None)));
        let flush = "steps:\n- after: 0d\n- after: 3d\n  when: w\n";
        let path = [Seg::Key("steps"), Seg::Index(1), Seg::Key("when")];
        assert_eq!(yaml_path_position(flush, &path), Some((4, 3, Some(9))));
        let path = [Seg::Key("steps"), Seg::Index(1), Seg::Key("after")];
        assert_eq!(yaml_path_position(flush, &path), Some((3, 3, Some(10))));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let line = "\ttitle: \"→→→→ é\u{301} 😀\" x";
        let x = line.rfind('x').unwrap();
        assert_eq!(column_of_byte(line, x), 21);
        assert_eq!(byte_of_column(line, 21), x);
        assert_eq!(byte_of_column(line, 1), 0);
        assert_eq!(byte_of_column(line, 99), line.len(), "past the end: the end");
        // Inside a character: rounded down to its start.
        assert_eq!(column_of_byte(line, 10), column_of_byte(line, 9));
        // CRLF lines: the \r ends a line, it does not start the next.
        assert_eq!(position_of_byte("a: →\r\nbé: [\r\n", 13), (2, 5));
        assert_eq!(position_of_byte("", 7), (1, 1));
    }

    #[test]
    fn the_locator_reports_character_columns() {
        let text = "sync:\n  accounts:\n    columns:\n      \"Numéro → ID\": idd\n";
        let path = ["sync", "accounts", "columns", "Numéro → ID"];
        assert_eq!(yaml_key_position(text, &path), Some((4, 7, Some(22))));
    }

    fn at(position: (usize, usize), text: &str) -> Diagnostic {
        Diagnostic {
            file: "p.yaml".into(),
            position: Some(position),
            key: Some("actions[0].task.title".into()),
            message: "unknown template variable `acount`".into(),
            snippet: None,
            help: Some("did you mean `account`?".into()),
        }
        .with_source(text)
    }

    #[test]
    fn the_caret_stands_under_the_character_the_column_names() {
        let text = "id: x\r\n  - task: { title: \"→→→→ {{ acount }}\" }\r\n";
        insta::assert_snapshot!(at((2, 20), text).to_string(), @r#"
        unknown template variable `acount`
         --> p.yaml:2:20
          |
        2 |   - task: { title: "→→→→ {{ acount }}" }
          |                    ^^^^^^^^^^^^^^^^^^^
          |
          = key: actions[0].task.title
          = help: did you mean `account`?
        "#);
        // A tab is one column, shown as four spaces with the caret still under its target.
        let rendered = at((1, 3), "\t😀x: y").to_string();
        assert!(rendered.contains("--> p.yaml:1:3"), "{rendered}");
        assert!(rendered.contains("1 |     😀x: y\n  |       ^"), "{rendered}");
    }

    #[test]
    fn any_text_and_any_position_render() {
        let texts = ["", "\u{feff}", "a\r", "\0\u{7}\u{1b}[31m", "e\u{301}\u{301}\u{301}", "👩‍👩‍👧 日本語\t→", "\r\n\r\n"];
        for text in texts {
            for position in [(0, 0), (1, 1), (1, 2), (1, 5), (2, 1), (3, 9), (usize::MAX, usize::MAX)] {
                let d = at(position, text);
                let (line, column) = d.position.unwrap();
                let lines = text.lines().count().max(1);
                assert!((1..=lines).contains(&line), "{position:?} in {text:?}: line {line}");
                let snippet = d.snippet.clone().unwrap();
                assert!((1..=snippet.chars().count() + 1).contains(&column), "{position:?} in {text:?}: {column}");
                assert!(d.to_string().contains(&format!("--> p.yaml:{line}:{column}")), "{d}");
            }
        }
        let unplaced = Diagnostic { position: None, snippet: None, ..at((1, 1), "") };
        assert!(unplaced.to_string().contains("--> p.yaml\n"), "{unplaced}");
    }

    #[test]
    fn a_leading_bom_is_dropped_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.yaml");
        std::fs::write(&path, "\u{feff}timezone: UTC # \u{feff}\n").unwrap();
        assert_eq!(read_source(&path).unwrap(), "timezone: UTC # \u{feff}\n");
        let mut twice = "\u{feff}\u{feff}x".to_string();
        strip_bom(&mut twice);
        assert_eq!(twice, "\u{feff}x", "a second U+FEFF is text (a zero-width no-break space)");
    }

    #[test]
    fn suggests_the_near_name_only() {
        let keys = ["trigger", "timezone", "data_dir"];
        assert_eq!(did_you_mean("tigger", keys), Some("trigger"));
        assert_eq!(did_you_mean("timezon", keys), Some("timezone"));
        assert_eq!(did_you_mean("completely_else", keys), None);
    }
}
