//! What was wrong with a JSON text, and where: the line and column of the byte it was found at.

use std::fmt;

/// A JSON text that is not well-formed: what was expected or found, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    what: &'static str,
    line: usize,
    column: usize,
}

impl Error {
    /// The error `what`, found at byte `at` of `text`.
    pub(crate) fn at(text: &[u8], at: usize, what: &'static str) -> Error {
        let before = &text[..at.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |newline| newline + 1);
        Error { what, line, column: before.len() - line_start + 1 }
    }

    /// What was wrong, without the place.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The line it was found on, from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column (in bytes) it was found at, from 1.
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.what, self.line, self.column)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_place_is_a_line_and_a_column() {
        let text = b"[1,\n  2,\n  x]";
        let error = Error::at(text, 11, "expected a value");
        assert_eq!((error.line(), error.column()), (3, 3));
        assert_eq!(error.to_string(), "expected a value at line 3 column 3");
        assert_eq!(Error::at(text, 0, "x").column(), 1);
        // At the very end (a text cut short).
        assert_eq!((Error::at(b"[", 1, "x").line(), Error::at(b"[", 1, "x").column()), (1, 2));
    }
}
