//! A spinner on stderr while a command waits on something that can take
//! long (an offline device within `--connect-timeout`, a slow device), so a
//! person sees the command is alive. Drawn only where
//! [`thingcall_bench::progress::allowed`] says a person is watching (stdout
//! and stderr terminals, not `TERM=dumb`, no `NO_COLOR`): the bench's bars
//! follow the same rule, and piped output never gets `\r` or escapes.

use std::future::Future;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A wait shorter than this shows nothing: no flicker on a quick call.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// Awaits `work`; if it is still running after [`SHOW_AFTER`] and a spinner
/// is allowed, shows `message` with a spinner and the time waited, and
/// clears it before returning, so the command's own output starts on a
/// clean line.
pub async fn while_waiting<F: Future>(message: impl FnOnce() -> String, work: F) -> F::Output {
    if !thingcall_bench::progress::allowed() {
        return work.await;
    }
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(SHOW_AFTER) => {}
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        spinner.set_style(style);
    }
    spinner.set_message(message());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let done = work.await;
    spinner.finish_and_clear();
    done
}
