//! One upsert statement of the SQLite destination, bound to a record's values where they lie.
//!
//! rusqlite binds every string with `SQLITE_TRANSIENT`: SQLite copies it into memory of its own (an
//! allocation, a copy, a free per value) only to copy it again into the row it builds. A page is
//! 100 records of some 40 values, most of them text, and that first copy was a tenth of the writer
//! thread's time. An [`Upsert`] is prepared through SQLite's C API instead, and binds text with
//! `SQLITE_STATIC`: SQLite reads the bytes where they are, in the page or in a string the value owns,
//! while it builds the row.
//!
//! ```text
//!  values (borrowed from the page) ──► bind each, SQLITE_STATIC ──► step: row built, upserted
//!                                        └─► reset, bindings cleared ──► execute returns
//! ```
//!
//! Why this is sound: SQLite reads a bound value only while the statement steps. [`Upsert::execute`]
//! binds every parameter from the values it borrows, steps, resets the statement and clears its
//! bindings before it returns, on every path: no pointer outlives the borrow. A statement belongs
//! to its connection and must be finalized before it closes, which [`Upsert::prepare`]'s caller
//! promises (the destination drops its statements first).

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use anyhow::{Result, bail};
use rusqlite::{Connection, ffi};

use crate::dest::record::Scalar;

/// A prepared `INSERT ... ON CONFLICT ... DO UPDATE` on one connection.
pub struct Upsert {
    statement: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    parameters: usize,
}

// SAFETY: the connection is opened in SQLite's multi-thread mode (rusqlite's default), in which a
// connection and its statements may move between threads as long as one thread uses them at a
// time. An `Upsert` is owned beside its `Connection` (itself `Send`) and used through `&mut self`.
unsafe impl Send for Upsert {}

