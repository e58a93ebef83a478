//! `user-cli`: parse the command line, run it remotely or locally, print the
//! outcome, exit with a code scripts can rely on.

mod cli;
mod credentials;
mod failure;
mod input;
mod local;
mod operate;
mod output;
mod remote;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use user_settings::{LoadError, Sources, UnknownKeys};

use crate::cli::{Cli, Command};
use crate::failure::Failure;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (mut cli, sources) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(LoadError::Usage(e)) => e.exit(),
        Err(e) => return fail(&Failure::Usage(e.to_string())),
    };
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "user-cli", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("user-cli: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let out = output::Output { json: cli.json };
    let result = match (&cli.target.server, &cli.target.database) {
        (Some(_), Some(_)) => Err(Failure::Usage("give --server (remote) or --database (local), not both".into())),
        (None, None) => Err(Failure::Usage(
            "give --server URL (remote) or --database URL (local), or set USER_SERVER / USER_DATABASE_URL".into(),
        )),
        (Some(server), None) => remote::run(server, cli.target.ca_cert.as_deref(), cli.command, &out).await,
        (None, Some(database)) => {
            // Only local mode builds the service, so only it reads the server's secret files.
            let given = |id: &str| sources.as_ref().is_some_and(|s| s.given(id));
            match cli.service.read_secret_files(&given) {
                Ok(()) => local::run(database, &cli.service, cli.command, &out).await,
                Err(e) => Err(Failure::Usage(e.to_string())),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

/// The command line; in local mode also the server's config file
/// (`--config`, `USER_CONFIG_FILE`), of which it takes the database and the
/// service settings. Remote mode reads no file: a server's `database` there
/// would clash with `--server`.
fn parse(args: &[std::ffi::OsString]) -> Result<(Cli, Option<Sources>), LoadError> {
    let plain = Cli::try_parse_from(args).map_err(LoadError::Usage)?;
    if plain.target.server.is_some() {
        return Ok((plain, None));
    }
    let loaded = user_settings::load::<Cli, _, _>(args, UnknownKeys::Ignore)?;
    Ok((loaded.settings, Some(loaded.sources)))
}

fn fail(failure: &Failure) -> ExitCode {
    eprintln!("user-cli: {failure}");
    ExitCode::from(failure.exit_code())
}
