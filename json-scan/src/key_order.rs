//! The field names a run of objects has had, in order, so that the next object's names are matched,
//! not read.
//!
//! The records of an API's page share their fields and their order. [`crate::Scanner::object_in_order`]
//! compares the text at each field with the `"name":` the object before had there (one comparison of
//! a few words, see `short_eq`) instead of reading the name as a string, finding its end 16 bytes at a
//! time, checking it and then the `:`. A field that differs is read as usual and the order learns it,
//! so a page whose records change shape costs a comparison per field more, and is read correctly.

/// The `"name":` of each field of the last object read with this order, as it was written.
#[derive(Debug, Default)]
pub struct KeyOrder {
    /// Empty for a field that cannot be matched byte for byte (its name was written with escapes,
    /// or with whitespace before its `:`): that field is always read.
    keys: Vec<Vec<u8>>,
}

impl KeyOrder {
    /// What is expected at field `index`: the bytes of its `"name":` (empty: nothing to match).
    #[inline(always)]
    pub(crate) fn expected(&self, index: usize) -> &[u8] {
        self.keys.get(index).map_or(&[], Vec::as_slice)
    }

    /// Field `index` of the object being read is `key` (`"name":` as written, or empty).
    pub(crate) fn learn(&mut self, index: usize, key: &[u8]) {
        match self.keys.get_mut(index) {
            Some(slot) => {
                slot.clear();
                slot.extend_from_slice(key);
            }
            None => {
                self.keys.resize_with(index, Vec::new);
                self.keys.push(key.to_vec());
            }
        }
    }

    /// The object read had `fields` fields: the ones past them are not part of the order any more.
    pub(crate) fn end(&mut self, fields: usize) {
        self.keys.truncate(fields);
    }

    /// How many fields the order has.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Field, KeyOrder, Scanner};

    /// The fields of `text` read by `object` (names unescaped, values as written).
    fn fields(text: &str) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        Scanner::new(text)
            .object(|(name, value): Field<'_>| fields.push((name.into_owned(), value.to_owned())))
            .unwrap();
        fields
    }

    /// Each of `texts` read in turn with one order: the same fields as `object` finds, and whether
    /// each had the one before's names, written the same way, in the same order.
    fn read_in_order(texts: &[&str]) -> Vec<bool> {
        let mut order = KeyOrder::default();
        let mut sames = Vec::new();
        for text in texts {
            let mut found = Vec::new();
            let mut scanner = Scanner::new(*text);
            let same = scanner
                .object_in_order(&mut order, |(name, value)| found.push((name.into_owned(), value.to_owned())))
                .unwrap();
            scanner.finish().unwrap();
            assert_eq!(found, fields(text), "{text}");
            sames.push(same);
        }
        sames
    }

    #[test]
    fn a_record_is_matched_only_with_the_very_names_of_the_one_before() {
        let same = r#"{"id":1,"title":"a","author":{"id":2}}"#;
        let texts = [
            same,
            r#"{"id":3,"title":"b","author":{"id":4,"name":"x"}}"#,
            // A name changed, one left out, one more, the order changed.
            r#"{"id":5,"name":"c","author":null}"#,
            r#"{"id":6,"name":"d"}"#,
            r#"{"id":7,"name":"e","extra":[1]}"#,
            r#"{"name":"f","id":8,"extra":[]}"#,
            r#"{"name":"g","id":9,"extra":{}}"#,
            // Written with an escape, or with whitespace: read, never matched.
            r#"{"n\u0061me":"h","id":10,"extra":1}"#,
            r#"{"n\u0061me":"i","id":11,"extra":2}"#,
            r#"{"name" :"j","id":12,"extra":3}"#,
            r#"{"name" :"k", "id" : 13 ,"extra":4}"#,
            r#"{"name":"l","id":14,"extra":5}"#,
            r#"{"name":"m","id":15,"extra":6}"#,
            // A prefix of a name is not the name.
            r#"{"nam":"n","id":16,"extra":7}"#,
            r#"{}"#,
            r#"{}"#,
            r#"{"id":17}"#,
        ];
        let expected = [
            false, true, false, false, false, false, true, false, false, false, false, false, true, false, false, true,
            false,
        ];
        assert_eq!(read_in_order(&texts), expected);
    }

    #[test]
    fn a_text_cut_short_where_a_name_is_expected_is_still_an_error() {
        let mut order = KeyOrder::default();
        Scanner::new(r#"{"title":"a"}"#).object_in_order(&mut order, |_| {}).unwrap();
        for broken in [r#"{"title""#, r#"{"title":"#, r#"{"title":}"#, r#"{"titl"#, r#"{"title":"a""#] {
            let error = Scanner::new(broken).object_in_order(&mut order, |_| {});
            assert!(error.is_err(), "{broken}");
        }
    }
}