impl Upsert {
    /// Prepare `sql` on `db`, to be run many times (`SQLITE_PREPARE_PERSISTENT`).
    ///
    /// # Safety
    /// The `Upsert` must be dropped before `db` is closed or dropped.
    pub unsafe fn prepare(db: &Connection, sql: &str) -> Result<Upsert> {
        let Ok(length) = c_int::try_from(sql.len()) else { bail!("an upsert of {} bytes is too long", sql.len()) };
        // SAFETY: the handle is that of an open connection, which outlives this call.
        let handle = unsafe { db.handle() };
        let Some(db_handle) = NonNull::new(handle) else { bail!("the SQLite connection is closed") };
        let mut statement = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `length` bytes; SQLite writes the new statement to `statement`.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                handle,
                sql.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                std::ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(failure(db_handle, code).into());
        }
        let Some(statement) = NonNull::new(statement) else { bail!("the upsert holds no statement: {sql}") };
        // SAFETY: a statement just prepared.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(statement.as_ptr()) };
        Ok(Upsert { statement, db: db_handle, parameters: usize::try_from(count).unwrap_or_default() })
    }

    /// Upsert one row: `values` in the order of the statement's parameters.
    pub fn execute(&mut self, values: &[Scalar<'_>]) -> Result<()> {
        if values.len() != self.parameters {
            bail!("the upsert takes {} values, not {}", self.parameters, values.len());
        }
        let statement = self.statement.as_ptr();
        let mut code = ffi::SQLITE_OK;
        for (index, value) in (1..).zip(values) {
            // SAFETY: `statement` is live (finalized only on drop); every pointer bound here is to
            // bytes `values` borrows, which outlive this call, and the bindings are cleared below
            // before it returns.
            code = unsafe { bind(statement, index, value) };
            if code != ffi::SQLITE_OK {
                break;
            }
        }
        if code == ffi::SQLITE_OK {
            // SAFETY: every parameter is bound, to memory live until after the reset below.
            code = match unsafe { ffi::sqlite3_step(statement) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                ffi::SQLITE_ROW => ffi::SQLITE_MISUSE,
                failed => failed,
            };
        }
        let error = (code != ffi::SQLITE_OK).then(|| failure(self.db, code));
        // SAFETY: a live statement; after these two calls it holds no pointer into `values`.
        unsafe {
            ffi::sqlite3_reset(statement);
            ffi::sqlite3_clear_bindings(statement);
        }
        match error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

impl Drop for Upsert {
    fn drop(&mut self) {
        // SAFETY: the statement is live, and its connection still open (`prepare`'s contract).
        unsafe { ffi::sqlite3_finalize(self.statement.as_ptr()) };
    }
}

/// Bind `value` to parameter `index` (1-based), text where it lies.
///
/// # Safety
/// `statement` is live, and the text `value` points to stays put until the statement is reset and
/// its bindings cleared.
unsafe fn bind(statement: *mut ffi::sqlite3_stmt, index: c_int, value: &Scalar<'_>) -> c_int {
    let text = |text: &str| {
        // An empty string still needs a pointer SQLite may read from: an owned empty `String` has
        // a dangling one.
        let pointer = if text.is_empty() { c"".as_ptr() } else { text.as_ptr().cast::<c_char>() };
        // SAFETY: `pointer` is valid for `text.len()` bytes of UTF-8 for as long as the caller promises.
        unsafe {
            ffi::sqlite3_bind_text64(
                statement,
                index,
                pointer,
                text.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            )
        }
    };
    // SAFETY: `statement` is live (the caller's promise).
    unsafe {
        match value {
            Scalar::Null => ffi::sqlite3_bind_null(statement, index),
            Scalar::Bool(b) => ffi::sqlite3_bind_int64(statement, index, i64::from(*b)),
            Scalar::Integer(i) => ffi::sqlite3_bind_int64(statement, index, *i),
            Scalar::Real(r) => ffi::sqlite3_bind_double(statement, index, *r),
            Scalar::Text(t) => text(t),
            Scalar::Json(json) => text(json),
        }
    }
}

/// SQLite's error for `code`, with the connection's message ("NOT NULL constraint failed: issue.id").
fn failure(db: NonNull<ffi::sqlite3>, code: c_int) -> rusqlite::Error {
    // SAFETY: an open connection; its message is a C string, copied out at once.
    let message = unsafe {
        let message = ffi::sqlite3_errmsg(db.as_ptr());
        (!message.is_null()).then(|| CStr::from_ptr(message).to_string_lossy().into_owned())
    };
    // The connection's extended code says more than the step's primary one (which constraint).
    // SAFETY: an open connection.
    let extended = unsafe { ffi::sqlite3_extended_errcode(db.as_ptr()) };
    let code = if extended & 0xff == code & 0xff { extended } else { code };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// Each row of `t`, its values as SQL literals.
    fn rows(db: &Connection) -> Vec<String> {
        let sql = "SELECT printf('%d %s %s %s %s %s', id, quote(a), quote(b), quote(c), quote(d), quote(e)) FROM t ORDER BY id";
        let mut select = db.prepare(sql).unwrap();
        select.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn binds_every_kind_of_value_and_reports_sqlites_refusals() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (id INTEGER NOT NULL UNIQUE, a, b, c, d, e)").unwrap();
        let sql = "INSERT INTO t (id, a, b, c, d, e) VALUES (?, ?, ?, ?, ?, ?) \
                   ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = excluded.b, c = excluded.c, d = excluded.d, e = excluded.e";
        // SAFETY: dropped before `db`, at the end of the block.
        let mut upsert = unsafe { Upsert::prepare(&db, sql) }.unwrap();
        let owned = String::from("unescaped \"text\"");
        upsert
            .execute(&[
                Scalar::Integer(1),
                Scalar::Text(Cow::Borrowed("borrowed")),
                Scalar::Text(Cow::Owned(owned)),
                Scalar::Json("[1,2]"),
                Scalar::Real(1.5),
                Scalar::Bool(true),
            ])
            .unwrap();
        assert_eq!(rows(&db), ["1 'borrowed' 'unescaped \"text\"' '[1,2]' 1.5 1"]);
        // The same row again: updated; an empty owned string is still a string.
        let empty = Scalar::Text(Cow::Owned(String::new()));
        upsert
            .execute(&[
                Scalar::Integer(1),
                Scalar::Null,
                empty,
                Scalar::Json("{}"),
                Scalar::Integer(2),
                Scalar::Bool(false),
            ])
            .unwrap();
        upsert
            .execute(&[Scalar::Integer(2), Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null])
            .unwrap();
        assert_eq!(rows(&db), ["1 NULL '' '{}' 2 0", "2 NULL NULL NULL NULL NULL"]);
        // SQLite's refusal, named; the statement still works after it.
        let error = upsert
            .execute(&[Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null])
            .unwrap_err();
        assert_eq!(error.to_string(), "NOT NULL constraint failed: t.id");
        assert_eq!(
            error.downcast_ref::<rusqlite::Error>().and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
        let error = upsert.execute(&[Scalar::Integer(3)]).unwrap_err();
        assert_eq!(error.to_string(), "the upsert takes 6 values, not 1");
        upsert
            .execute(&[Scalar::Integer(3), Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null, Scalar::Null])
            .unwrap();
        assert_eq!(db.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 3);
        drop(upsert);
        db.close().unwrap();
    }

    #[test]
    fn a_statement_sqlite_cannot_prepare_is_refused_with_its_reason() {
        let db = Connection::open_in_memory().unwrap();
        // SAFETY: nothing is prepared.
        let error = unsafe { Upsert::prepare(&db, "INSERT INTO missing (a) VALUES (?)") }.err().unwrap();
        assert_eq!(error.to_string(), "no such table: missing");
    }
}
