//! Source files and positions: byte spans in, `file:line:col` out.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span { file, start: clamp(start), end: clamp(end.max(start)) }
    }
}

/// Every file read while loading one config (the main file and its `$include`s).
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

/// A resolved position, 1-based like every editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The full text of that line (for a snippet), without its line ending.
    pub line_text: String,
    /// How many columns of `line_text` the span covers (at least 1).
    pub width: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl SourceMap {
    pub fn add(&mut self, path: &Path, text: String) -> FileId {
        let mut line_starts = vec![0];
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            // CRLF counts once: the line starts after the LF.
            if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                line_starts.push(i + 1);
            }
        }
        self.files.push(SourceFile { path: path.to_owned(), text, line_starts });
        FileId(u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX))
    }

    pub fn path(&self, file: FileId) -> Option<&Path> {
        self.files.get(file.0 as usize).map(|f| f.path.as_path())
    }

    pub fn text(&self, file: FileId) -> Option<&str> {
        self.files.get(file.0 as usize).map(|f| f.text.as_str())
    }

    /// Line and column of a span's start; columns count characters, not bytes.
    pub fn locate(&self, span: Span) -> Option<Location> {
        let file = self.files.get(span.file.0 as usize)?;
        let start = (span.start as usize).min(file.text.len());
        let line_idx = file.line_starts.partition_point(|&s| s <= start).saturating_sub(1);
        let line_start = file.line_starts[line_idx];
        let line_end =
            file.text[line_start..].find(['\n', '\r']).map_or(file.text.len(), |i| line_start + i);
        let prefix = file.text.get(line_start..start).unwrap_or("");
        let column = prefix.chars().count() + 1;
        let end = (span.end as usize).clamp(start, line_end);
        let width = file.text.get(start..end).map_or(0, |s| s.chars().count()).max(1);
        Some(Location {
            file: file.path.clone(),
            line: line_idx + 1,
            column,
            line_text: file.text[line_start..line_end].to_owned(),
            width,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let mut map = SourceMap::default();
        let id = map.add(Path::new("a.json5"), "{\r\n  ké: 1,\n  b: 2\r}".to_owned());
        let loc = map.locate(Span::new(id, 8, 9)).unwrap(); // the `:` after `ké`
        assert_eq!((loc.line, loc.column), (2, 5));
        assert_eq!(loc.line_text, "  ké: 1,");
        let loc = map.locate(Span::new(id, 15, 16)).unwrap();
        assert_eq!((loc.line, loc.column, loc.width), (3, 3, 1));
        assert_eq!(loc.to_string(), "a.json5:3:3");
        let loc = map.locate(Span::new(id, 20, 21)).unwrap();
        assert_eq!(loc.line, 4);
    }
}
