//! The PMI-1 "simple" wire format, sans I/O: parsing and formatting of one line.
//!
//! Owns the grammar of a line (`cmd=<name> key=value key=value…\n`) and the validation of
//! keys and values. It must not do I/O: the client ([`super::Pmi`]) and the launcher's server
//! (`tocsin run`) both build on it.
//!
//! Grammar, as MPICH's `simple_pmi` and hydra speak it: tokens separated by one or more
//! spaces; every token is `key=value`, split at its first `=`; the first token's key is
//! `cmd`. Neither keys nor values may contain whitespace or `=` (a value may in principle
//! contain `=` after the first one, and we accept that when parsing, but never produce it).

use crate::error::{Error, Result};

/// A parsed PMI-1 line: the command and its `key=value` fields, in wire order.
///
/// Borrowed from the text it was parsed from. The `cmd=` token is not repeated in
/// [`fields`](Self::fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// The value of the leading `cmd=` token, e.g. `"barrier_in"`.
    pub cmd: &'a str,
    /// The other `key=value` tokens, in the order they appeared.
    pub fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Line<'a> {
    /// The value of field `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The value of field `key`, or an [`Error::Pmi`] quoting `text` (the whole line) if it is
    /// absent.
    ///
    /// # Errors
    /// [`Error::Pmi`] naming the missing field, the command and the line.
    pub fn require(&self, key: &str, text: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| {
            Error::Pmi(format!(
                "cmd={} is missing field `{key}` in line {:?}",
                self.cmd,
                text.trim_end()
            ))
        })
    }

    /// The integer value of field `key`.
    ///
    /// # Errors
    /// [`Error::Pmi`] if the field is absent or not a decimal integer of type `T`.
    pub fn require_int<T: std::str::FromStr>(&self, key: &str, text: &str) -> Result<T> {
        let v = self.require(key, text)?;
        v.parse().map_err(|_| {
            Error::Pmi(format!(
                "cmd={}: field `{key}={v}` is not a valid integer in line {:?}",
                self.cmd,
                text.trim_end()
            ))
        })
    }

    /// The `rc` field as an integer, `None` if absent.
    ///
    /// # Errors
    /// [`Error::Pmi`] if `rc` is present but not an integer.
    pub fn rc(&self, text: &str) -> Result<Option<i64>> {
        match self.get("rc") {
            None => Ok(None),
            Some(_) => self.require_int("rc", text).map(Some),
        }
    }
}

/// Parses one line (a trailing `\n` or `\r\n` is ignored).
///
/// # Errors
/// [`Error::Pmi`] quoting the line if it is empty, does not start with `cmd=<name>`, holds a
/// token without `=` or with an empty key, or repeats a key.
pub fn parse(text: &str) -> Result<Line<'_>> {
    let bad = |why: &str| Error::Pmi(format!("malformed PMI line ({why}): {:?}", text.trim_end()));
    let body = text.trim_end_matches(['\n', '\r']);
    if body.contains('\n') {
        return Err(bad("embedded newline"));
    }
    let mut tokens = body.split([' ', '\t']).filter(|t| !t.is_empty());
    let first = tokens.next().ok_or_else(|| bad("empty line"))?;
    let cmd = match first.split_once('=') {
        Some(("cmd", c)) if !c.is_empty() => c,
        _ => return Err(bad("it must start with cmd=<command>")),
    };
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for tok in tokens {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| bad(&format!("token {tok:?} is not key=value")))?;
        if k.is_empty() {
            return Err(bad(&format!("token {tok:?} has an empty key")));
        }
        if k == "cmd" || fields.iter().any(|(k2, _)| *k2 == k) {
            return Err(bad(&format!("key `{k}` appears twice")));
        }
        fields.push((k, v));
    }
    Ok(Line { cmd, fields })
}

