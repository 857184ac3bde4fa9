//! The scanner: JSON's grammar (RFC 8259) walked over a text, one value at a time, building nothing.
//!
//! A caller reads a page of records with [`Scanner::open_array`], [`Scanner::next_element`] and
//! [`Scanner::object`] (which hands each field to a closure: into a reused list, or looked at and
//! dropped) or [`Scanner::object_in_order`] (the same, names matched with the record before's), or
//! one record with [`Scanner::object`] alone, then [`Scanner::finish`].
//! Values are skipped by [`Scanner::value`] without recursion: the containers still open are kept as
//! one bit each (object or array) in a `u128`, which is also what bounds nesting to 128 levels.

use std::borrow::Cow;

use crate::error::Error;
use crate::key_order::KeyOrder;
use crate::runs::{digits_end, next_special};
use crate::short_eq::short_eq;
use crate::utf8::multibyte_run_end;

/// One field of an object: its name (borrowed unless written with escapes) and its value's JSON text.
pub type Field<'a> = (Cow<'a, str>, &'a str);

/// How deep values may nest (serde_json's default recursion limit).
const MAX_DEPTH: u32 = 128;

/// Reads one JSON text from the start.
pub struct Scanner<'a> {
    /// The text, not yet known to be UTF-8: the scanner checks the bytes of multi-byte characters
    /// as it meets them in strings (anywhere else they are not JSON).
    text: &'a [u8],
    /// The next byte to read.
    pos: usize,
    array: ArrayState,
    /// Whether the whitespace read so far held a line break.
    line_breaks: bool,
}

