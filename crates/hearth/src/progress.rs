//! The prompt progress bar of `hearth agent` and `hearth infer model run`: while the server
//! reads a long prompt (llama-server's `return_progress`), one line on stderr, redrawn in
//! place with `\r` and cleared before the answer prints:
//!
//! `reading prompt ▕█████████           ▏  45% (1,024/2,270 tokens)`
//!
//! Drawn when stderr is a terminal; `HEARTH_PROGRESS=1` (or `always`) draws it anyway (tests,
//! logs), `HEARTH_PROGRESS=0` (or `never`) never (`docs/configuration.md`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use hearth_upstream::Progress;

/// Cells of the bar between its ends.
const WIDTH: usize = 20;
/// Eighths of a cell, from one to seven.
const PARTIAL: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// Whether to draw the bar: `HEARTH_PROGRESS`, else whether stderr is a terminal.
pub fn enabled() -> bool {
    match std::env::var("HEARTH_PROGRESS").as_deref().map(str::trim) {
        Ok("1" | "always" | "true" | "on") => true,
        Ok("0" | "never" | "false" | "off") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

/// One bar on stderr. Shared by the progress callback and the code that prints the answer.
#[derive(Debug, Default)]
pub struct Bar {
    /// The drawn line's length in characters (0: nothing on the line), and its text.
    state: Mutex<(usize, String)>,
}

impl Bar {
    /// Draws `progress`, unless the line would not change.
    pub fn draw(&self, progress: &Progress) {
        if progress.total == 0 {
            return;
        }
        let line = line(progress);
        let Ok(mut state) = self.state.lock() else { return };
        if state.1 == line {
            return;
        }
        let width = line.chars().count();
        let pad = state.0.saturating_sub(width);
        let mut err = std::io::stderr().lock();
        // Errors writing informational output are ignored (STYLE 30).
        let _ = write!(err, "\r{line}{:pad$}", "");
        let _ = err.flush();
        *state = (width, line);
    }

    /// Clears the line, if anything is drawn.
    pub fn clear(&self) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.0 == 0 {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{:width$}\r", "", width = state.0);
        let _ = err.flush();
        *state = (0, String::new());
    }
}

/// The bar's text for `progress`.
fn line(progress: &Progress) -> String {
    let total = progress.total.max(1);
    let done = progress.processed.min(total);
    let eighths = (done as u128 * (WIDTH as u128 * 8) / total as u128) as usize;
    let mut bar = "█".repeat(eighths / 8);
    if let Some(&partial) = (eighths % 8).checked_sub(1).and_then(|i| PARTIAL.get(i)) {
        bar.push(partial);
    }
    let cells = bar.chars().count();
    let percent = done * 100 / total;
    format!(
        "reading prompt ▕{bar}{:rest$}▏ {percent:>3}% ({}/{} tokens)",
        "",
        grouped(done),
        grouped(progress.total),
        rest = WIDTH - cells,
    )
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(processed: u64, total: u64, expected: &str) {
        let progress = Progress { processed, total, ..Progress::default() };
        assert_eq!(line(&progress), expected);
    }

    #[test]
    fn lines() {
        check(0, 2270, "reading prompt ▕                    ▏   0% (0/2,270 tokens)");
        check(1024, 2270, "reading prompt ▕█████████           ▏  45% (1,024/2,270 tokens)");
        check(1050, 2270, "reading prompt ▕█████████▎          ▏  46% (1,050/2,270 tokens)");
        check(2270, 2270, "reading prompt ▕████████████████████▏ 100% (2,270/2,270 tokens)");
        check(3000, 2270, "reading prompt ▕████████████████████▏ 100% (2,270/2,270 tokens)");
        check(
            1_234_567,
            9_999_999,
            "reading prompt ▕██▍                 ▏  12% (1,234,567/9,999,999 tokens)",
        );
    }
}
