//! The application's SQL goes through sqlx's checked macros (`query!`, `query_as!`,
//! `query_scalar!`), described in `.sqlx/` and verified against the migrations by
//! `scripts/sqlx-prepare.sh --check`. This fails when a statement is built at run time outside
//! the few places that must: a renamed column must break the build, not a request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The calls that take SQL text the compiler cannot check.
const UNCHECKED: [&str; 8] = [
    "sqlx::query(",
    "sqlx::query_as(",
    "sqlx::query_scalar(",
    "sqlx::query_as::<",
    "sqlx::query_scalar::<",
    "sqlx::raw_sql(",
    "AssertSqlSafe",
    "QueryBuilder",
];

/// Where run-time SQL must stay, and why.
const ALLOWED: [(&str, &str); 3] = [
    // The first round trip: BEGIN, identity and access as one simple-protocol batch, which
    // takes no bind parameters (values are quoted by `opening`); COMMIT and ROLLBACK.
    ("shared/src/db/mod.rs", "the opening batch"),
    // ALTER ROLE and CREATE DATABASE take no bind parameters (identifiers and passwords are
    // quoted by PostgreSQL's quote_ident/quote_literal first).
    ("shared/src/db/migrate.rs", "DDL"),
    // One SELECT per table found in the catalog: identifiers quoted, values bound.
    ("functions/export-worker/src/tables.rs", "the export's per-table statements"),
];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn application_sql_is_checked_at_compile_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    sources(&root.join("shared/src"), &mut files);
    sources(&root.join("local/src"), &mut files);
    for function in std::fs::read_dir(root.join("functions")).unwrap() {
        sources(&function.unwrap().path().join("src"), &mut files);
    }
    let mut offenders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut allowed_seen = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(path).unwrap();
        let calls: Vec<&str> = UNCHECKED.into_iter().filter(|call| text.contains(call)).collect();
        if calls.is_empty() {
            continue;
        }
        if ALLOWED.iter().any(|(file, _)| *file == relative) {
            allowed_seen.push(relative);
        } else {
            offenders.insert(relative, calls);
        }
    }
    assert!(offenders.is_empty(), "SQL built at run time, not checked by the compiler: {offenders:#?}");
    // An exception that is no longer needed is removed from the list, not kept as a loophole.
    for (file, why) in ALLOWED {
        assert!(allowed_seen.iter().any(|seen| seen == file), "{file} ({why}) no longer builds SQL at run time");
    }
    assert!(files.len() > 50, "the scan found only {} source files", files.len());
}
