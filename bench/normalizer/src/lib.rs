//! The connector's parse-and-normalize path as a component of its own, for `benches/normalize.rs`:
//! the same function, on the same pages, timed in wasm and natively.

wit_bindgen::generate!({ path: "wit", world: "normalizer" });

struct Normalizer;

export!(Normalizer);

impl Guest for Normalizer {
    fn normalize_page(object: String, body: Vec<u8>, repeat: u32) -> Result<u64, String> {
        let schema = gitlab::catalogue::schema(&object).map_err(|e| e.to_string())?;
        let fields = gitlab::normalize::projection(schema, &[]).map_err(|e| e.to_string())?;
        let mut written = 0;
        for _ in 0..repeat.max(1) {
            let mut out = Vec::with_capacity(body.len());
            gitlab::normalize::write_page(&mut out, schema, &fields, &body, Some(1)).map_err(|e| e.to_string())?;
            written = out.len() as u64;
        }
        Ok(written)
    }
}
