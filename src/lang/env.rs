//! `${VAR}` expansion in config values, so secrets and per-machine settings stay out of
//! files in git. `${VAR:-default}` supplies a default; `$$` is a literal `$`; a `$` not
//! followed by `{` or `$` is kept as it is.

/// Why a `${…}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A `${` without its `}`; the field is the whole input.
    #[error("unclosed `${{` in {0:?}")]
    Unclosed(String),
    /// What is between the braces is not a variable name (with an optional `:-default`).
    #[error("`${{{0}}}` is not a valid environment variable reference")]
    BadReference(String),
    /// A variable without a default that is not set.
    #[error("environment variable {0} is not set (set it, or write ${{{0}:-default}})")]
    Unset(String),
}

/// Expands every `${…}` in `input` using `lookup`. An unset variable without a default is
/// an error naming it, never a silent empty string.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| ExpandError::Unclosed(input.to_string()))?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&body[..end], None),
            };
            if !is_var_name(name) {
                return Err(ExpandError::BadReference(body[..end].to_string()));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(ExpandError::Unset(name.to_string())),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("smtp.example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_defaults_and_escapes() {
        assert_eq!(expand("smtp://${HOST}:25", env).unwrap(), "smtp://smtp.example.com:25");
        assert_eq!(expand("${MISSING:-fallback}", env).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}", env).unwrap(), "");
        assert_eq!(expand("cost: $$5 and $x", env).unwrap(), "cost: $5 and $x");
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let err = expand("${KEEL_SMTP_PASSWORD}", env).unwrap_err();
        assert_eq!(err, ExpandError::Unset("KEEL_SMTP_PASSWORD".into()));
        assert_eq!(
            err.to_string(),
            "environment variable KEEL_SMTP_PASSWORD is not set (set it, or write ${KEEL_SMTP_PASSWORD:-default})"
        );
        assert_eq!(expand("${HOST", env).unwrap_err().to_string(), "unclosed `${` in \"${HOST\"");
        assert_eq!(
            expand("${1BAD:-x}", env).unwrap_err().to_string(),
            "`${1BAD:-x}` is not a valid environment variable reference"
        );
    }
}
