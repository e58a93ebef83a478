//! Settings from three places, in this order of precedence: a flag, then a
//! `USER_*` variable, then the TOML config file (`--config FILE` or
//! `USER_CONFIG_FILE`), then the default.
//!
//! The file's keys are the long flag names, one flat table:
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! database = "postgres://users@db/users"
//! jwt-algorithm = "eddsa"
//! oauth-clients = ["tv-app", "car-app"]
//! login-lockout-after = 5
//! ```
//!
//! Every setting that has a `USER_*` variable can be written there (the
//! variable names the same setting); flags that do something instead of
//! setting something (`--print-openapi`, `--help`) cannot. A value is
//! checked as the flag's value would be, and an error names the file and
//! the key.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::LoadError;

/// The id of the setting naming the config file; every settings type that
/// reads one has it (`#[arg(long, env = "USER_CONFIG_FILE")] config: Option<PathBuf>`).
const CONFIG: &str = "config";

/// What to do with a key of the file that names no setting of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// Refuse to start, naming the key and the nearest valid one (the server).
    Refuse,
    /// Pass over it: the file is another program's, of which this one takes
    /// the settings it shares (`user-cli` in local mode reads the server's).
    Ignore,
}

/// Settings as loaded, with where each came from.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The settings.
    pub settings: T,
    /// Where each came from.
    pub sources: Sources,
}

/// Where each setting of a [`Loaded`] came from.
#[derive(Debug)]
pub struct Sources {
    matches: ArgMatches,
    from_file: BTreeSet<String>,
}

impl Sources {
    /// Whether the setting with this id (the field's name, `jwt_secrets`)
    /// was given a value on the command line, in the environment or in the
    /// config file, rather than left to its default.
    pub fn given(&self, id: &str) -> bool {
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine | ValueSource::EnvVariable) => true,
            Some(ValueSource::DefaultValue) => self.from_file.contains(id),
            _ => false,
        }
    }
}

/// Parses `args` (the program name first) into `T`: flags, then `USER_*`
/// variables, then the config file that `--config` or `USER_CONFIG_FILE`
/// names (if `T` has that setting and it is given), then defaults.
///
/// # Errors
/// [`LoadError::Usage`] for what clap refuses on the command line or in a
/// variable (`--help` and `--version` come this way too);
/// [`LoadError::Invalid`] for a config file that cannot be read, is not
/// TOML, or has a key that names no setting (with [`UnknownKeys::Refuse`])
/// or a value its setting refuses.
pub fn load<T, I, A>(args: I, unknown: UnknownKeys) -> Result<Loaded<T>, LoadError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = T::command();
    let first = command.clone().try_get_matches_from(&args).map_err(LoadError::Usage)?;
    let path = command
        .get_arguments()
        .any(|a| a.get_id() == CONFIG)
        .then(|| first.get_one::<PathBuf>(CONFIG).cloned())
        .flatten();
    let Some(path) = path else {
        let settings = T::from_arg_matches(&first).map_err(LoadError::Usage)?;
        return Ok(Loaded { settings, sources: Sources { matches: first, from_file: BTreeSet::new() } });
    };
    let (command, from_file) = with_file_defaults(command.clone(), &path, unknown)?;
    // The first parse checked every flag and variable: what fails now is a
    // value from the file.
    let matches = command.try_get_matches_from(&args).map_err(|e| file_error(&failed_key(&e), &path, &e))?;
    let settings = T::from_arg_matches(&matches).map_err(LoadError::Usage)?;
    Ok(Loaded { settings, sources: Sources { matches, from_file } })
}

/// `command` with the file's values as its settings' defaults, so clap
/// itself puts flags and variables first; and the ids of those settings.
fn with_file_defaults(
    mut command: clap::Command,
    path: &Path,
    unknown: UnknownKeys,
) -> Result<(clap::Command, BTreeSet<String>), LoadError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Invalid(format!("config file {shown}: {e}")))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| LoadError::Invalid(format!("config file {shown}: {e}")))?;
    let keys: Vec<(String, clap::Arg)> = command
        .get_arguments()
        .filter(|a| a.get_env().is_some() && a.get_id() != CONFIG)
        .filter_map(|a| Some((a.get_long()?.to_owned(), a.clone())))
        .collect();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let Some((_, arg)) = keys.iter().find(|(long, _)| long == key) else {
            if unknown == UnknownKeys::Ignore {
                continue;
            }
            let nearest = keys.iter().map(|(long, _)| long.as_str()).min_by_key(|long| edit_distance(key, long));
            let hint = nearest.map(|n| format!(" (did you mean '{n}'?)")).unwrap_or_default();
            return Err(LoadError::Invalid(format!("config file {shown}: unknown setting '{key}'{hint}")));
        };
        let invalid = |why: String| LoadError::Invalid(format!("config file {shown}: '{key}': {why}"));
        let values = match value {
            toml::Value::Array(items) if takes_many(arg) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>(),
            toml::Value::Array(_) => Err("takes one value, not a list".to_owned()),
            one => scalar(one).map(|v| vec![v]),
        }
        .map_err(invalid)?;
        let id = arg.get_id().to_string();
        command = command.mut_arg(&id, |a| a.default_values(values));
        from_file.insert(id);
    }
    Ok((command, from_file))
}