/// Where the scanner is in the array opened by [`Scanner::open_array`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    NotOpen,
    BeforeFirst,
    AfterElement,
    Closed,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`, a `str` or bytes: every text it returns is UTF-8, checked
    /// as it reads (a body need not be checked beforehand; one that is costs nothing more).
    pub fn new<T: AsRef<[u8]> + ?Sized>(text: &'a T) -> Scanner<'a> {
        Scanner { text: text.as_ref(), pos: 0, array: ArrayState::NotOpen, line_breaks: false }
    }

    /// Expect the text to be an array, and enter it: its elements are then read one by one, each
    /// after a [`Scanner::next_element`] that said there is one.
    pub fn open_array(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        self.expect(b'[', "expected '[' (a JSON array)")?;
        self.array = ArrayState::BeforeFirst;
        Ok(())
    }

    /// Whether the open array has another element: reads the `,` before it, or the closing `]`.
    pub fn next_element(&mut self) -> Result<bool, Error> {
        self.skip_whitespace();
        let more = match (self.array, self.peek()) {
            (ArrayState::BeforeFirst | ArrayState::AfterElement, Some(b']')) => {
                self.pos += 1;
                false
            }
            (ArrayState::BeforeFirst, _) => true,
            (ArrayState::AfterElement, Some(b',')) => {
                self.pos += 1;
                true
            }
            (ArrayState::AfterElement, _) => return Err(self.error("expected ',' or ']' after an element")),
            (ArrayState::NotOpen | ArrayState::Closed, _) => return Err(self.error("no array is open here")),
        };
        self.array = if more { ArrayState::AfterElement } else { ArrayState::Closed };
        Ok(more)
    }

    /// Read one object, handing `each` every field's name and value text, in order.
    pub fn object(&mut self, each: impl FnMut(Field<'a>)) -> Result<(), Error> {
        self.fields(None, each).map(drop)
    }

    /// Read one object as [`Scanner::object`] does, expecting its fields in `order`, that of the
    /// object read with it before (see [`KeyOrder`]): a field named as expected there is matched by
    /// one comparison of its `"name":` instead of being read. Returns whether the object had exactly
    /// the fields of `order`, in that order; either way `order` is this object's afterwards.
    pub fn object_in_order(&mut self, order: &mut KeyOrder, each: impl FnMut(Field<'a>)) -> Result<bool, Error> {
        self.fields(Some(order), each)
    }

    /// An object's fields, expected in `order` if there is one (inlined: without one, nothing of it
    /// is left in [`Scanner::object`]); whether they were that order's.
    #[inline(always)]
    fn fields(&mut self, mut order: Option<&mut KeyOrder>, mut each: impl FnMut(Field<'a>)) -> Result<bool, Error> {
        self.skip_whitespace();
        self.expect(b'{', "expected '{' (a JSON object)")?;
        self.skip_whitespace();
        let mut same = true;
        let mut index = 0;
        if self.peek() != Some(b'}') {
            loop {
                self.skip_whitespace();
                let start = self.pos;
                let key = order.as_deref().map_or(&[][..], |order| order.expected(index));
                let name = match self.text.get(start..start + key.len()) {
                    // The expected `"name":` was learned below from a name without escapes, then its `:`.
                    Some(here) if !key.is_empty() && short_eq(here, key) => {
                        self.pos += key.len();
                        Cow::Borrowed(self.token_text(start + 1, self.pos - 2))
                    }
                    _ => {
                        same = false;
                        let name = self.name()?;
                        let name_end = self.pos;
                        self.skip_whitespace();
                        self.expect(b':', "expected ':' after a field name")?;
                        if let Some(order) = order.as_deref_mut() {
                            // Matchable only as written compactly and without escapes.
                            let compact = matches!(name, Cow::Borrowed(_)) && self.pos == name_end + 1;
                            order.learn(index, if compact { &self.text[start..self.pos] } else { &[] });
                        }
                        name
                    }
                };
                let value = self.field_value()?;
                each((name, value));
                index += 1;
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => break,
                    _ => return Err(self.error("expected ',' or '}' after a field")),
                }
            }
        }
        self.pos += 1;
        Ok(match order {
            Some(order) => {
                let same = same && index == order.len();
                order.end(index);
                same
            }
            None => false,
        })
    }

    /// A field's value, as [`Scanner::value`], but read here, in the field loop, with no call: a
    /// string, number or literal (most fields) first; an object or an array by the skipping loop
    /// inlined. In wasm a call there took the scanner by reference, so the loop read the text and
    /// the position back from linear memory after each one (and before, `value`'s entry alone cost a
    /// quarter as much as the rest of a string field): inlined, a page of issues costs the plugin
    /// 3.31 -> 3.10 M instructions.
    #[inline(always)]
    fn field_value(&mut self) -> Result<&'a str, Error> {
        self.skip_whitespace();
        let start = self.pos;
        match self.scalar()? {
            true => Ok(self.token_text(start, self.pos)),
            false => {
                self.skip_value_inline()?;
                Ok(self.token_text(start, self.pos))
            }
        }
    }

    /// A string, number or literal at `pos` (whitespace skipped), read whole; `false`, with nothing
    /// read, when no such value starts there.
    #[inline(always)]
    fn scalar(&mut self) -> Result<bool, Error> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => return Ok(false),
        }
        .map(|()| true)
    }

    /// Read one value, checking that it is well-formed, and return its JSON text.
    pub fn value(&mut self) -> Result<&'a str, Error> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip_value()?;
        Ok(self.token_text(start, self.pos))
    }

    /// Whether the text read so far held a line break (between tokens: JSON strings cannot hold one),
    /// so that a value just read, pretty-printed over several lines, can be told from the compact
    /// JSON most APIs send without searching it again.
    pub fn saw_line_breaks(&self) -> bool {
        self.line_breaks
    }

    /// Expect nothing but whitespace from here to the end.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        match self.pos < self.text.len() {
            true => Err(self.error("unexpected characters after the JSON value")),
            false => Ok(()),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    // Out of the way of the hot paths, so that `expect` and its callers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn error(&self, what: &'static str) -> Error {
        Error::at(self.bytes(), self.pos, what)
    }

    #[inline]
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Error> {
        match self.peek() == Some(byte) {
            true => {
                self.pos += 1;
                Ok(())
            }
            false => Err(self.error(what)),
        }
    }

    // `peek`, `skip_whitespace`, `name`, `string` and `member_name` run for every field: inlined,
    // because out of line each call read the scanner back from memory (in wasm, from the shadow
    // stack in linear memory); 15 % of a page's time, natively and in wasm alike.
    //
    // Compact JSON (what APIs send) has no whitespace between tokens: one byte is looked at, and the
    // loop over a run of whitespace is entered only when there is one (in the plugin every loop
    // entry and turn costs an epoch check, four per field when this was the loop itself).
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        if let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.skip_whitespace_run();
        }
    }

    #[inline(always)]
    fn skip_whitespace_run(&mut self) {
        let reached = whitespace_end(self.text, self.pos);
        self.pos = reached.at();
        self.line_breaks |= reached.flag();
    }

    /// The text from `start` to `end`, both at the edges of tokens the grammar was checked for.
    #[inline(always)]
    fn token_text(&self, start: usize, end: usize) -> &'a str {
        // Each edge is either just before an ASCII byte the grammar matched (a quote, a bracket, a
        // digit, a literal's first letter) or just after one; between them, every byte outside a
        // string is one the grammar matched (ASCII), and every string's bytes were checked to be
        // UTF-8 when it was read (`string_from`). Slicing with checks tested the edges again for
        // every field (a fifth of the field loop in wasm).
        debug_assert!(start <= end && end <= self.text.len() && std::str::from_utf8(&self.text[start..end]).is_ok());
        // SAFETY: `start <= end <= text.len()`, and the bytes between are UTF-8, as above.
        unsafe { std::str::from_utf8_unchecked(self.text.get_unchecked(start..end)) }
    }

    /// A field name: borrowed from the text unless it holds escapes, then unescaped.
    #[inline(always)]
    fn name(&mut self) -> Result<Cow<'a, str>, Error> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected '\"' (a field name)"));
        }
        let start = self.pos;
        if !self.string()? {
            return Ok(Cow::Borrowed(self.token_text(start + 1, self.pos - 1)));
        }
        crate::unescape(self.token_text(start, self.pos))
            .map_err(|_| Error::at(self.bytes(), start, "a field name whose escapes are not a valid string"))
    }

    /// From a `"` to just past the closing one; says whether the string held escapes.
    ///
    /// A string without escapes (nearly all of them) is read without a loop here: in the plugin
    /// every loop turn costs an epoch check (see `runs`).
    #[inline(always)]
    fn string(&mut self) -> Result<bool, Error> {
        let bytes = self.bytes();
        let at = next_special(bytes, self.pos + 1);
        if bytes.get(at) == Some(&b'"') {
            self.pos = at + 1;
            return Ok(false);
        }
        self.string_from(at)
    }

    /// The rest of a string from `at`, out of line (see [`string_rest`]): by value, not through
    /// `self`, the scanner's fields stay in registers across the call (wasm with epoch checks, as
    /// the host runs plugins: 3.69 -> 3.59 M instructions a page of issues).
    #[inline(always)]
    fn string_from(&mut self, at: usize) -> Result<bool, Error> {
        let reached = string_rest(self.text, self.pos, at);
        self.pos = reached.at();
        match reached.fault() {
            None => Ok(reached.flag()),
            Some(fault) => Err(self.error(fault.message())),
        }
    }

    /// `true`, `false` or `null`, its first letter at `pos`.
    #[inline(always)]
    fn literal(&mut self, word: &'static [u8]) -> Result<(), Error> {
        let bytes = self.bytes();
        let here = &bytes[self.pos..bytes.len().min(self.pos + word.len())];
        match short_eq(here, word) {
            true => {
                self.pos += word.len();
                Ok(())
            }
            false => Err(self.error("expected a value (true, false and null are the only words)")),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, its first character at `pos`.
    #[inline(always)]
    fn number(&mut self) -> Result<(), Error> {
        let bytes = self.bytes();
        let digits = |at: usize| digits_end(bytes, at);
        let mut at = self.pos;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        at = match bytes.get(at) {
            Some(b'0') => at + 1,
            Some(b'1'..=b'9') => digits(at + 1),
            _ => {
                self.pos = at;
                return Err(self.error("expected a digit in a number"));
            }
        };
        if bytes.get(at) == Some(&b'.') {
            let after = digits(at + 1);
            if after == at + 1 {
                self.pos = after;
                return Err(self.error("expected a digit after a number's '.'"));
            }
            at = after;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let after = digits(at);
            if after == at {
                self.pos = after;
                return Err(self.error("expected a digit in a number's exponent"));
            }
            at = after;
        }
        self.pos = at;
        Ok(())
    }

    /// After `"` `name` `"` of an object's member: the `:`.
    #[inline(always)]
    fn member_name(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected '\"' (a field name)"));
        }
        self.string()?;
        self.skip_whitespace();
        self.expect(b':', "expected ':' after a field name")
    }

    /// [`Scanner::skip_value_inline`], out of line, for [`Scanner::value`].
    #[inline(never)]
    fn skip_value(&mut self) -> Result<(), Error> {
        self.skip_value_inline()
    }

    /// One whole value from `pos` (whitespace already skipped), nested containers and all.
    #[inline(always)]
    fn skip_value_inline(&mut self) -> Result<(), Error> {
        // The containers open inside this value, innermost in bit 0: 1 for an object, 0 for an array.
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value starts here.
            self.skip_whitespace();
            if !self.scalar()? {
                match self.peek() {
                    Some(open @ (b'{' | b'[')) => {
                        if depth == MAX_DEPTH {
                            return Err(self.error("values nested more than 128 levels deep"));
                        }
                        self.pos += 1;
                        self.skip_whitespace();
                        let close = if open == b'{' { b'}' } else { b']' };
                        if self.peek() == Some(close) {
                            self.pos += 1;
                        } else {
                            objects = (objects << 1) | u128::from(open == b'{');
                            depth += 1;
                            if open == b'{' {
                                self.member_name()?;
                            }
                            continue;
                        }
                    }
                    Some(_) => return Err(self.error("expected a value")),
                    None => return Err(self.error("the text ends where a value should be")),
                }
            }
            // After a value: close the containers that end here. Most values are followed by a `,`
            // instead, so the loop is entered only at a closing bracket (in the plugin every loop
            // turn costs an epoch check).
            if depth == 0 {
                return Ok(());
            }
            self.skip_whitespace();
            if let Some(b'}' | b']') = self.peek() {
                loop {
                    let close = if objects & 1 == 1 { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        break;
                    }
                    self.pos += 1;
                    objects >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                    self.skip_whitespace();
                }
            }
            // Then on to the next member or element.
            let in_object = objects & 1 == 1;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    if in_object {
                        self.member_name()?;
                    }
                }
                _ if in_object => return Err(self.error("expected ',' or '}' in an object")),
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }
}

