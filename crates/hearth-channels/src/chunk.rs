//! Splitting a reply into messages a channel accepts (spec §14.4's chunker): at most `limit`
//! characters each, cut at the last paragraph break that fits, else line break, else sentence
//! end, else space, else anywhere (on a character boundary). A cut inside a ``` fence closes
//! the fence at the end of the piece and reopens it (with its info string) at the start of the
//! next, so every piece renders as the code it is.

/// The smallest limit honored (room for a reopened fence and some text).
pub const MIN_LIMIT: usize = 32;
const FENCE: &str = "```";
/// What closing a fence adds to a piece.
const CLOSE: &str = "\n```";

/// The pieces of `text`, each at most `limit` characters (`limit` below [`MIN_LIMIT`] counts as
/// [`MIN_LIMIT`]). Empty text gives no pieces.
pub fn chunk(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(MIN_LIMIT);
    let mut out = Vec::new();
    let mut rest = text.trim();
    // The opener line (```` ```rust ````) of a fence a previous piece left open.
    let mut reopen: Option<String> = None;
    while !rest.is_empty() {
        let prefix = reopen.as_ref().map(|f| format!("{f}\n")).unwrap_or_default();
        let prefix_chars = prefix.chars().count();
        let rest_chars = rest.chars().count();
        if prefix_chars + rest_chars <= limit {
            out.push(format!("{prefix}{rest}"));
            break;
        }
        // Room for this piece's text, keeping space to close a fence.
        let budget = limit.saturating_sub(prefix_chars + CLOSE.len()).max(1);
        let cut = cut_at(rest, budget);
        let (piece, tail) = rest.split_at(cut);
        let piece = piece.trim_end();
        let open = fence_open_after(reopen.as_deref(), piece);
        let mut message = format!("{prefix}{piece}");
        if open.is_some() {
            message.push_str(CLOSE);
        }
        out.push(message);
        reopen = open;
        rest = if reopen.is_some() {
            tail.trim_start_matches(['\n', '\r'])
        } else {
            tail.trim_start()
        };
    }
    out
}

/// The byte index to cut `text` at: the best boundary within `budget` characters.
fn cut_at(text: &str, budget: usize) -> usize {
    let window_end = text.char_indices().nth(budget).map_or(text.len(), |(i, _)| i);
    let window = &text[..window_end];
    // A boundary in the first quarter makes a tiny piece: look for a later one first.
    let floor = window.len() / 4;
    let after = |at: Option<usize>, skip: usize| at.map(|i| i + skip).filter(|i| *i > floor);
    if let Some(i) = after(window.rfind("\n\n"), 2) {
        return i;
    }
    if let Some(i) = after(window.rfind('\n'), 1) {
        return i;
    }
    let sentence = [". ", "! ", "? ", "。"]
        .iter()
        .filter_map(|end| window.rfind(end).map(|i| i + end.len()))
        .max();
    if let Some(i) = after(sentence, 0) {
        return i;
    }
    if let Some(i) = after(window.rfind(char::is_whitespace), 1) {
        return i;
    }
    window_end.max(text.char_indices().nth(1).map_or(text.len(), |(i, _)| i))
}

/// Whether a fence is open at the end of `piece` (starting open with `opener` when given), and
/// the opener line to reopen it with.
fn fence_open_after(opener: Option<&str>, piece: &str) -> Option<String> {
    let mut open = opener.map(str::to_owned);
    for line in piece.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with(FENCE) {
            open = match open {
                Some(_) => None,
                None => Some(trimmed.trim_end().chars().take(64).collect()),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, limit: usize) -> Vec<String> {
        let pieces = chunk(text, limit);
        for p in &pieces {
            assert!(
                p.chars().count() <= limit.max(MIN_LIMIT),
                "{} > {limit}: {p:?}",
                p.chars().count()
            );
            assert!(!p.trim().is_empty(), "empty piece in {pieces:?}");
            assert_eq!(p.matches(FENCE).count() % 2, 0, "unbalanced fence in {p:?}");
        }
        pieces
    }

    #[test]
    fn short_text_is_one_piece_and_empty_text_none() {
        assert_eq!(check("  hello  ", 100), ["hello"]);
        assert!(chunk(" \n ", 100).is_empty());
    }

    #[test]
    fn paragraphs_first_then_lines_then_sentences_then_words() {
        let text = format!("{}\n\n{}", "a".repeat(40), "b".repeat(40));
        assert_eq!(check(&text, 60), ["a".repeat(40), "b".repeat(40)]);
        let text = format!("{}\n{}", "a".repeat(40), "b".repeat(40));
        assert_eq!(check(&text, 60), ["a".repeat(40), "b".repeat(40)]);
        let text = "First sentence is here. Second sentence is also here. Third one.";
        assert_eq!(
            check(text, 35),
            ["First sentence is here.", "Second sentence is also here.", "Third one."]
        );
        let text = "word ".repeat(30);
        let pieces = check(&text, 40);
        assert!(
            pieces.iter().all(|p| !p.starts_with(' ')
                && !p.ends_with(' ')
                && p.split(' ').all(|w| w == "word")),
            "{pieces:?}"
        );
        assert_eq!(pieces.join(" ").split(' ').count(), 30);
    }

    #[test]
    fn a_long_word_is_cut_on_a_character_boundary() {
        let text = "é".repeat(100);
        let pieces = check(&text, 40);
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn fences_are_closed_and_reopened() {
        let code: String = (0..30).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("Here is code:\n\n```rust\n{code}```\n\nDone.");
        let pieces = check(&text, 120);
        assert!(pieces.len() > 2, "{pieces:?}");
        for p in &pieces[1..pieces.len() - 1] {
            assert!(p.starts_with("```rust\n"), "{p:?}");
        }
        // Nothing lost: every line of code is in some piece.
        for i in 0..30 {
            assert!(pieces.iter().any(|p| p.contains(&format!("let x{i} = {i};"))), "x{i}");
        }
        assert!(pieces.last().is_some_and(|p| p.ends_with("Done.")));
    }

    #[test]
    fn every_limit_and_text_keeps_the_bounds() {
        let text =
            "Para one. It has words.\n\n```\ncode line one\ncode line two\n```\nline\n".repeat(20);
        for limit in [1, 32, 33, 50, 77, 200, 4000] {
            let pieces = check(&text, limit);
            let words: usize = pieces.iter().map(|p| p.matches("code line").count()).sum();
            assert!(words >= 40, "limit {limit}: lost code lines");
        }
    }
}
