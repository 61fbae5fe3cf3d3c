//! One process-wide redactor: every secret value hearth resolves is registered here, and any
//! text that may carry upstream bytes is passed through [`redact`] before it is shown or stored
//! (Invariant 5, `docs/security.md`, "Secrets").
//!
//! Values are masked by value, whatever surrounds them: `Incorrect API key provided: KEY`, a
//! plain-text body, a Groq `gsk_…` key the pattern mask in `hearth-upstream::classify` does not
//! know. Every occurrence of every registered value is replaced with [`MASK`]; where
//! occurrences overlap or touch (two values sharing characters, one value inside another) their
//! union becomes one [`MASK`], so no fragment of any value survives. That is "longest first"
//! made exact: a value that contains another is masked whole.
//!
//! What is registered (by [`crate::Secret::resolve`], `hearth_upstream::secret_keys` and the
//! gateway's auth): provider API keys (also the rotated `VARS` keys), provider header values
//! read from `${VAR}` or a secret ref (each variable of a template too), the gateway token and
//! password. Not registered: local markers (`lmstudio`, `ollama`, `*-local`, …: they are not
//! secret, and masking them would mangle ordinary messages), literal header values (`X-Title:
//! hearth` is configuration, not a credential) and values shorter than [`MIN_CHARS`]
//! characters, which would mangle ordinary text (the pattern mask still applies to them). The
//! same minimum holds for the gateway token and password: they never travel upstream, so only a
//! hearth bug could echo them, and a credential that short is guessable anyway.
//!
//! At most [`MAX_VALUES`] values are held; past that the oldest registration is dropped, so a
//! long-running gateway that rotates keys through hot reloads keeps masking the newest ones.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

use aho_corasick::AhoCorasick;

/// What a secret value is replaced with.
pub const MASK: &str = "***";
/// Shortest value registered, in characters.
pub const MIN_CHARS: usize = 6;
/// Most values held at once.
pub const MAX_VALUES: usize = 1024;

static GLOBAL: LazyLock<RwLock<Redactor>> = LazyLock::new(|| RwLock::new(Redactor::default()));

/// Registers a secret value with the process-wide redactor. Values shorter than [`MIN_CHARS`]
/// and local markers are ignored; registering a value twice is a cheap no-op.
pub fn register(value: &str) {
    if !Redactor::accepts(value) {
        return;
    }
    {
        let guard = GLOBAL.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.contains(value) {
            return;
        }
    }
    GLOBAL.write().unwrap_or_else(std::sync::PoisonError::into_inner).register(value);
}

/// `text` with every registered secret value replaced by [`MASK`]. Borrows `text` when nothing
/// matches (or nothing is registered).
pub fn redact(text: &str) -> Cow<'_, str> {
    {
        let guard = GLOBAL.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !guard.stale {
            return guard.redact(text);
        }
    }
    let mut guard = GLOBAL.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.prepare();
    guard.redact(text)
}

/// [`redact`] in place, for a `String` about to be stored or shown.
pub fn redact_string(text: &mut String) {
    if let Cow::Owned(masked) = redact(text) {
        *text = masked;
    }
}

/// A set of secret values and a matcher over them. The process-wide one is behind [`register`]
/// and [`redact`]; tests build their own.
#[derive(Debug, Default)]
pub struct Redactor {
    /// In registration order (the oldest is dropped first).
    values: Vec<String>,
    /// The same values, for the check every request makes (`Secret::resolve` registers what it
    /// reads each time).
    known: HashSet<String>,
    /// Over `values`, built by [`Redactor::prepare`]; `None` when there are none, or when the
    /// automaton could not be built (then [`Redactor::redact`] searches value by value).
    matcher: Option<AhoCorasick>,
    /// `values` changed since `matcher` was built (registering is cheap; the automaton is built
    /// once, when text is next redacted).
    stale: bool,
}

impl Redactor {
    /// Whether `value` would be registered: long enough and not a local marker.
    pub fn accepts(value: &str) -> bool {
        value.chars().count() >= MIN_CHARS && !crate::secret::is_local_marker_value(value)
    }

    pub fn contains(&self, value: &str) -> bool {
        self.known.contains(value)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds `value` (see [`register`] for what is ignored).
    pub fn register(&mut self, value: &str) {
        if !Self::accepts(value) || self.contains(value) {
            return;
        }
        if self.values.len() >= MAX_VALUES {
            let oldest = self.values.remove(0);
            self.known.remove(&oldest);
        }
        self.values.push(value.to_owned());
        self.known.insert(value.to_owned());
        self.stale = true;
    }

    /// Builds the matcher over the values registered so far.
    pub fn prepare(&mut self) {
        if self.stale {
            self.matcher = AhoCorasick::new(&self.values).ok();
            self.stale = false;
        }
    }

    /// `text` with every occurrence of every value replaced by [`MASK`]; overlapping or
    /// touching occurrences become one [`MASK`]. Before [`Redactor::prepare`] (or when the
    /// automaton could not be built) it searches value by value, with the same result.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.values.is_empty() || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut spans: Vec<(usize, usize)> = match &self.matcher {
            Some(ac) if !self.stale => {
                ac.find_overlapping_iter(text).map(|m| (m.start(), m.end())).collect()
            }
            _ => self.values.iter().flat_map(|v| occurrences(text, v)).collect(),
        };
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut idx = 0;
        while idx < spans.len() {
            let (start, mut end) = spans[idx];
            idx += 1;
            while idx < spans.len() && spans[idx].0 <= end {
                end = end.max(spans[idx].1);
                idx += 1;
            }
            // Matches of whole UTF-8 strings in a UTF-8 string start and end on char
            // boundaries, so these slices cannot split a character.
            out.push_str(text.get(copied..start).unwrap_or_default());
            out.push_str(MASK);
            copied = end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        Cow::Owned(out)
    }
}

