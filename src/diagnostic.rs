//! User-facing error reports about files CS Ops write (config now, playbooks later):
//! where (file:line:column), the offending line with a caret, what was expected, and a
//! "did you mean" when a near name exists. Rendered like rustc/cargo so it reads as a
//! message about *their* file, never as a crash.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the error has no position (e.g. unreadable file).
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key in question (`sync.accounts.columns`), when known.
    pub key: Option<String>,
    pub message: String,
    /// The source line at `position`, for the snippet.
    pub snippet: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// Fills in the snippet from the file's text.
    pub fn with_source(mut self, text: &str) -> Self {
        if let Some((line, _)) = self.position {
            self.snippet = text.lines().nth(line.saturating_sub(1)).map(str::to_string);
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The caller prefixes "error: ", as it does for every error the CLI prints.
        writeln!(f, "{}", self.message)?;
        let gutter = self.position.map_or(1, |(line, _)| line.to_string().len());
        let pad = " ".repeat(gutter);
        match self.position {
            Some((line, col)) => writeln!(f, "{pad}--> {}:{line}:{col}", self.file.display())?,
            None => writeln!(f, "{pad}--> {}", self.file.display())?,
        }
        if let (Some((line, col)), Some(snippet)) = (self.position, &self.snippet) {
            writeln!(f, "{pad} |")?;
            writeln!(f, "{line} | {snippet}")?;
            let start = col.saturating_sub(1).min(snippet.len());
            let rest = &snippet[start..];
            let width = caret_width(rest);
            let lead: String = snippet[..start].chars().map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            writeln!(f, "{pad} | {lead}{}", "^".repeat(width))?;
        }
        if let Some(key) = &self.key {
            writeln!(f, "{pad} = key: {key}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// How much of `rest` the caret underlines: a quoted scalar whole, else up to the `:` of
/// a key or the end of the value (a trailing comment excluded).
fn caret_width(rest: &str) -> usize {
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
    rest[..width.min(rest.len())].chars().count().max(1)
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
        found = Some((i + 1, indent + 1, value_col));
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
    fn suggests_the_near_name_only() {
        let keys = ["trigger", "timezone", "data_dir"];
        assert_eq!(did_you_mean("tigger", keys), Some("trigger"));
        assert_eq!(did_you_mean("timezon", keys), Some("timezone"));
        assert_eq!(did_you_mean("completely_else", keys), None);
    }
}
