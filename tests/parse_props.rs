//! Parsing never panics and always answers: any bytes made of markdown-like fragments (emoji,
//! setext headings, nested lists, code fences, HTML comments, CR and CRLF line endings, invalid
//! UTF-8) give a task list, or errors that point into the file.

use cargo_spec_exec::spec;
use proptest::prelude::*;

/// Pieces of task lists, and of what breaks parsers: each is a line or part of one.
const FRAGMENTS: &[&str] = &[
    "- [ ] 1. Build it",
    "- [x] 2. Done ✅",
    "  - [ ] 2.1 Nested",
    "    - [ ] 2.1.1 Deeper",
    "1. ```sh",
    "```",
    "~~~",
    "  ```rust",
    "*",
    "- ",
    "1. ",
    "- - - -",
    "# Tasks",
    "### Track A: Core (Dependencies: None)",
    "### Track B: Rest (Dependencies: Track A)",
    "Done ✅ see below",
    "Setup (Dependencies: Track Z)",
    "---",
    "===",
    "<!-- a comment",
    "-->",
    "<!-- - [ ] 9. Hidden -->",
    "  - _Dependencies: Task 1_",
    "  - _Requirements: 1.1_",
    "> Primary Agent: someone",
    "| a | b |",
    "|---|---|",
    "**bold** and _em_ and `code`",
    "*_*_*_*_",
    "[link](x) [ref]",
    "[ref]: https://example.com",
    "#### Task 1.1: Heading task",
    "İ ß 🦀 é",
    "\t- [ ] 3. Tabbed",
    "",
];

/// Line endings, including a lone CR.
const ENDINGS: &[&[u8]] = &[b"\n", b"\r\n", b"\r", b"\n\n"];

/// Bytes that are not UTF-8.
const INVALID: &[&[u8]] = &[b"\xff", b"\xf0\x9f", b"\xe2\x9c", b"\xc3"];

fn document() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => (0..FRAGMENTS.len(), 0..ENDINGS.len()).prop_map(|(f, e)| {
            let mut v = FRAGMENTS[f].as_bytes().to_vec();
            v.extend_from_slice(ENDINGS[e]);
            v
        }),
        1 => (0..INVALID.len()).prop_map(|i| INVALID[i].to_vec()),
        1 => (0..FRAGMENTS.len()).prop_map(|f| FRAGMENTS[f].as_bytes().to_vec()),
        1 => (0usize..6).prop_map(|n| b"  ".repeat(n)),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn parsing_never_panics_and_always_answers(bytes in document()) {
        let len = bytes.len();
        let list = spec::parse_bytes("tasks.md", bytes);
        // An answer: tasks, or an error saying why there are none.
        prop_assert!(!list.tasks.is_empty() || list.has_errors());
        // Lines end at `\n`, `\r\n` or a lone `\r`; one more after a final ending.
        let lines = cargo_spec_exec::source::lines_with_endings(&list.source.text).count() + 1;
        for d in &list.diagnostics {
            if let Some(loc) = &d.location
                && loc.line > 0
            {
                prop_assert!(loc.line <= lines, "{d} is past the end of {len} bytes");
                prop_assert!(loc.column >= 1, "{d}");
            }
        }
    }
}
