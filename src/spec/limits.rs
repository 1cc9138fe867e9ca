//! What a task list can be: a cheap line scan, before markdown-rs sees the text, refuses input
//! no task list needs and on which markdown-rs takes time that grows faster than the input
//! (deeply nested lists, very long lines, emphasis and link markers by the thousand in one
//! paragraph, hundreds of thousands of items). The limits are far above what any spec tool
//! writes; each refusal points at the line that crosses one.

use super::blocks::list_marker;
use super::dialect;
use crate::error::Diagnostic;
use crate::source::{Source, lines_with_endings};

/// Lists and block quotes inside each other, at most.
pub const MAX_DEPTH: usize = 32;
/// Bytes in one line outside code blocks, at most.
pub const MAX_LINE: usize = 64 * 1024;
/// Tasks (checkbox items) in one file, at most.
pub const MAX_TASKS: usize = 50_000;
/// Emphasis and link markers (`*`, `_`, `~` runs, `[`, `]`) in one paragraph, at most.
pub const MAX_MARKERS: usize = 256;

/// The first limit `source` crosses, as an error at the line that crosses it.
pub fn check(source: &Source) -> Option<Diagnostic> {
    let text = &source.text;
    let error = |at: usize, len: usize, message: String, help: &str| {
        Some(
            Diagnostic::error(message)
                .at(source.location(at, len))
                .help(help.to_owned())
                .note("a task list this large or this deeply nested is refused rather than parsed: the markdown parser would take minutes"),
        )
    };
    // An open code fence: its character, its length, and the content column of the list item
    // it is in (0 outside lists): the fence ends with that item.
    let mut fence: Option<(u8, usize, usize)> = None;
    // Content columns of the open list items.
    let mut items: Vec<usize> = Vec::new();
    let mut tasks = 0;
    let mut markers = 0;
    let mut at = 0;
    for line in lines_with_endings(text) {
        let start = at;
        at += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = columns(content);
        let body = content.trim_start_matches([' ', '\t']);
        if body.is_empty() {
            markers = 0;
            continue;
        }
        // Container prefixes: block quotes and list markers, several on one line.
        let mut rest = body;
        let mut column = indent;
        let mut quotes = 0;
        let mut new_block = false;
        // A line left of the item a fence is in ends the item, and the fence with it.
        if fence.is_some_and(|(_, _, item)| indent < item) {
            fence = None;
        }
        if fence.is_none() {
            items.retain(|&c| c <= indent);
        }
        loop {
            if let Some(r) = rest.strip_prefix('>') {
                quotes += 1;
                column += 1;
                let r2 = r.strip_prefix([' ', '\t']).unwrap_or(r);
                column += r.len() - r2.len();
                rest = r2;
                new_block = true;
            } else if fence.is_none()
                && let Some((len, _)) = list_marker(rest)
            {
                let after = &rest[len..];
                let text_start = after.trim_start_matches([' ', '\t']);
                let spaces = after.len() - text_start.len();
                let width = if (1..=4).contains(&spaces) { spaces } else { 1 };
                items.push(column + len + width);
                column += len + spaces;
                rest = text_start;
                new_block = true;
                if items.len() + quotes > MAX_DEPTH {
                    return error(
                        start + (content.len() - rest.len()) - spaces - len,
                        len,
                        format!("lists and quotes nested more than {MAX_DEPTH} deep"),
                        "a task list needs a few levels of nesting: flatten this list",
                    );
                }
            } else {
                break;
            }
        }
        // Code fences: their lines are not markdown.
        let run_of = |c: u8| rest.bytes().take_while(|&b| b == c).count();
        if let Some((ch, len, _)) = fence {
            if run_of(ch) >= len && rest[run_of(ch)..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        // A fence opens at most 3 columns right of where its item's content starts; further
        // right it is an indented code block's text, which opens nothing.
        let item = items.last().copied().unwrap_or(0);
        let fence_column = if new_block { column } else { indent };
        if let Some(ch) = rest.bytes().next().filter(|c| matches!(c, b'`' | b'~'))
            && fence_column <= item + 3
        {
            let run = run_of(ch);
            if run >= 3 && !(ch == b'`' && rest[run..].contains('`')) {
                fence = Some((ch, run, item));
                markers = 0;
                continue;
            }
        }
        if line.len() > MAX_LINE {
            return error(
                start,
                1,
                format!(
                    "a line of {} bytes; a line outside code blocks may have at most {MAX_LINE}",
                    line.len()
                ),
                "break the line, or put the text in a fenced code block (``` … ```)",
            );
        }
        if dialect::checkbox(content).is_some() {
            tasks += 1;
            if tasks > MAX_TASKS {
                return error(
                    start,
                    content.len(),
                    format!("more than {MAX_TASKS} tasks in one file"),
                    "split the feature into several features, each with its own tasks.md",
                );
            }
        }
        if new_block || rest.starts_with(['#', '|']) {
            markers = 0;
        }
        markers += inline_markers(rest);
        if markers > MAX_MARKERS {
            return error(
                start,
                content.len(),
                format!(
                    "more than {MAX_MARKERS} emphasis or link markers (`*`, `_`, `~`, `[`, `]`) in one paragraph"
                ),
                "split the paragraph, or put the text in a fenced code block (``` … ```)",
            );
        }
    }
    None
}

/// Leading indentation in columns (tabs to the next multiple of four).
fn columns(line: &str) -> usize {
    let mut col = 0;
    for c in line.bytes() {
        match c {
            b' ' => col += 1,
            b'\t' => col += 4 - col % 4,
            _ => break,
        }
    }
    col
}

/// The markers in `line` that markdown-rs matches against each other, outside code spans:
/// runs of `*` and `~`, runs of `_` not inside a word, and every `[` and `]`.
fn inline_markers(line: &str) -> usize {
    let b = line.as_bytes();
    let mut count = 0;
    let mut code = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let run = b[i..].iter().take_while(|&&x| x == c).count();
        match c {
            b'`' => code = !code,
            _ if code => {}
            b'*' | b'~' => count += 1,
            b'_' => {
                let word = |x: Option<&u8>| x.is_some_and(u8::is_ascii_alphanumeric);
                if !(i > 0 && word(b.get(i - 1)) && word(b.get(i + run))) {
                    count += 1;
                }
            }
            b'[' | b']' => count += run,
            _ => {}
        }
        i += run;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(text: &str) -> Option<String> {
        check(&Source::new("t.md", text.as_bytes().to_vec())).map(|d| d.to_string())
    }

    #[test]
    fn ordinary_lists_pass() {
        let text =
            "# Tasks\n\n- [ ] 1. **Do it**\n  - _Dependencies: None_\n  ```sh\n  echo\n  ```\n";
        assert_eq!(first_error(text), None);
    }

    #[test]
    fn deep_nesting_is_refused_where_it_gets_too_deep() {
        let mut text = String::new();
        for depth in 0..40 {
            text.push_str(&"  ".repeat(depth));
            text.push_str("- x\n");
        }
        let e = first_error(&text).expect("refused");
        assert!(e.starts_with("t.md:33:65: lists and quotes nested"), "{e}");
        let one_line = "- ".repeat(40) + "x\n";
        assert!(
            first_error(&one_line)
                .expect("refused")
                .starts_with("t.md:1:65:")
        );
        assert_eq!(first_error(&("- ".repeat(32) + "x\n")), None);
    }

    #[test]
    fn long_lines_are_refused_outside_code() {
        let long = "a".repeat(MAX_LINE + 1);
        let e = first_error(&format!("# T\n\n{long}\n")).expect("refused");
        assert!(e.starts_with("t.md:3:1: a line of 65538 bytes"), "{e}");
        assert_eq!(first_error(&format!("```\n{long}\n```\n")), None);
    }

    #[test]
    fn markers_count_per_paragraph() {
        let many = "*_".repeat(MAX_MARKERS);
        assert!(first_error(&many).is_some());
        let per_item = "- **a** and **b**\n".repeat(MAX_MARKERS);
        assert_eq!(first_error(&per_item), None);
        assert_eq!(first_error(&"snake_case_name ".repeat(MAX_MARKERS)), None);
        assert_eq!(first_error(&"`*_*` ".repeat(MAX_MARKERS)), None);
    }
}
