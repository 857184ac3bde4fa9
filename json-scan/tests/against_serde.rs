//! The scanner against serde_json, the parser it stands in for: on generated JSON texts, and on
//! the same texts broken one byte at a time, both must accept the same texts and find the same
//! fields with the same raw values.

mod support;

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use support::{Record, scanned};

fn by_serde(text: &str) -> Result<Vec<Record>, serde_json::Error> {
    struct Page;
    impl<'de> Visitor<'de> for Page {
        type Value = Vec<Record>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
            let mut records = Vec::new();
            while let Some(record) = seq.next_element_seed(Fields)? {
                records.push(record);
            }
            Ok(records)
        }
    }
    struct Fields;
    impl<'de> de::DeserializeSeed<'de> for Fields {
        type Value = Record;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record, D::Error> {
            deserializer.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Fields {
        type Value = Record;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a record")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
            let mut fields = Vec::new();
            while let Some((name, value)) = map.next_entry::<String, &RawValue>()? {
                fields.push((name, value.get().to_owned()));
            }
            Ok(fields)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let records = de.deserialize_seq(Page)?;
    de.end()?;
    Ok(records)
}

/// xorshift64*: the same texts on every run, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn space(&mut self, out: &mut String) {
        if self.below(4) == 0 {
            out.push_str(self.pick(&[" ", "\n", "\t", "\r\n  ", "  "]));
        }
    }

    fn string(&mut self, out: &mut String) {
        out.push('"');
        for _ in 0..self.below(40) {
            out.push_str(self.pick(&[
                "a",
                "Z",
                " ",
                "0",
                "é",
                "ü",
                "日本",
                "🚀",
                "\\\"",
                "\\\\",
                "\\/",
                "\\n",
                "\\t",
                "\\u00e9",
                "\\ud83d\\ude80",
                "\\ud800",
                "'",
                "{",
                "]",
                ",",
                ":",
                "\u{7f}",
                "plain text of some length ",
            ]));
        }
        out.push('"');
    }

    fn value(&mut self, out: &mut String, depth: usize) {
        let kinds = if depth >= 6 { 6 } else { 8 };
        match self.below(kinds) {
            0 => out.push_str(self.pick(&["true", "false", "null"])),
            1 | 2 => {
                let number = self.pick(&[
                    "0",
                    "-0",
                    "7",
                    "-12",
                    "123456789012345678901234567890",
                    "1.5",
                    "-0.25",
                    "1e10",
                    "2E-3",
                    "6.02e+23",
                    "0.0",
                    "10",
                ]);
                out.push_str(number);
            }
            3..=5 => self.string(out),
            6 => {
                out.push('[');
                for i in 0..self.below(5) {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    self.value(out, depth + 1);
                    self.space(out);
                }
                out.push(']');
            }
            _ => self.object(out, depth + 1),
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) {
        out.push('{');
        for i in 0..self.below(7) {
            if i > 0 {
                out.push(',');
            }
            self.space(out);
            self.string(out);
            self.space(out);
            out.push(':');
            self.space(out);
            self.value(out, depth);
            self.space(out);
        }
        out.push('}');
    }

    fn page(&mut self) -> String {
        let mut out = String::new();
        self.space(&mut out);
        out.push('[');
        for i in 0..self.below(4) {
            if i > 0 {
                out.push(',');
            }
            self.space(&mut out);
            self.object(&mut out, 0);
            self.space(&mut out);
        }
        out.push(']');
        self.space(&mut out);
        out
    }

    /// `text` with one byte removed, replaced or added (as long as it stays UTF-8).
    fn broken(&mut self, text: &str) -> Option<String> {
        let mut bytes = text.as_bytes().to_vec();
        let at = self.below(bytes.len() + 1);
        let byte = *[b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b'0', b'-', b'.', b'e', b' ', b'\n', 0x01, b'x']
            .get(self.below(16))
            .unwrap();
        match (self.below(3), at < bytes.len()) {
            (0, true) => {
                bytes.remove(at);
            }
            (1, true) => bytes[at] = byte,
            _ => bytes.insert(at, byte),
        }
        String::from_utf8(bytes).ok()
    }
}

fn agree(text: &str) -> bool {
    let (ours, theirs) = (scanned(text), by_serde(text));
    assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}: scanner {ours:?}, serde_json {theirs:?}");
    if let (Ok(ours), Ok(theirs)) = (&ours, &theirs) {
        assert_eq!(ours, theirs, "{text:?}");
    }
    // Any value on its own, the way a destination reads one.
    let (ours, theirs) = (json_scan::validate(text), serde_json::from_str::<IgnoredAny>(text));
    assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?} as a value: scanner {ours:?}, serde_json {theirs:?}");
    ours.is_ok()
}

