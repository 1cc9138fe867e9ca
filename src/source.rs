//! A user's file as read from disk: the original bytes (never rewritten except by surgical
//! edits), a lossy UTF-8 view for parsing, and the maps between the two.
//!
//! Files that are not valid UTF-8 occur in practice (mangled emoji in generated task lists).
//! They are parsed through the lossy view; every offset that leads to an edit is mapped back
//! to the original bytes so that an edit changes exactly the bytes it means to.

use std::path::{Path, PathBuf};

use crate::error::Location;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone)]
pub struct Source {
    /// The path shown to users.
    pub display_path: PathBuf,
    /// The file's bytes, exactly as read.
    pub bytes: Vec<u8>,
    /// The lossy UTF-8 view the parser reads.
    pub text: String,
    /// After each replaced (invalid) byte run: (offset in `text`, offset in `bytes`).
    breakpoints: Vec<(usize, usize)>,
    /// Offsets in `text` where each line starts.
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(display_path: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        let mut text = String::with_capacity(bytes.len());
        let mut breakpoints = Vec::new();
        let mut byte_offset = 0;
        // A byte order mark is not text: markdown would not see front matter behind it.
        if bytes.starts_with(BOM) {
            byte_offset = BOM.len();
            breakpoints.push((0, BOM.len()));
        }
        for chunk in bytes[byte_offset..].utf8_chunks() {
            text.push_str(chunk.valid());
            byte_offset += chunk.valid().len();
            if !chunk.invalid().is_empty() {
                text.push(char::REPLACEMENT_CHARACTER);
                byte_offset += chunk.invalid().len();
                breakpoints.push((text.len(), byte_offset));
            }
        }
        let line_starts = std::iter::once(0)
            .chain(
                lines_with_endings(&text)
                    .scan(0, |at, line| {
                        *at += line.len();
                        Some(line.ends_with(['\n', '\r']).then_some(*at))
                    })
                    .flatten(),
            )
            .collect();
        Source {
            display_path: display_path.into(),
            bytes,
            text,
            breakpoints,
            line_starts,
        }
    }

    /// Maps an offset in `text` to the offset in `bytes` of the same character.
    pub fn byte_offset(&self, text_offset: usize) -> usize {
        let i = self
            .breakpoints
            .partition_point(|&(text, _)| text <= text_offset);
        match i.checked_sub(1) {
            None => text_offset,
            Some(i) => {
                let (text, bytes) = self.breakpoints[i];
                bytes + (text_offset - text)
            }
        }
    }

    /// `text_offset`, within `text` and moved back to the start of the character it falls in.
    fn floor(&self, text_offset: usize) -> usize {
        let mut at = text_offset.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// 1-based line and column (in characters) of an offset in `text` (an offset inside a
    /// character counts as that character's).
    pub fn line_col(&self, text_offset: usize) -> (usize, usize) {
        let text_offset = self.floor(text_offset);
        let line = self.line_starts.partition_point(|&s| s <= text_offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..text_offset].chars().count() + 1;
        (line, column)
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// The offset in `text` where the line holding `text_offset` ends (before `\r\n`/`\n`).
    pub fn line_end(&self, text_offset: usize) -> usize {
        let text_offset = self.floor(text_offset);
        let rest = &self.text[text_offset..];
        let end = rest
            .find(['\n', '\r'])
            .map_or(self.text.len(), |i| text_offset + i);
        if end > text_offset && self.text.as_bytes()[end - 1] == b'\r' {
            end - 1
        } else {
            end
        }
    }

    /// A location covering `len` bytes of `text` from `text_offset`.
    pub fn location(&self, text_offset: usize, len: usize) -> Location {
        let text_offset = self.floor(text_offset);
        let (line, column) = self.line_col(text_offset);
        let line_text = self.line_text(line).to_owned();
        let end = (text_offset + len).min(self.line_end(text_offset));
        let width = self
            .text
            .get(text_offset..end)
            .map_or(1, |s| s.chars().count().max(1));
        Location {
            path: self.display_path.clone(),
            line,
            column,
            line_text,
            width,
        }
    }

    /// Whether the file ends its lines with `\r\n`.
    pub fn uses_crlf(&self) -> bool {
        self.text.contains("\r\n")
    }
}

/// The lines of `text` with their endings: `\n`, `\r\n`, or a lone `\r` (markdown counts all
/// three).
pub fn lines_with_endings(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let b = rest.as_bytes();
        let end = match b.iter().position(|&c| c == b'\n' || c == b'\r') {
            None => b.len(),
            Some(i) if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') => i + 2,
            Some(i) => i + 1,
        };
        let (line, next) = rest.split_at(end);
        rest = next;
        Some(line)
    })
}

/// The lines of `text` without their endings (`\n`, `\r\n` or a lone `\r`).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    lines_with_endings(text).map(|l| l.trim_end_matches(['\n', '\r']))
}

/// Shows `path` relative to `base` when it lies inside it.
pub fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_offsets_around_invalid_bytes() {
        let bytes = b"ab\xff\xfecd\n\xf0x".to_vec();
        let src = Source::new("t.md", bytes.clone());
        assert_eq!(src.text, "ab\u{fffd}\u{fffd}cd\n\u{fffd}x");
        let c = src.text.find('c').unwrap();
        assert_eq!(bytes[src.byte_offset(c)], b'c');
        let x = src.text.find('x').unwrap();
        assert_eq!(bytes[src.byte_offset(x)], b'x');
        assert_eq!(src.byte_offset(1), 1);
        assert_eq!(src.line_col(x), (2, 2));
    }

    #[test]
    fn a_byte_order_mark_is_not_text() {
        let src = Source::new("t.md", b"\xEF\xBB\xBF---\nab".to_vec());
        assert_eq!(src.text, "---\nab");
        assert_eq!(src.byte_offset(0), 3);
        assert_eq!(src.byte_offset(4), 7);
    }

    #[test]
    fn lines_and_columns_count_characters() {
        let src = Source::new("t.md", "é1\r\nzz\n".as_bytes().to_vec());
        assert_eq!(src.line_col(src.text.find('1').unwrap()), (1, 2));
        assert_eq!(src.line_text(1), "é1");
        assert_eq!(src.line_text(2), "zz");
        assert_eq!(src.line_end(0), 3);
        assert!(src.uses_crlf());
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        let src = Source::new("t.md", b"a\rb\r\nc\nd".to_vec());
        assert_eq!(src.line_col(2), (2, 1));
        assert_eq!(src.line_col(5), (3, 1));
        assert_eq!(src.line_col(7), (4, 1));
        assert_eq!(src.line_text(1), "a");
        assert_eq!(src.line_text(2), "b");
        assert_eq!(src.line_end(2), 3);
        assert_eq!(
            lines("a\rb\r\nc\nd").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn an_offset_inside_a_character_is_that_character() {
        let src = Source::new(
            "t.md",
            "a✅b
c"
            .as_bytes()
            .to_vec(),
        );
        assert_eq!(src.line_col(2), (1, 2));
        assert_eq!(src.line_end(3), 5);
        let loc = src.location(2, 3);
        assert_eq!((loc.line, loc.column, loc.width), (1, 2, 1));
        assert_eq!(src.line_col(99), (2, 2));
    }
}