/// What an out-of-line step of the scanner returns, in one machine word: the position it reached
/// and a flag (a string held escapes; whitespace held a line break), or the position of a fault and
/// what it was. The steps take the text and a position by value and return this, never the scanner by
/// reference: in wasm, a scanner passed by reference lives in linear memory, and every field the
/// record loop reads of it is a load again after such a call.
#[derive(Clone, Copy)]
struct Reached(u64);

impl Reached {
    const FLAG: u64 = 1 << 48;
    const FAULT_SHIFT: u32 = 56;

    #[inline(always)]
    fn ok(at: usize, flag: bool) -> Reached {
        Reached(at as u64 | (u64::from(flag) * Reached::FLAG))
    }

    #[inline(always)]
    fn failed(at: usize, what: Fault) -> Reached {
        Reached(at as u64 | (what as u64) << Reached::FAULT_SHIFT)
    }

    /// The position (texts are far below 2^48 bytes: a wasm32 memory is 2^32, a native address space 2^47).
    #[inline(always)]
    fn at(self) -> usize {
        (self.0 & (Reached::FLAG - 1)) as usize
    }

    #[inline(always)]
    fn flag(self) -> bool {
        self.0 & Reached::FLAG != 0
    }

    /// What was wrong, if anything.
    #[inline(always)]
    fn fault(self) -> Option<Fault> {
        match self.0 >> Reached::FAULT_SHIFT {
            0 => None,
            1 => Some(Fault::NotUtf8),
            2 => Some(Fault::BadEscape),
            3 => Some(Fault::Control),
            _ => Some(Fault::Unclosed),
        }
    }
}

