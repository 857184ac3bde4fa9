//! The scanner's own grammar checks: pages read as records of raw values, each mistake named where
//! it is, nesting bounded, field names unescaped.

mod support;

use json_scan::validate;
use support::scanned;

#[test]
fn a_page_is_read_as_records_of_raw_values() {
    let page = r#" [ {"id": 1, "title":"a \"b\"", "author":{"id":3,"tags":[1,{"x":null}]},"labels":[] ,"w":-1.5e3},
        {} , {"\u0069d" : true} ] "#;
    let got = scanned(page).unwrap();
    let field = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        got,
        [
            vec![
                field("id", "1"),
                field("title", r#""a \"b\"""#),
                field("author", r#"{"id":3,"tags":[1,{"x":null}]}"#),
                field("labels", "[]"),
                field("w", "-1.5e3"),
            ],
            vec![],
            vec![field("id", "true")],
        ]
    );
    assert_eq!(scanned("[]").unwrap(), Vec::<Vec<_>>::new());
}

#[test]
fn each_mistake_is_named_where_it_is() {
    let cases = [
        ("", "expected '[' (a JSON array) at line 1 column 1"),
        ("{}", "expected '[' (a JSON array) at line 1 column 1"),
        ("[1]", "expected '{' (a JSON object) at line 1 column 2"),
        ("[{}{}]", "expected ',' or ']' after an element at line 1 column 4"),
        ("[{},]", "expected '{' (a JSON object) at line 1 column 5"),
        ("[{\"a\" 1}]", "expected ':' after a field name at line 1 column 7"),
        ("[{\"a\":1,}]", "expected '\"' (a field name) at line 1 column 9"),
        ("[{\"a\":01}]", "expected ',' or '}' after a field at line 1 column 8"),
        ("[{\"a\":\"x\ny\"}]", "a control character in a string (it must be escaped) at line 1 column 9"),
        ("[{\"a\":\"\\x\"}]", "an invalid escape in a string at line 1 column 8"),
        ("[{\"a\":\"\\u12G4\"}]", "an invalid escape in a string at line 1 column 8"),
        ("[{\"a\":\"abc", "a string that is never closed at line 1 column 7"),
        ("[{\"a\":tru}]", "expected a value (true, false and null are the only words) at line 1 column 7"),
        ("[{\"a\":1.}]", "expected a digit after a number's '.' at line 1 column 9"),
        ("[{\"a\":1e+}]", "expected a digit in a number's exponent at line 1 column 10"),
        ("[{\"a\":-}]", "expected a digit in a number at line 1 column 8"),
        ("[{\"a\":[1,]}]", "expected a value at line 1 column 10"),
        ("[{\"a\":{\"b\":1]}]", "expected ',' or '}' in an object at line 1 column 13"),
        ("[{\"a\":[1}]}]", "expected ',' or ']' in an array at line 1 column 9"),
        ("[{\"a\":", "the text ends where a value should be at line 1 column 7"),
        ("[{}] x", "unexpected characters after the JSON value at line 1 column 6"),
        ("[\n{},\n{\"a\":+1}]", "expected a value at line 3 column 6"),
    ];
    for (text, message) in cases {
        assert_eq!(scanned(text).unwrap_err().to_string(), message, "{text:?}");
    }
}

#[test]
fn nesting_stops_at_128_levels() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(validate(&nested(128)).is_ok());
    let error = validate(&nested(129)).unwrap_err();
    assert_eq!(error.what(), "values nested more than 128 levels deep");
    assert_eq!(error.column(), 129);
    let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert!(validate(&objects(128)).is_ok());
    assert!(validate(&objects(129)).is_err());
}

#[test]
fn a_field_name_with_a_broken_escape_is_refused() {
    // A lone surrogate: serde_json will not make a string of it.
    let error = scanned(r#"[{"\ud800":1}]"#).unwrap_err();
    assert_eq!(error.to_string(), "a field name whose escapes are not a valid string at line 1 column 3");
}

#[test]
fn line_breaks_are_noted_as_the_whitespace_holding_them_is_read() {
    let page = "[{\"a\":\"x\\ny\", \"b\":1},\n{\"c\":{\r\"d\":[2,\n3]}}]";
    let mut scanner = json_scan::Scanner::new(page);
    scanner.open_array().unwrap();
    // An escaped `\n` inside a string is not a line break of the text.
    assert!(scanner.next_element().unwrap());
    scanner.object(drop).unwrap();
    assert!(!scanner.saw_line_breaks());
    assert!(scanner.next_element().unwrap());
    scanner.object(drop).unwrap();
    assert!(scanner.saw_line_breaks());
    let mut nested = json_scan::Scanner::new("{\"c\":{\"d\":[2,\n3]}}");
    nested.object(drop).unwrap();
    assert!(nested.saw_line_breaks());
    let mut compact = json_scan::Scanner::new("{\"c\":{\"d\":[2, 3]}}\t ");
    compact.object(drop).unwrap();
    compact.finish().unwrap();
    assert!(!compact.saw_line_breaks());
}
