//! Tokens for `auth.tokens_file`, made the way an operator makes them:
//! with `larch-store token new`.

use std::process::Command;

/// Runs `larch-store token new --name NAME --tenants TENANTS --access
/// ACCESS` and returns the token and its entry for the file's `tokens:`
/// list (the comment line left out). Checks what the command promises:
/// the entry names the token and does not hold it.
pub fn new_token(name: &str, tenants: &str, access: &str) -> (String, String) {
    let out = crate::process::run_ok(
        Command::new(crate::binary("larch-store")).args([
            "token",
            "new",
            "--name",
            name,
            "--tenants",
            tenants,
            "--access",
            access,
        ]),
        "larch-store token new",
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let (token, rest) = text.split_once('\n').expect("a token line");
    let entry: String = rest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(entry.contains(&format!("name: \"{name}\"")), "{entry}");
    assert!(!entry.contains(token), "the entry holds the token itself");
    (token.to_string(), entry)
}