/// The flag a clap error is about (`--listen <LISTEN>` → `listen`).
fn failed_key(error: &clap::Error) -> String {
    match error.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => {
            arg.trim_start_matches("--").split([' ', '=']).next().unwrap_or_default().to_owned()
        }
        _ => String::new(),
    }
}

/// A value from the file that its setting refuses, as an error naming both.
fn file_error(key: &str, path: &Path, error: &clap::Error) -> LoadError {
    LoadError::Invalid(format!("config file {}: '{key}': {}", path.display(), clap_reason(error)))
}

/// Whether a setting takes a list (`oauth-clients = ["a", "b"]`).
fn takes_many(arg: &clap::Arg) -> bool {
    arg.get_value_delimiter().is_some() || matches!(arg.get_action(), clap::ArgAction::Append)
}

/// A TOML value as the text a flag would carry.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("takes a string, number or boolean, not {}", other.type_str())),
    }
}

/// The reason in clap's message, without its "error: " and usage lines.
fn clap_reason(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A program with a few settings of each kind.
    #[derive(Debug, Parser)]
    struct App {
        #[arg(long, env = "TEST_APP_CONFIG_FILE")]
        config: Option<PathBuf>,
        #[arg(long, env = "TEST_APP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "TEST_APP_WORKERS", default_value_t = 4)]
        workers: u32,
        #[arg(long, env = "TEST_APP_VERBOSE", action = clap::ArgAction::Set, default_value_t = false)]
        verbose: bool,
        #[arg(long, env = "TEST_APP_CLIENTS", value_delimiter = ',')]
        clients: Vec<String>,
        #[arg(long, env = "TEST_APP_SECRET")]
        secret: Option<String>,
        /// An action, not a setting: no variable, so not in the file either.
        #[arg(long)]
        print_schema: bool,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn load_app(args: &[&str]) -> Result<Loaded<App>, LoadError> {
        load::<App, _, _>(std::iter::once("app").chain(args.iter().copied()), UnknownKeys::Refuse)
    }

    #[test]
    fn the_file_sets_what_flags_leave_to_defaults() {
        let f = file("listen = \"0.0.0.0:9000\"\nworkers = 8\nverbose = true\nclients = [\"tv\", \"car\"]\n");
        let path = f.path().to_str().unwrap();
        let loaded = load_app(&["--config", path, "--workers", "2"]).unwrap();
        let app = loaded.settings;
        assert_eq!(app.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(app.workers, 2, "a flag beats the file");
        assert!(app.verbose);
        assert_eq!(app.clients, ["tv", "car"]);
        assert_eq!(app.secret, None, "neither file nor flag: the default");
        assert!(loaded.sources.given("listen") && loaded.sources.given("workers"));
        assert!(!loaded.sources.given("secret"));
    }

    #[test]
    fn without_a_file_only_flags_and_defaults_count() {
        let loaded = load_app(&["--verbose", "true"]).unwrap();
        assert!(loaded.settings.verbose && loaded.sources.given("verbose"));
        assert!(!loaded.sources.given("workers"));
    }

    #[test]
    fn an_unknown_key_names_itself_and_the_nearest_setting() {
        let f = file("lisen = \"0.0.0.0:9000\"\n");
        let error = load_app(&["--config", f.path().to_str().unwrap()]).unwrap_err().to_string();
        assert!(error.contains("unknown setting 'lisen'") && error.contains("did you mean 'listen'?"), "{error}");
        assert!(error.contains(f.path().to_str().unwrap()), "{error}");
        let ignored = load::<App, _, _>(["app", "--config", f.path().to_str().unwrap()], UnknownKeys::Ignore);
        assert_eq!(ignored.unwrap().settings.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn actions_are_not_settings() {
        let f = file("print-schema = true\n");
        let error = load_app(&["--config", f.path().to_str().unwrap()]).unwrap_err().to_string();
        assert!(error.contains("unknown setting 'print-schema'"), "{error}");
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        // (That a variable beats the file is tested on the built user-cli,
        // where each process has its own environment: setting one here
        // would race the other tests' reads of the environment.)
        for (text, expected) in [
            ("listen = \"nowhere\"\n", "'listen': invalid value 'nowhere'"),
            ("workers = \"many\"\n", "'workers': invalid value 'many'"),
            ("listen = [\"a\", \"b\"]\n", "'listen': takes one value, not a list"),
            ("clients = [{ a = 1 }]\n", "'clients': takes a string, number or boolean, not table"),
            ("listen = \n", "config file"),
        ] {
            let f = file(text);
            let error = load_app(&["--config", f.path().to_str().unwrap()]).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains(f.path().to_str().unwrap()), "{error}");
        }
        let error = load_app(&["--config", "/nonexistent/app.toml"]).unwrap_err().to_string();
        assert!(error.contains("config file /nonexistent/app.toml"), "{error}");
    }

    #[test]
    fn typos_are_measured_in_edits() {
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("database", "database"), 0);
    }
}
