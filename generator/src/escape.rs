//! Escaping for Quadlet unit files: the security boundary between manifest text and systemd.
//!
//! Quadlet reads a key's value in one of two ways, and each gets its own function:
//!
//! - **word keys** (`Exec=`, `Environment=`, `Label=`, `DNSSearch=`): split into words with systemd's
//!   rules (double quotes, C escapes). [`word`] always emits one double-quoted word with `\\`, `\"`
//!   and every control character C-escaped, so no value can end the word, the line or the key.
//! - **raw keys** (`Image=`, `Volume=`, `WorkingDir=`, `Entrypoint=`, `HealthCmd=`): the whole value,
//!   quotes and backslashes included, is passed on verbatim. [`raw`] therefore refuses quotes,
//!   backslashes, control characters and edge whitespace instead of escaping them.
//!
//! Either way Quadlet copies `%` and `$` unchanged into the generated `ExecStart=`, where systemd
//! would expand `%x` specifiers and `$VAR` references: both are doubled (`%%`, `$$`), which systemd
//! turns back into the literal character. These facts were checked against Podman 5.4's generator,
//! and the test suite re-checks them there.
//!
//! Every value that reaches a unit goes through [`Value`], which can only be built by these
//! functions: a manifest cannot add a directive because no code path writes unescaped text.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    #[error("contains a NUL character, which no unit file or process argument can carry")]
    Nul,
    #[error(
        "{0:?} is not allowed here: quotes, backslashes and control characters cannot be passed through this key"
    )]
    RawCharacter(char),
    #[error("must not start or end with whitespace")]
    EdgeWhitespace,
    #[error("must not be empty")]
    Empty,
    #[error("{0:?} is not allowed in a podswarm-generated value")]
    Generated(char),
}

/// A value that is safe to write after `Key=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn double_specials(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
}

/// One systemd word, double-quoted, for keys Quadlet splits into words.
pub fn word(s: &str) -> Result<Value, EscapeError> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => return Err(EscapeError::Nul),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            // C1 controls and the Unicode line/paragraph separators: escaped so that no tool that
            // treats them as line breaks can split the line.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(Value(out))
}

