//! The storage limit behind `triad stream`'s SQLite sink: plain batched inserts of rows of the
//! sink's shape (the same table, WAL mode, fully synced commits, `INSERT OR IGNORE`, 8192 rows
//! per transaction), with nothing else in the way. `crates/triad-stream/bench/run.sh` puts the
//! sink's own throughput beside it.
//!
//! ```text
//! cargo run --release -p triad-stream --example sqlite_limit -- DATABASE ROWS PAYLOAD_BYTES
//! ```
//! Prints one JSON line: `{"rows": N, "seconds": S, "rows_per_second": R}`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [path, rows, size] = arguments.as_slice() else {
        return Err("usage: sqlite_limit DATABASE ROWS PAYLOAD_BYTES".into());
    };
    let rows: u64 = rows.parse()?;
    let payload = vec![b'x'; size.parse()?];
    let mut connection = rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, origin TEXT NOT NULL, \
         payload BLOB NOT NULL, created_us INTEGER NOT NULL, committed_us INTEGER NOT NULL)",
    )?;
    let started = Instant::now();
    let mut next = 0u64;
    while next < rows {
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO messages (id, origin, payload, created_us, committed_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let end = (next + 8192).min(rows);
            for number in next..end {
                let id = format!("{}-0", 1_700_000_000_000 + number);
                insert.execute(rusqlite::params![id, "events", payload, 0i64, 0i64])?;
            }
            next = end;
        }
        transaction.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"rows\": {rows}, \"seconds\": {seconds:.3}, \"rows_per_second\": {:.0}}}",
        rows as f64 / seconds
    );
    Ok(())
}
