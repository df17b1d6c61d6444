//! What a deployed function is built with: no development or test code. Each function's
//! features are resolved as `cargo lambda build` / `sam build` resolves them, for that function
//! alone (`cargo tree -p`), so a function that pulled in a development feature (development
//! tokens, queue draining, the metrics capture sink, Stripe signing, the mailer's echo) or a
//! development crate fails here.

use std::path::Path;
use std::process::Command;

/// Features and crates that only the local stack and the tests may link.
const DEVELOPMENT_ONLY: [&str; 5] = [
    r#"shared feature "dev""#,
    r#"stripe-webhook feature "dev""#,
    r#"email-worker feature "dev""#,
    "local-stack v",
    "integration-tests v",
];

#[test]
fn no_function_links_development_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut functions: Vec<String> = std::fs::read_dir(root.join("functions"))
        .expect("functions/")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    functions.sort();
    assert_eq!(functions.len(), 19, "every function is checked: {functions:?}");
    let mut offenders = Vec::new();
    for function in &functions {
        let output = Command::new(&cargo)
            .args(["tree", "-p", function, "-e", "features", "--prefix", "none", "--offline"])
            .current_dir(&root)
            .output()
            .expect("run cargo tree");
        assert!(output.status.success(), "cargo tree -p {function}: {}", String::from_utf8_lossy(&output.stderr));
        let tree = String::from_utf8_lossy(&output.stdout);
        assert!(tree.contains(r#"shared feature "default""#), "{function}: no shared crate in {tree}");
        for forbidden in DEVELOPMENT_ONLY {
            if tree.contains(forbidden) {
                offenders.push(format!("{function} links {forbidden}"));
            }
        }
    }
    assert!(offenders.is_empty(), "development code in a production build:\n{}", offenders.join("\n"));
}
