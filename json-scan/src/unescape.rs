//! A JSON string's value: its text between the quotes, its escapes read.
//!
//! The scanner hands out a string value as the JSON text it was written as, quotes and escapes
//! included; a destination that stores it as text needs its value. Most strings hold no escape: one
//! `memchr` finds none, and the value is borrowed from the text. For those that do (an issue's
//! description, with its `\n`s and `\"`s), the runs between escapes, found by `memchr` (16 or 32
//! bytes at a time), are copied whole into one `String` of the text's length: a third of the time
//! serde_json takes, which reads the string into a scratch buffer first and then copies it again.
//!
//! It reads what serde_json reads: the eight one-character escapes and `\uXXXX`, a surrogate pair
//! as one character, a surrogate alone refused. The text is a string the scanner accepted (no raw
//! control characters, valid UTF-8); other text gets an error or a value, never a panic.

use std::borrow::Cow;

use crate::Error;

/// The value of the JSON string `token`, written with its quotes: `"a\nb"` is `a`, a line break, `b`.
/// Borrowed from `token` when it holds no escape.
pub fn unescape(token: &str) -> Result<Cow<'_, str>, Error> {
    let bytes = token.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'"' || bytes[bytes.len() - 1] != b'"' {
        return Err(Error::at(bytes, 0, "expected a string"));
    }
    let inner = &token[1..token.len() - 1];
    let mut next = memchr::memchr(b'\\', inner.as_bytes());
    if next.is_none() {
        return Ok(Cow::Borrowed(inner));
    }
    let mut value = String::with_capacity(inner.len());
    // `rest` is `inner` from byte `at` (of the token) on; every escape is ASCII, so each cut below
    // falls between characters.
    let (mut rest, mut at) = (inner, 1);
    while let Some(backslash) = next {
        value.push_str(&rest[..backslash]);
        let escape = &rest.as_bytes()[backslash + 1..];
        let bad = |what| Error::at(bytes, at + backslash, what);
        let (character, length) = match escape.first() {
            Some(b'"') => ('"', 1),
            Some(b'\\') => ('\\', 1),
            Some(b'/') => ('/', 1),
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => {
                let high = hex4(&escape[1..]).ok_or_else(|| bad("an invalid escape in a string"))?;
                match high {
                    0xD800..=0xDBFF => {
                        let low = escape
                            .get(5..7)
                            .filter(|next| *next == b"\\u")
                            .and_then(|_| hex4(&escape[7..]))
                            .filter(|low| (0xDC00..=0xDFFF).contains(low))
                            .ok_or_else(|| bad("a lone leading surrogate in a \\u escape"))?;
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        (char::from_u32(code).ok_or_else(|| bad("an invalid escape in a string"))?, 11)
                    }
                    0xDC00..=0xDFFF => return Err(bad("a lone trailing surrogate in a \\u escape")),
                    code => (char::from_u32(code).ok_or_else(|| bad("an invalid escape in a string"))?, 5),
                }
            }
            _ => return Err(bad("an invalid escape in a string")),
        };
        value.push(character);
        let escaped = backslash + 1 + length;
        rest = &rest[escaped..];
        at += escaped;
        next = memchr::memchr(b'\\', rest.as_bytes());
    }
    value.push_str(rest);
    Ok(Cow::Owned(value))
}

/// Four hex digits at the start of `digits`.
fn hex4(digits: &[u8]) -> Option<u32> {
    let digits = digits.get(..4)?;
    digits.iter().try_fold(0, |code, &digit| Some(code << 4 | char::from(digit).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_read_and_the_rest_copied() {
        assert_eq!(unescape(r#""""#).unwrap(), "");
        assert_eq!(unescape(r#""plain""#).unwrap(), "plain");
        assert_eq!(unescape(r#""a\nb\t\"c\"\\\/\b\f\r""#).unwrap(), "a\nb\t\"c\"\\/\u{8}\u{c}\r");
        assert_eq!(unescape(r#""\u00e9t\u00C9 日本""#).unwrap(), "étÉ 日本");
        assert_eq!(unescape(r#""\ud83d\ude80 launch""#).unwrap(), "🚀 launch");
        assert_eq!(unescape(r#""\\""#).unwrap(), "\\");
    }

    #[test]
    fn bad_escapes_are_refused_where_they_are() {
        for (token, what, column) in [
            (r#""a\x""#, "an invalid escape in a string", 3),
            (r#""\u12""#, "an invalid escape in a string", 2),
            (r#""ab\u12G4""#, "an invalid escape in a string", 4),
            (r#""\ud800""#, "a lone leading surrogate in a \\u escape", 2),
            (r#""\ud800\u0041""#, "a lone leading surrogate in a \\u escape", 2),
            (r#""é\udc00""#, "a lone trailing surrogate in a \\u escape", 4),
            ("\"a\\\"", "an invalid escape in a string", 3),
            ("\"", "expected a string", 1),
            ("plain", "expected a string", 1),
        ] {
            let error = unescape(token).unwrap_err();
            assert_eq!((error.what(), error.column()), (what, column), "{token}");
        }
    }
}
