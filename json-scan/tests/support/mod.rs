//! What the tests read a page into: its records, each as (name, raw value text) per field, in order.

/// A record: (name, raw value text) per field, in order.
pub type Record = Vec<(String, String)>;

/// A page read by the scanner, as records.
pub fn scanned(text: &str) -> Result<Vec<Record>, json_scan::Error> {
    let mut scanner = json_scan::Scanner::new(text);
    scanner.open_array()?;
    let mut records = Vec::new();
    while scanner.next_element()? {
        let mut fields = Vec::new();
        scanner.object(|(name, value)| fields.push((name.into_owned(), value.to_owned())))?;
        records.push(fields);
    }
    scanner.finish()?;
    Ok(records)
}
