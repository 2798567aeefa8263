//! `thingcall completions SHELL`: the shell's completion script, generated
//! from the same clap definition that parses the command line, so the
//! completions can never offer a flag the binary does not take.

use clap::CommandFactory;
use thingcall_client::exit;

use super::{write_stdout, Failure};
use crate::cli::{Cli, CompletionsArgs};

/// Writes the script on stdout; needs no gateway.
pub fn run(args: CompletionsArgs) -> Result<u8, Failure> {
    write_stdout(&script(args.shell.into())).map(|_| exit::OK)
}

/// The completion script for `shell`, for the binary name `thingcall`.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "thingcall", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    /// Each script names the binary and offers the subcommands and the
    /// global --output flag.
    #[test]
    fn every_script_offers_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            for word in ["thingcall", "invoke", "devices", "completions", "output"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }
}