/// Every occurrence of `needle` in `text`, overlapping ones included.
fn occurrences<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + text.get(from..)?.find(needle)?;
        // Next search from the following character, so overlapping occurrences are found.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
        Some((at, at + needle.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks both search paths agree, and returns the prepared one.
    fn redactor(values: &[&str]) -> Prepared {
        let mut r = Redactor::default();
        for v in values {
            r.register(v);
        }
        let unprepared = Redactor {
            values: r.values.clone(),
            known: r.known.clone(),
            matcher: None,
            stale: true,
        };
        r.prepare();
        assert!(r.matcher.is_some() || r.values.is_empty());
        Prepared { r, unprepared }
    }

    struct Prepared {
        r: Redactor,
        unprepared: Redactor,
    }

    impl Prepared {
        fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
            let masked = self.r.redact(text);
            assert_eq!(masked, self.unprepared.redact(text), "the two search paths differ");
            masked
        }

        fn is_empty(&self) -> bool {
            self.r.is_empty()
        }

        fn len(&self) -> usize {
            self.r.len()
        }
    }

    #[test]
    fn none_registered_borrows() {
        let r = redactor(&[]);
        assert!(matches!(r.redact("Incorrect API key provided: abcdefgh"), Cow::Borrowed(_)));
        let r = redactor(&["gsk_0123456789"]);
        assert!(matches!(r.redact("nothing secret here"), Cow::Borrowed(_)));
        assert!(matches!(r.redact(""), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_every_occurrence() {
        let r = redactor(&["gsk_0123456789", "hdr-value-42"]);
        assert_eq!(
            r.redact("Incorrect API key provided: gsk_0123456789 (gsk_0123456789) hdr-value-42."),
            "Incorrect API key provided: *** (***) ***."
        );
        assert_eq!(r.redact("gsk_0123456789"), "***");
    }

    #[test]
    fn longest_first() {
        // One value inside another: the longer is masked whole, not as `***-suffix`.
        let r = redactor(&["sk-abcdef", "sk-abcdef-longer"]);
        assert_eq!(r.redact("key sk-abcdef-longer and sk-abcdef!"), "key *** and ***!");
        let r = redactor(&["sk-abcdef-longer", "sk-abcdef"]);
        assert_eq!(r.redact("key sk-abcdef-longer and sk-abcdef!"), "key *** and ***!");
    }

    #[test]
    fn overlapping_values_leave_no_fragment() {
        let r = redactor(&["abcdef12", "ef12ghij"]);
        assert_eq!(r.redact("xxabcdef12ghijyy"), "xx***yy");
        // Touching occurrences become one mask.
        assert_eq!(r.redact("abcdef12ef12ghij"), "***");
        // A value overlapping itself.
        let r = redactor(&["aaaaaa"]);
        assert_eq!(r.redact("baaaaaaab"), "b***b");
    }

    #[test]
    fn utf8_boundaries() {
        let r = redactor(&["clé-secrète-ü"]);
        assert_eq!(r.redact("é→clé-secrète-ü←é"), "é→***←é");
        let r = redactor(&["ключ-123456"]);
        assert_eq!(r.redact("ключ-ключ-123456ключ"), "ключ-***ключ");
        let text = "日本語aaaaaaa日本語";
        let spans: Vec<_> = occurrences(text, "aaaaaa").collect();
        assert_eq!(spans, vec![(9, 15), (10, 16)]);
        assert_eq!(redactor(&["aaaaaa"]).redact(text), "日本語***日本語");
    }

    #[test]
    fn ignores_short_values_and_markers() {
        let r = redactor(&["abc", "12345", "lmstudio", "ollama", "my-box-local", "no-key"]);
        assert!(r.is_empty());
        assert_eq!(r.redact("abc lmstudio ollama"), "abc lmstudio ollama");
        let r = redactor(&["123456"]);
        assert_eq!(r.len(), 1);
        // Multi-byte characters count as one each.
        assert!(Redactor::accepts("ééééé\u{e9}"));
        assert!(!Redactor::accepts("ééééé"));
    }

    #[test]
    fn cap_drops_the_oldest() {
        let mut r = Redactor::default();
        for i in 0..=MAX_VALUES {
            r.register(&format!("secret-{i:06}"));
        }
        assert_eq!(r.len(), MAX_VALUES);
        assert!(!r.contains("secret-000000"));
        r.prepare();
        assert_eq!(r.redact("secret-000000"), "secret-000000");
        assert_eq!(r.redact(&format!("x secret-{MAX_VALUES:06} y")), "x *** y");
        // Registering again is a no-op.
        r.register(&format!("secret-{MAX_VALUES:06}"));
        assert_eq!(r.len(), MAX_VALUES);
    }

    proptest::proptest! {
        /// No value survives, and text outside every occurrence is kept as it was.
        #[test]
        fn no_value_survives(
            values in proptest::collection::vec("[ab]{6,8}", 1..4),
            text in "[ab ]{0,60}",
        ) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let r = redactor(&values);
            let masked = r.redact(&text);
            for v in &values {
                proptest::prop_assert!(!masked.contains(v), "{v} in {masked}");
            }
            if !values.iter().any(|v| text.contains(v)) {
                proptest::prop_assert_eq!(masked.as_ref(), text.as_str());
            }
        }
    }

    #[test]
    fn global_register_and_redact() {
        register("global-redact-test-value");
        register("global-redact-test-value");
        register("tiny");
        assert_eq!(redact("a global-redact-test-value b tiny"), "a *** b tiny");
        let mut s = "x global-redact-test-value".to_owned();
        redact_string(&mut s);
        assert_eq!(s, "x ***");
    }
}
