//! The row-level-security benchmark (bench/bench-rls.sh) claims to run, under pgbench, what a
//! request runs: the opening's statements and the handler's query. This holds it to that claim.
//! Every statement of a `*.rls.sql` script is either one of the opening's calls, with exactly the
//! columns `shared::db::PREPARE` selects, or one of the statements the code runs (its compile-time
//! description in `.sqlx/`) token for token, each `$n` bound to a pgbench variable or, for a
//! filter the request does not ask for, to NULL. A handler whose statement changes, or an opening
//! that answers new columns, fails here until the benchmark follows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Param(u32),
    Var(String),
    Quoted(String),
    Literal(String),
    Symbol(String),
}

fn tokens(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let take_while = |i: &mut usize, keep: &dyn Fn(char) -> bool| {
        let start = *i;
        while *i < chars.len() && keep(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        if c.is_whitespace() {
            i += 1;
        } else if c == '$' && next.is_ascii_digit() {
            i += 1;
            out.push(Token::Param(take_while(&mut i, &|c| c.is_ascii_digit()).parse().unwrap()));
        } else if c == ':' && (next.is_ascii_alphabetic() || next == '_') {
            i += 1;
            out.push(Token::Var(take_while(&mut i, &|c| c.is_ascii_alphanumeric() || c == '_')));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let word = take_while(&mut i, &|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            out.push(Token::Word(word.to_ascii_lowercase()));
        } else if c.is_ascii_digit() {
            out.push(Token::Literal(take_while(&mut i, &|c| c.is_ascii_digit() || c == '.')));
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..].iter().position(|&d| d == c).expect("closed quote") + i + 1;
            let text: String = chars[i + 1..end].iter().collect();
            out.push(if c == '"' { Token::Quoted(text) } else { Token::Literal(format!("'{text}'")) });
            i = end + 1;
        } else {
            let pair: String = [c, next].iter().collect();
            let symbol =
                if ["::", "<=", ">=", "<>", "!=", "||"].contains(&pair.as_str()) { pair } else { c.to_string() };
            i += symbol.len();
            out.push(Token::Symbol(symbol));
        }
    }
    if out.last() == Some(&Token::Symbol(";".into())) {
        out.pop();
    }
    out
}

/// A statement as the code wrote it for sqlx, without the macros' type annotations:
/// `status AS "status: ProjectStatus"` is `status`, `x AS "total!"` is `x AS total`.
fn without_annotations(statement: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    let mut iter = statement.into_iter().peekable();
    while let Some(token) = iter.next() {
        if token == Token::Word("as".into())
            && let Some(Token::Quoted(annotated)) = iter.peek()
        {
            let name = annotated.split([':', '!', '?']).next().unwrap().trim().to_owned();
            iter.next();
            if out.last() != Some(&Token::Word(name.clone())) {
                out.push(Token::Word("as".into()));
                out.push(Token::Word(name));
            }
            continue;
        }
        out.push(token);
    }
    out
}

/// Whether the benchmark's statement is the code's with each `$n` bound, consistently, to one
/// pgbench variable or to NULL.
fn binds(code: &[Token], bench: &[Token]) -> bool {
    if code.len() != bench.len() {
        return false;
    }
    let mut bound: BTreeMap<u32, &Token> = BTreeMap::new();
    code.iter().zip(bench).all(|(c, b)| match c {
        Token::Param(n) => {
            (matches!(b, Token::Var(_)) || *b == Token::Word("null".into()))
                && bound.insert(*n, b).is_none_or(|earlier| earlier == b)
        }
        _ => c == b,
    })
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn code_statements() -> Vec<(String, Vec<Token>)> {
    std::fs::read_dir(repo().join(".sqlx"))
        .unwrap()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let query = serde_json::from_str::<serde_json::Value>(&text).unwrap()["query"].as_str().unwrap().to_owned();
            let tokens = without_annotations(tokens(&query));
            (query, tokens)
        })
        .collect()
}

/// The opening's calls as the pool prepares them: `SELECT <columns> FROM app.<function>(`.
fn opening_calls() -> BTreeMap<String, Vec<Token>> {
    shared::db::PREPARE
        .split("PREPARE ")
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let select = &part[part.find(" AS ").unwrap() + 4..];
            let call = &select[..select.find("app.").unwrap()];
            let function = select[select.find("app.").unwrap()..].split('(').next().unwrap().to_owned();
            (function.clone(), tokens(&format!("{call}{function}(")))
        })
        .collect()
}

#[test]
fn the_row_level_security_benchmark_runs_the_statements_the_code_runs() {
    let code = code_statements();
    let openings = opening_calls();
    assert_eq!(openings.len(), 3, "{openings:?}");
    let dir = repo().join("bench/bench-rls");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".rls.sql"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "{scripts:?}");
    let mut problems = Vec::new();
    for script in &scripts {
        let name = script.file_name().unwrap().to_string_lossy().into_owned();
        let mut queries = 0;
        for line in std::fs::read_to_string(script).unwrap().lines().map(str::trim) {
            let skipped = line.is_empty()
                || line.starts_with("--")
                || line.starts_with('\\')
                || line.ends_with("\\gset")
                || ["BEGIN;", "COMMIT;"].contains(&line);
            if skipped {
                continue;
            }
            if let Some((function, prefix)) =
                openings.iter().find(|(function, _)| line.contains(&format!("{function}(")))
            {
                let call = tokens(&line[..line.find(&format!("{function}(")).unwrap() + function.len() + 1]);
                if &call != prefix {
                    problems.push(format!("{name}: the opening's call is not what the pool prepares: {line}"));
                }
                continue;
            }
            queries += 1;
            let bench = tokens(line);
            if !code.iter().any(|(_, statement)| binds(statement, &bench)) {
                problems.push(format!("{name}: no statement of the code (.sqlx/) binds to: {line}"));
            }
        }
        if queries == 0 {
            problems.push(format!("{name}: runs no query"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn binding_is_strict() {
    let code = without_annotations(tokens(
        r#"SELECT id, status AS "status: S" FROM t WHERE w = $1 AND ($2::uuid IS NULL OR id < $2) LIMIT $3"#,
    ));
    let bound = |bench: &str| binds(&code, &tokens(bench));
    assert!(bound("SELECT id, status FROM t WHERE w = :ws AND (NULL::uuid IS NULL OR id < NULL) LIMIT :page;"));
    assert!(!bound("SELECT id, status FROM t WHERE w = :ws LIMIT :page"), "a filter left out");
    assert!(!bound("SELECT id, status FROM t WHERE w = :ws AND (NULL::uuid IS NULL OR id < :c) LIMIT :page"));
    assert!(!bound("SELECT id, status FROM t WHERE w = :ws AND (NULL::uuid IS NULL OR id < NULL) LIMIT 26"));
    assert!(!bound("SELECT id FROM t WHERE w = :ws AND (NULL::uuid IS NULL OR id < NULL) LIMIT :page"));
}