/// Formats a line: `cmd=<cmd> k1=v1 k2=v2…\n`.
///
/// Does not validate; callers check user-supplied tokens with [`check_token`] first.
pub fn format(cmd: &str, fields: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(
        8 + cmd.len()
            + fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    s.push_str("cmd=");
    s.push_str(cmd);
    for (k, v) in fields {
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s.push('\n');
    s
}

/// Checks that `s` can travel as one PMI-1 token: non-empty, at most `max` bytes, and free
/// of whitespace, `=` and control characters. `what` names it in the error (`"key"`,
/// `"value"`, …).
///
/// # Errors
/// [`Error::Pmi`] naming `what`, the offending text and the rule it breaks.
pub fn check_token(what: &str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::Pmi(format!(
            "PMI {what} is empty; PMI-1 cannot carry an empty {what}"
        )));
    }
    if s.len() > max {
        return Err(Error::Pmi(format!(
            "PMI {what} {:?} is {} bytes long; the launcher accepts at most {max}",
            preview(s),
            s.len()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || *c == '=' || c.is_control())
    {
        return Err(Error::Pmi(format!(
            "PMI {what} {:?} contains {c:?}; PMI-1 {what}s cannot contain whitespace, '=' or \
             control characters (hex-encode binary or free text)",
            preview(s)
        )));
    }
    Ok(())
}

/// First 64 characters of `s`, for error messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(64).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response() {
        let l = parse("cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n").unwrap();
        assert_eq!(l.cmd, "response_to_init");
        assert_eq!(
            l.fields,
            vec![("pmi_version", "1"), ("pmi_subversion", "1"), ("rc", "0")]
        );
        assert_eq!(l.rc("").unwrap(), Some(0));
        assert_eq!(l.get("nope"), None);
    }

    #[test]
    fn tolerates_extra_spaces_and_crlf() {
        let l = parse("cmd=get_result  rc=0   msg=success value=abc \r\n").unwrap();
        assert_eq!(l.cmd, "get_result");
        assert_eq!(l.get("value"), Some("abc"));
        assert_eq!(l.get("msg"), Some("success"));
    }

    #[test]
    fn value_splits_at_first_equal_and_may_be_empty() {
        let l = parse("cmd=x a=b=c d=").unwrap();
        assert_eq!(l.get("a"), Some("b=c"));
        assert_eq!(l.get("d"), Some(""));
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "",
            "\n",
            "barrier_in",
            "key=v cmd=x",
            "cmd= a=b",
            "cmd=x novalue",
            "cmd=x =v",
            "cmd=x a=1 a=2",
            "cmd=x cmd=y",
            "cmd=x a=1\nb=2",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, Error::Pmi(_)), "{bad:?}: {e}");
            assert!(e.to_string().contains("malformed PMI line"), "{e}");
        }
    }

    #[test]
    fn require_and_ints() {
        let text = "cmd=maxes kvsname_max=256 keylen_max=x";
        let l = parse(text).unwrap();
        assert_eq!(l.require_int::<usize>("kvsname_max", text).unwrap(), 256);
        let e = l
            .require_int::<usize>("keylen_max", text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keylen_max=x") && e.contains("cmd=maxes"), "{e}");
        let e = l.require("vallen_max", text).unwrap_err().to_string();
        assert!(e.contains("vallen_max") && e.contains(text), "{e}");
        assert!(parse("cmd=a rc=zz").unwrap().rc("").is_err());
    }

    #[test]
    fn format_round_trips() {
        let s = format("put", &[("kvsname", "k"), ("key", "a"), ("value", "b")]);
        assert_eq!(s, "cmd=put kvsname=k key=a value=b\n");
        let l = parse(&s).unwrap();
        assert_eq!(l.cmd, "put");
        assert_eq!(l.get("value"), Some("b"));
        assert_eq!(format("barrier_in", &[]), "cmd=barrier_in\n");
    }

    #[test]
    fn token_rules() {
        assert!(check_token("key", "tocsin.shm-0", 64).is_ok());
        for (bad, what) in [
            ("", "empty"),
            ("a b", "' '"),
            ("a=b", "'='"),
            ("a\nb", "'\\n'"),
            ("a\tb", "'\\t'"),
        ] {
            let e = check_token("key", bad, 64).unwrap_err().to_string();
            assert!(e.contains(what), "{bad:?}: {e}");
        }
        let e = check_token("value", &"x".repeat(65), 64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("65 bytes") && e.contains("at most 64"), "{e}");
    }

    /// A token the wire can carry: what [`check_token`] accepts, from a small alphabet so
    /// that proptest explores separators-adjacent characters too.
    fn token() -> impl proptest::strategy::Strategy<Value = String> {
        "[a-zA-Z0-9_.:/+-]{1,24}"
    }

    proptest::proptest! {
        /// Arbitrary text never panics the parser; what it accepts is well formed.
        #[test]
        fn parse_never_panics(text in proptest::prelude::any::<String>()) {
            if let Ok(l) = parse(&text) {
                proptest::prop_assert!(!l.cmd.is_empty());
                for (k, _) in &l.fields {
                    proptest::prop_assert!(!k.is_empty() && *k != "cmd");
                }
            }
        }

        /// Arbitrary bytes, decoded lossily as the client would see them, never panic.
        #[test]
        fn parse_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
            let _ = check_token("value", &text, 64);
        }

        /// format then parse gives back the command and the fields, in order.
        #[test]
        fn format_parse_round_trip(
            cmd in token(),
            fields in proptest::collection::btree_map(token(), token(), 0..8),
        ) {
            let fields: Vec<(String, String)> =
                fields.into_iter().filter(|(k, _)| k != "cmd").collect();
            let refs: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for (k, v) in &refs {
                proptest::prop_assert!(check_token("key", k, 64).is_ok());
                proptest::prop_assert!(check_token("value", v, 64).is_ok());
            }
            let text = format(&cmd, &refs);
            let l = parse(&text).unwrap();
            proptest::prop_assert_eq!(l.cmd, cmd.as_str());
            proptest::prop_assert_eq!(l.fields, refs);
        }

        /// Truncating a valid line anywhere never panics (a server that closes mid-line).
        #[test]
        fn truncated_lines_never_panic(
            cmd in token(),
            fields in proptest::collection::btree_map(token(), token(), 0..6),
            cut in 0usize..200,
        ) {
            let refs: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let text = format(&cmd, &refs);
            let cut = cut.min(text.len());
            if let Ok(l) = parse(&text[..cut]) {
                let _ = l.rc(&text);
            }
        }
    }
}
