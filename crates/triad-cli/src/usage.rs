//! Parsing the command line: help and version as clap prints them, and any other error folded
//! into one line, exit code 2, that keeps what clap said — the names of missing arguments, the
//! accepted values of a bad one, clap's tips — and adds a hint where triad knows better.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::Cli;
use crate::out::{self, OutputError, Stream};

/// An argument the parser accepted that the command cannot use (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadArgument(pub(crate) String);

/// Parses the command line; on help, version or an error, prints it and gives the exit code.
pub(crate) fn parse() -> Result<Cli, ExitCode> {
    let error = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(error) => error,
    };
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return Err(print_help(&error));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hint = profile_hint(&error, args.clone());
    let (mut line, usage_help) = fold(&error.render().to_string());
    let help = usage_help.unwrap_or_else(|| subcommand_help(&args));
    if let Some(hint) = hint {
        line.push_str("; ");
        line.push_str(&hint);
    }
    out::diagnostic(&format!("triad: {line} (see {help})\n"));
    Err(ExitCode::from(2))
}

/// Help and version are a main output: written to stdout under the rule of `out`.
fn print_help(error: &clap::Error) -> ExitCode {
    let styled = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let text = if styled {
        error.render().ansi().to_string()
    } else {
        error.render().to_string()
    };
    let written = out::ensure_open("the help", Stream::Stdout).and_then(|()| {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(OutputError::on("the help", Stream::Stdout))
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = error.exit_code();
            out::report(&error.into());
            ExitCode::from(code)
        }
    }
}

/// clap's rendered error on one line: `error: …` with the lines that belong to it (a list of
/// missing arguments, `[possible values: …]`) joined on, and tips after `; `; and the help to
/// see (`triad run --help`, from the usage block, which is left out like "For more
/// information"; `None` when clap printed no usage).
fn fold(rendered: &str) -> (String, Option<String>) {
    let mut segments: Vec<String> = Vec::new();
    let mut listing = false;
    let mut help = None;
    for line in rendered.lines().map(str::trim) {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            help = Some(help_for(usage));
            break;
        }
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        match segments.last_mut() {
            Some(last) if line.starts_with('[') => {
                last.push(' ');
                last.push_str(line);
            }
            Some(last) if listing && !line.starts_with("tip:") => {
                if !last.ends_with(':') {
                    last.push(',');
                }
                last.push(' ');
                last.push_str(line);
            }
            _ => {
                listing = line.ends_with(':');
                segments.push(line.to_owned());
            }
        }
    }
    (segments.join("; "), help)
}

/// `triad run --help` for a usage line `triad run [OPTIONS] <WORKLOAD> …`.
fn help_for(usage: &str) -> String {
    let words: Vec<&str> = usage
        .split_whitespace()
        .take_while(|word| word.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    format!("{} --help", words.join(" "))
}

/// `triad SUBCOMMAND --help` for the first argument that names a subcommand, else `triad --help`.
fn subcommand_help(args: &[String]) -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let named = args.iter().find(|arg| {
        command
            .get_subcommands()
            .any(|sub| sub.get_name() == arg.as_str())
    });
    match named {
        Some(sub) => format!("triad {sub} --help"),
        None => "triad --help".to_owned(),
    }
}

/// For `triad profile sleep 0.1`: the command to profile goes after `--`.
fn profile_hint(error: &clap::Error, args: Vec<String>) -> Option<String> {
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(unexpected)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let profile = args.iter().position(|arg| arg == "profile")?;
    let at = args.iter().position(|arg| arg == unexpected)?;
    if at < profile || unexpected.starts_with('-') {
        return None;
    }
    let options = args[profile + 1..at].join(" ");
    let command = args[at..].join(" ");
    let options = if options.is_empty() {
        String::new()
    } else {
        format!("{options} ")
    };
    Some(format!(
        "the command to profile goes after `--`: triad profile {options}-- {command}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(args: &[&str]) -> clap::Error {
        Cli::try_parse_from(std::iter::once("triad").chain(args.iter().copied())).unwrap_err()
    }

    #[test]
    fn missing_arguments_keep_their_names() {
        let (line, help) = fold(&parse_error(&["run"]).render().to_string());
        assert!(line.contains("<WORKLOAD>, <INPUT>"), "{line}");
        assert_eq!(help.as_deref(), Some("triad run --help"));
        let args = ["profile", "--lang", "cobol"].map(String::from);
        assert_eq!(subcommand_help(&args), "triad profile --help");
        assert_eq!(subcommand_help(&["--nope".to_owned()]), "triad --help");
    }

    #[test]
    fn a_bad_enum_value_lists_the_accepted_ones() {
        let (line, _) =
            fold(&parse_error(&["profile", "--lang", "cobol", "--", "true"]).to_string());
        assert!(line.contains("'cobol'"), "{line}");
        assert!(line.contains("auto, python, native"), "{line}");
        let (line, _) = fold(&parse_error(&["lab", "--python", "maybe"]).to_string());
        assert!(line.contains("auto, on, off"), "{line}");
    }

    #[test]
    fn a_command_without_dashes_gets_a_hint() {
        let args = ["profile", "--interval", "5", "sleep", "0.1"];
        let error = parse_error(&args);
        let hint = profile_hint(&error, args.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            hint.as_deref(),
            Some("the command to profile goes after `--`: triad profile --interval 5 -- sleep 0.1")
        );
        let args = ["run", "--nope"];
        let error = parse_error(&args);
        assert_eq!(
            profile_hint(&error, args.iter().map(|s| s.to_string()).collect()),
            None
        );
    }
}
