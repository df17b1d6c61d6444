//! Each function is built alone for Lambda (`cargo lambda build --bin <function>`), where only
//! its own features of the common crate are on, not the union the workspace's test build sees.
//! A function that uses a feature-gated module of `shared` without asking for its feature would
//! pass every test here and fail to build for deployment: this test reads each function's
//! sources and manifest and fails for that.

use std::collections::BTreeSet;
use std::path::Path;

/// The feature-gated modules of `shared` and the feature each needs.
const GATED: [(&str, &str); 9] = [
    ("queue", "queue"),
    ("stripe", "stripe"),
    ("billing", "stripe"),
    ("billing_sync", "billing-sync"),
    ("ai", "ai"),
    ("webhooks", "webhooks"),
    ("realtime", "realtime"),
    ("exports", "exports"),
    ("db::migrate", "migrations"),
];

/// Features that turn others on (shared/Cargo.toml).
fn implied(feature: &str) -> &'static [&'static str] {
    match feature {
        "billing-sync" | "prices" => &["stripe"],
        _ => &[],
    }
}

fn sources(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

#[test]
fn every_function_asks_for_the_shared_features_it_uses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut checked = 0;
    let mut missing = Vec::new();
    for function in std::fs::read_dir(&root).unwrap() {
        let dir = function.unwrap().path();
        // The dependency is one line: `shared.workspace = true` or `shared = { ..., features = [..] }`.
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let line = manifest.lines().find(|l| l.starts_with("shared")).expect("every function depends on shared");
        let mut features: BTreeSet<String> = line
            .split_once("features = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
            .unwrap_or_default()
            .split(',')
            .map(|f| f.trim().trim_matches('"').to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        for feature in features.clone() {
            features.extend(implied(&feature).iter().map(|f| (*f).to_owned()));
        }
        let text = sources(&dir.join("src"));
        for (module, feature) in GATED {
            let used = text.contains(&format!("shared::{module}::")) || text.contains(&format!("shared::{module};"));
            if used && !features.contains(feature) {
                missing.push(format!("{}: uses shared::{module} without the `{feature}` feature", dir.display()));
            }
        }
        checked += 1;
    }
    assert!(checked >= 17, "read only {checked} functions");
    assert!(missing.is_empty(), "{missing:#?}");
}