/// The faults a step out of line can meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    NotUtf8 = 1,
    BadEscape,
    Control,
    Unclosed,
}

impl Fault {
    fn message(self) -> &'static str {
        match self {
            Fault::NotUtf8 => "a string that is not UTF-8 text",
            Fault::BadEscape => "an invalid escape in a string",
            Fault::Control => "a control character in a string (it must be escaped)",
            Fault::Unclosed => "a string that is never closed",
        }
    }
}

/// Past a run of whitespace from `at`; the flag: whether it held a line break.
#[inline(never)]
fn whitespace_end(bytes: &[u8], mut at: usize) -> Reached {
    let mut line_breaks = false;
    while let Some(&byte @ (b' ' | b'\n' | b'\r' | b'\t')) = bytes.get(at) {
        line_breaks |= byte == b'\n' || byte == b'\r';
        at += 1;
    }
    Reached::ok(at, line_breaks)
}

/// The rest of the string opened at `start`, from `at`, its first escape or multi-byte character:
/// just past its closing quote, flagged when it held escapes.
#[inline(never)]
fn string_rest(bytes: &[u8], start: usize, mut at: usize) -> Reached {
    let mut escaped = false;
    loop {
        match bytes.get(at) {
            Some(b'"') => return Reached::ok(at + 1, escaped),
            Some(&byte) if byte > 0x7f => match multibyte_run_end(bytes, at) {
                Ok(end) => at = end,
                Err(invalid) => return Reached::failed(invalid, Fault::NotUtf8),
            },
            Some(b'\\') => {
                escaped = true;
                match bytes.get(at + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
                    Some(b'u')
                        if bytes.get(at + 2..at + 6).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        at += 6
                    }
                    _ => return Reached::failed(at, Fault::BadEscape),
                }
            }
            Some(_) => return Reached::failed(at, Fault::Control),
            None => return Reached::failed(start, Fault::Unclosed),
        }
        at = next_special(bytes, at);
    }
}

/// Check that `text` (a `str` or bytes) is one well-formed JSON value, with nothing but whitespace
/// around it.
pub fn validate<T: AsRef<[u8]> + ?Sized>(text: &T) -> Result<(), Error> {
    let mut scanner = Scanner::new(text);
    scanner.value()?;
    scanner.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_returns_its_position_flag_and_fault_in_one_word() {
        // Up to the largest position a text can have here (2^32 in wasm32, far less than 2^48 natively).
        let far = usize::try_from((1u64 << 48) - 1).unwrap_or(usize::MAX);
        for at in [0, 1, 4096, u32::MAX as usize, far] {
            for flag in [false, true] {
                let reached = Reached::ok(at, flag);
                assert_eq!((reached.at(), reached.flag(), reached.fault()), (at, flag, None));
            }
            for fault in [Fault::NotUtf8, Fault::BadEscape, Fault::Control, Fault::Unclosed] {
                let reached = Reached::failed(at, fault);
                assert_eq!((reached.at(), reached.fault()), (at, Some(fault)));
            }
        }
    }
}
