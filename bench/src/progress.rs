//! Whether a live progress display (bar or spinner) may be drawn at all.
//!
//! A progress display redraws itself with `\r` and ANSI cursor codes, which
//! are garbage in a log file, a pipe or a dumb terminal. So it is drawn only
//! for a person at a terminal: stderr (where it goes) AND stdout (where the
//! result goes; output piped into `jq` or a file means a script is reading,
//! even when stderr is still the terminal) are both terminals, and `TERM` is
//! not `dumb`. The display never uses colour, so `NO_COLOR` has no colour to
//! remove; it is still honoured as "plain output, please" and turns the
//! display off too, which errs on the side of the person who set it. One
//! rule for every command (the `thingcall` CLI's spinner uses it too).

use std::io::IsTerminal;

/// What the decision depends on, read from the process once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// Whether stdout is a terminal.
    pub stdout: bool,
    /// Whether stderr is a terminal.
    pub stderr: bool,
    /// `$TERM`, when set.
    pub term: Option<String>,
    /// Whether `NO_COLOR` is set to a non-empty value (no-color.org).
    pub no_color: bool,
}

impl Terminal {
    /// This process's streams and environment.
    pub fn current() -> Self {
        Terminal {
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
            term: std::env::var("TERM").ok(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }

    /// Whether a progress display may be drawn on stderr (see the module).
    pub fn allows_progress(&self) -> bool {
        self.stdout && self.stderr && !self.no_color && self.term.as_deref() != Some("dumb")
    }
}

/// [`Terminal::allows_progress`] for this process.
pub fn allowed() -> bool {
    Terminal::current().allows_progress()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tty() -> Terminal {
        Terminal {
            stdout: true,
            stderr: true,
            term: Some("xterm-256color".into()),
            no_color: false,
        }
    }

    #[test]
    fn drawn_only_for_a_person_at_a_terminal() {
        assert!(tty().allows_progress());
        assert!(Terminal {
            term: None,
            ..tty()
        }
        .allows_progress());
        for off in [
            Terminal {
                stdout: false,
                ..tty()
            },
            Terminal {
                stderr: false,
                ..tty()
            },
            Terminal {
                term: Some("dumb".into()),
                ..tty()
            },
            Terminal {
                no_color: true,
                ..tty()
            },
        ] {
            assert!(!off.allows_progress(), "{off:?}");
        }
    }
}