/// Several words on one line.
pub fn words<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Value, EscapeError> {
    let parts: Result<Vec<Value>, _> = items.into_iter().map(word).collect();
    Ok(Value(
        parts?
            .iter()
            .map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

/// A value for a key Quadlet takes verbatim.
pub fn raw(s: &str) -> Result<Value, EscapeError> {
    if s.is_empty() {
        return Err(EscapeError::Empty);
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(EscapeError::EdgeWhitespace);
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '\u{2028}' | '\u{2029}'))
    {
        return Err(if c == '\0' {
            EscapeError::Nul
        } else {
            EscapeError::RawCharacter(c)
        });
    }
    let mut out = String::with_capacity(s.len());
    double_specials(s, &mut out);
    Ok(Value(out))
}

/// A JSON array of strings for raw keys that podman parses as JSON (`Entrypoint=`, `HealthCmd=`).
///
/// JSON already escapes quotes, backslashes and control characters inside its strings, so the
/// text has none of the characters [`raw`] refuses outside them; only `%` and `$` need doubling.
pub fn json_array(items: &[String]) -> Result<Value, EscapeError> {
    if items.iter().any(|s| s.contains('\0')) {
        return Err(EscapeError::Nul);
    }
    let json = serde_json::to_string(items).unwrap_or_default();
    // serde_json leaves U+2028/U+2029 unescaped; escape them as JSON does for other controls.
    let json = json
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let mut out = String::with_capacity(json.len());
    double_specials(&json, &mut out);
    Ok(Value(out))
}

/// A value podswarm composed itself from validated parts (names, numbers, addresses, paths it
/// owns). It is checked anyway, so a bug upstream becomes an error instead of an injection.
pub fn generated(s: impl Into<String>) -> Result<Value, EscapeError> {
    let s = s.into();
    if s.is_empty() {
        return Err(EscapeError::Empty);
    }
    match s.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '_' | '.' | '/' | ':' | '@' | '=' | ',' | '[' | ']' | '+'
            ))
    }) {
        Some(c) => Err(EscapeError::Generated(c)),
        None => Ok(Value(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// systemd's word splitting and unescaping (`extract_first_word` with `EXTRACT_UNQUOTE |
    /// EXTRACT_CUNESCAPE`) followed by specifier and variable unescaping, as applied to
    /// `ExecStart=` — the oracle that proves [`word`] round-trips.
    pub(crate) fn systemd_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ' ') {
                chars.next();
            }
            if chars.peek().is_none() {
                return words;
            }
            let mut word = String::new();
            let mut quoted = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => quoted = !quoted,
                    ' ' if !quoted => break,
                    '\\' => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some('r') => word.push('\r'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            word.push(char::from(u8::from_str_radix(&hex, 16).unwrap_or(0)));
                        }
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            word.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap_or(0))
                                    .unwrap_or('?'),
                            );
                        }
                        Some(other) => word.push(other),
                        None => {}
                    },
                    '%' | '$' => {
                        assert_eq!(
                            chars.next(),
                            Some(c),
                            "a lone {c} would be expanded by systemd"
                        );
                        word.push(c);
                    }
                    c => word.push(c),
                }
            }
            words.push(word);
        }
    }

    #[test]
    fn examples() {
        assert_eq!(word("a b").map(|v| v.0), Ok("\"a b\"".into()));
        assert_eq!(
            word("100% $HOME").map(|v| v.0),
            Ok("\"100%% $$HOME\"".into())
        );
        assert_eq!(
            word("x\ny\"z\\").map(|v| v.0),
            Ok("\"x\\ny\\\"z\\\\\"".into())
        );
        assert_eq!(word("a\0b"), Err(EscapeError::Nul));
        assert_eq!(raw("/srv/a b%").map(|v| v.0), Ok("/srv/a b%%".into()));
        assert_eq!(raw("/a\"b"), Err(EscapeError::RawCharacter('"')));
        assert_eq!(raw(" /a"), Err(EscapeError::EdgeWhitespace));
        assert_eq!(
            json_array(&["sh".into(), "-c".into(), "echo $1 \"%\"".into()]).map(|v| v.0),
            Ok(r#"["sh","-c","echo $$1 \"%%\""]"#.into())
        );
        assert_eq!(generated("a b"), Err(EscapeError::Generated(' ')));
    }

    proptest! {
        #[test]
        fn any_word_round_trips_and_stays_on_one_line(s in any::<String>()) {
            match word(&s) {
                Ok(v) => {
                    prop_assert!(!v.0.contains('\n') && !v.0.contains('\r'));
                    prop_assert_eq!(systemd_words(&v.0), vec![s]);
                }
                Err(e) => prop_assert!(s.contains('\0'), "{e}"),
            }
        }

        #[test]
        fn raw_values_never_carry_line_breaks_or_quotes(s in any::<String>()) {
            // Refused exactly when the text has what a verbatim key cannot carry: a generator
            // that refused everything would otherwise pass.
            let refusable = s.is_empty()
                || s.starts_with(char::is_whitespace)
                || s.ends_with(char::is_whitespace)
                || s.chars().any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\' | '\u{2028}' | '\u{2029}'));
            match raw(&s) {
                Ok(v) => {
                    prop_assert!(!refusable, "accepted {s:?}");
                    prop_assert!(!v.0.chars().any(|c| c.is_control() || c == '"' || c == '\\'));
                    prop_assert_eq!(v.0.replace("%%", "%").replace("$$", "$"), s);
                }
                Err(e) => prop_assert!(refusable, "refused {s:?}: {e}"),
            }
        }

        #[test]
        fn ordinary_raw_values_are_accepted(s in "[A-Za-z0-9/%$._:=,+@-][A-Za-z0-9/%$._:=,+@ -]{0,40}[A-Za-z0-9/%$._:=,+@-]") {
            let v = raw(&s);
            prop_assert!(v.is_ok(), "{s:?}: {v:?}");
        }

        #[test]
        fn json_arrays_decode_back(items in proptest::collection::vec(any::<String>(), 0..4)) {
            match json_array(&items) {
                Ok(v) => {
                    prop_assert!(!v.0.chars().any(char::is_control));
                    let decoded: Vec<String> = serde_json::from_str(&v.0.replace("%%", "%").replace("$$", "$")).unwrap();
                    prop_assert_eq!(decoded, items);
                }
                // Only a NUL, which no argv can hold, is refused.
                Err(e) => prop_assert!(items.iter().any(|s| s.contains('\0')), "{e}"),
            }
        }
    }
}