#[test]
fn generated_pages_are_read_as_serde_json_reads_them() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let page = random.page();
        assert!(agree(&page), "a generated page was refused: {page:?}");
    }
}

#[test]
fn strings_are_unescaped_as_serde_json_reads_them() {
    let mut random = Random(0x51_7cc1_b727_220a);
    let (mut read, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut token = String::new();
        random.string(&mut token);
        let (ours, theirs) = (json_scan::unescape(&token), serde_json::from_str::<String>(&token));
        match (&ours, &theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{token:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{token:?}: unescape {ours:?}, serde_json {theirs:?}"),
        }
        read += usize::from(ours.is_ok());
        refused += usize::from(ours.is_err());
    }
    // Both kinds, many of each: the generator writes lone surrogates now and then.
    assert!(read > 5_000 && refused > 1_000, "{read} read, {refused} refused");
}

#[test]
fn broken_pages_are_refused_as_serde_json_refuses_them() {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let (mut refused, mut tried) = (0, 0);
    for _ in 0..20_000 {
        let page = random.page();
        let Some(broken) = random.broken(&page) else { continue };
        tried += 1;
        refused += usize::from(!agree(&broken));
    }
    // Most one-byte changes break a page; a test whose cases all passed would test nothing.
    assert!(refused > tried / 2, "{refused} of {tried} broken pages refused");
}

#[test]
fn the_edges_of_the_grammar_are_where_serde_json_puts_them() {
    for text in [
        "[]",
        " [ ] ",
        "[{}]",
        "[{},{}]",
        "[{\"a\":1}]",
        "[{\"a\":1},]",
        "[,{}]",
        "[{\"a\":1,}]",
        "[{\"a\"}]",
        "[{\"a\":}]",
        "[{1:1}]",
        "[{\"a\":01}]",
        "[{\"a\":-}]",
        "[{\"a\":1.}]",
        "[{\"a\":.5}]",
        "[{\"a\":1e}]",
        "[{\"a\":1e+}]",
        "[{\"a\":+1}]",
        "[{\"a\":0x1}]",
        "[{\"a\":NaN}]",
        "[{\"a\":nul}]",
        "[{\"a\":truex}]",
        "[{\"a\":\"\\u00\"}]",
        "[{\"a\":\"\\U0041\"}]",
        "[{\"a\":\"\u{0}\"}]",
        "[{\"a\":\"\u{1f}\"}]",
        "[{\"a\":\"\u{7f}\"}]",
        "[{\"a\":[1,[2,[3]]]}]",
        "[{\"a\":{\"b\":{}}}]",
        "[{\"a\":[}]",
        "[{\"a\":{]}]",
        "[{}",
        "[",
        "",
        " ",
        "[{}] [",
        "[{\"a\":1}\u{a0}]",
        "[{\"\\ud83d\\ude80\":1}]",
        "[{\"\\ud800\":1}]",
        "[{\"a\":\"\\ud800\"}]",
        "[{\"a\":1,\"a\":2}]",
        "1",
        "\"x\"",
        "{}",
        "[1]",
        "[[]]",
    ] {
        agree(text);
    }
}

#[test]
fn bytes_that_are_not_utf8_are_refused_wherever_they_are() {
    // A JSON text is UTF-8 (RFC 8259, 8.1): the scanner reads bytes, checks strings' multi-byte
    // characters as it meets them, and must refuse exactly what `str` and serde_json together refuse.
    let mut random = Random(0x853c_49e6_748f_ea9b);
    let (mut refused, mut tried) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = random.page().into_bytes();
        let at = random.below(bytes.len());
        // A high byte written over another (a character's bytes broken or a stray one added), or a
        // byte of a multi-byte character cut out.
        match random.below(3) {
            0 => bytes[at] = 0x80 + random.below(0x80) as u8,
            1 => bytes.insert(at, [0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff][random.below(6)]),
            _ => match bytes.iter().skip(at).position(|&b| b > 0x7f) {
                Some(offset) => drop(bytes.remove(at + offset)),
                None => continue,
            },
        }
        tried += 1;
        let theirs = std::str::from_utf8(&bytes).is_ok() && serde_json::from_slice::<IgnoredAny>(&bytes).is_ok();
        let ours = json_scan::validate(&bytes);
        assert_eq!(ours.is_ok(), theirs, "{:?}: scanner {ours:?}", String::from_utf8_lossy(&bytes));
        refused += usize::from(!theirs);
    }
    assert!(refused > tried / 2, "{refused} of {tried} changed pages refused");
}
