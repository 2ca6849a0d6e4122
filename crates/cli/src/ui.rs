//! How `gust` talks to a person: colour only when the stream is a terminal (`NO_COLOR` turns
//! it off, `CLICOLOR_FORCE=1` turns it on anywhere), and a spinner on stderr while a slow step
//! (an upload, a compile on the server) runs, drawn only on a terminal.

use std::fmt::Display;
use std::time::Duration;

use console::style;

/// Applies `NO_COLOR` (<https://no-color.org>) on top of console's own terminal detection.
pub fn init() {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

/// `ok: <message>` on stdout, `ok:` in green.
pub fn ok(message: impl Display) {
    println!("{} {message}", style("ok:").green().bold());
}

/// `gust: <message>` on stderr, `gust:` in red: how every failure ends.
pub fn error(message: impl Display) {
    eprintln!("{} {message}", style("gust:").for_stderr().red().bold());
}

/// `gust: warning: <message>` on stderr, in yellow: a step failed that the command goes on
/// without.
pub fn warn(message: impl Display) {
    eprintln!(
        "{} {message}",
        style("gust: warning:").for_stderr().yellow().bold()
    );
}

/// `gust: <message>` on stderr, for progress notes (`building hello ...`).
pub fn note(message: impl Display) {
    eprintln!("{} {message}", style("gust:").for_stderr().cyan().bold());
}

/// A table header line, bold.
pub fn header(line: &str) -> String {
    style(line).bold().to_string()
}

/// What a deploy did to one entity, coloured by the kind of change.
pub fn change(verb: &str, rest: impl Display) {
    let verb = match verb.split_whitespace().next().unwrap_or("") {
        "created" => style(verb).green(),
        "updated" => style(verb).yellow(),
        "deleted" => style(verb).red(),
        _ => style(verb).dim(),
    };
    println!("{verb} {rest}");
}

/// An activation's outcome, green for success and red otherwise.
pub fn outcome(status: &str) -> String {
    if status == "success" {
        style(status).green().to_string()
    } else {
        style(status).red().to_string()
    }
}

/// A spinner with a message on stderr until dropped; nothing is drawn off a terminal.
pub struct Spinner(indicatif::ProgressBar);

pub fn spinner(message: impl Into<String>) -> Spinner {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    Spinner(bar)
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A byte count for people: `812 B`, `3.4 KB`, `12.0 MB`.
pub fn bytes(n: usize) -> String {
    const KB: f64 = 1024.0;
    let f = n as f64;
    if f < KB {
        format!("{n} B")
    } else if f < KB * KB {
        format!("{:.1} KB", f / KB)
    } else {
        format!("{:.1} MB", f / KB / KB)
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_read_like_people_write_them() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4 KB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MB");
    }
}
