//! Secrets and confirmations from the person at the terminal, or from stdin
//! for scripts. A password is never a plain flag (it would sit in the shell
//! history and in `ps`).

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::PasswordSource;
use crate::failure::Failure;

/// One secret per prompt: asked without echo, or read as successive lines of
/// stdin with `--password-stdin`.
pub fn secrets(source: &PasswordSource, prompts: &[&str]) -> Result<Vec<String>, Failure> {
    if source.password_stdin {
        let mut lines = std::io::stdin().lock().lines();
        return prompts
            .iter()
            .map(|prompt| match lines.next() {
                Some(Ok(line)) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
                _ => Err(Failure::Usage(format!("--password-stdin: expected a line for {prompt:?} on stdin"))),
            })
            .collect();
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage("no terminal to ask for the password: pipe it with --password-stdin".into()));
    }
    prompts
        .iter()
        .map(|prompt| {
            rpassword::prompt_password(format!("{prompt}: ")).map_err(|e| Failure::Usage(format!("{prompt}: {e}")))
        })
        .collect()
}

/// One line of stdin, with `prompt` on the terminal when there is one (not
/// a secret: it is echoed).
pub fn line(prompt: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
    }
    let mut answer = String::new();
    match std::io::stdin().read_line(&mut answer) {
        Ok(0) => Err(Failure::Usage(format!("expected a line for {prompt:?} on stdin"))),
        Ok(_) => Ok(answer.trim().to_owned()),
        Err(e) => Err(Failure::Usage(format!("{prompt}: {e}"))),
    }
}

/// Asks a yes/no question unless `yes` was given; refuses when no one can answer.
pub fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!("{question} — not a terminal, so pass --yes to confirm")));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Failure::Usage(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Failure::Refused("cancelled".into())) }
}
