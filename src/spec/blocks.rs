//! The markdown tree of a large task list, parsed in parallel.
//!
//! markdown-rs takes time that grows faster than the input (a 1 MB tasks.md takes most of a
//! second). A level-one-to-six heading at the start of a line, after a blank line, outside any
//! fenced code block, HTML block or front matter, ends every block before it: lists, quotes,
//! paragraphs. So the text is cut at such headings into pieces of a few dozen kilobytes, the
//! pieces are parsed at once with rayon, and their nodes are moved to where they stand in the
//! whole file. The result is the tree of the whole-file parse (a test holds it to that).
//!
//! Where a cut could change the meaning, the file is parsed whole: link reference and footnote
//! definitions (they reach across the file), and a piece that ends inside an open code block
//! or HTML block (the line scanner and markdown-rs disagreeing about where a fence ends).

use markdown::ParseOptions;
use markdown::mdast::Node;
use markdown::unist::Point;
use rayon::prelude::*;

/// Below this, one parse is fast enough (a few milliseconds).
const PARALLEL_FROM: usize = 64 * 1024;
/// The smallest piece worth a task of its own.
const PIECE: usize = 16 * 1024;

/// The tree of `text`, as `markdown::to_mdast` makes it.
/// `options` makes the parse options (they cannot be shared between threads).
pub fn to_mdast(text: &str, options: fn() -> ParseOptions) -> Result<Node, String> {
    if text.len() >= PARALLEL_FROM
        && let Some(cuts) = cuts(text)
        && cuts.len() > 1
        && let Some(root) = parse_pieces(text, &cuts, options)?
    {
        return Ok(root);
    }
    markdown::to_mdast(text, &options()).map_err(|m| m.to_string())
}

/// Parses the pieces starting at `cuts` (the first is 0) and joins them into one root; `None`
/// when a piece ends inside a block the cut may have split.
fn parse_pieces(
    text: &str,
    cuts: &[usize],
    options: fn() -> ParseOptions,
) -> Result<Option<Node>, String> {
    let pieces: Vec<(usize, &str)> = cuts
        .iter()
        .enumerate()
        .map(|(k, &at)| {
            (
                at,
                &text[at..cuts.get(k + 1).copied().unwrap_or(text.len())],
            )
        })
        .collect();
    let trees: Vec<Result<Node, String>> = pieces
        .par_iter()
        .map(|&(_, piece)| markdown::to_mdast(piece, &options()).map_err(|m| m.to_string()))
        .collect();
    let mut children = Vec::new();
    let mut end = None;
    let mut line = 1;
    for (k, (tree, &(at, piece))) in trees.into_iter().zip(&pieces).enumerate() {
        let Node::Root(root) = tree? else {
            return Ok(None);
        };
        let last = k + 1 == pieces.len();
        if !last && root.children.last().is_some_and(|n| open_at_end(n, piece)) {
            return Ok(None);
        }
        for mut node in root.children {
            shift(&mut node, at, line - 1);
            children.push(node);
        }
        if last {
            end = root
                .position
                .map(|p| Point::new(p.end.line + line - 1, p.end.column, p.end.offset + at));
        }
        line += line_endings(piece);
    }
    Ok(Some(Node::Root(markdown::mdast::Root {
        children,
        position: end.map(|end| markdown::unist::Position {
            start: Point::new(1, 1, 0),
            end,
        }),
    })))
}

/// Line endings as markdown counts them: `\n`, `\r\n` and a lone `\r`.
fn line_endings(text: &str) -> usize {
    let b = text.as_bytes();
    b.iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count()
}

/// Whether an HTML block that `body` starts is still open at the end of `body`.
fn html_open(body: &str) -> bool {
    html_block(body).is_some_and(|(open, end)| !body[open..].contains(end))
}

/// The opening marker's length and the end marker of an HTML block that `body` (a line
/// without its indent) opens when that block may hold blank lines (comments, `<pre>`,
/// `<script>`…); `None` for the others, which a blank line ends.
fn html_block(body: &str) -> Option<(usize, &'static str)> {
    const BLOCKS: [(&str, &str); 8] = [
        ("<!--", "-->"),
        ("<?", "?>"),
        ("<![cdata[", "]]>"),
        ("<script", "</script>"),
        ("<pre", "</pre>"),
        ("<style", "</style>"),
        ("<textarea", "</textarea>"),
        ("<!", ">"),
    ];
    let lower = body
        .get(..12.min(body.len()))
        .unwrap_or(body)
        .to_ascii_lowercase();
    BLOCKS
        .iter()
        .find(|(open, _)| lower.starts_with(open))
        .map(|&(open, end)| (open.len(), end))
}

/// Whether `node`, the last of a piece, is a code or HTML block that runs to the piece's end
/// without being closed there.
fn open_at_end(node: &Node, piece: &str) -> bool {
    let Some(pos) = node.position() else {
        return true;
    };
    if !piece[pos.end.offset..].trim().is_empty() {
        return false;
    }
    let raw = &piece[pos.start.offset..pos.end.offset];
    match node {
        Node::Code(_) => {
            let first = raw.trim_start();
            let Some(ch) = first.chars().next().filter(|c| matches!(c, '`' | '~')) else {
                return false; // indented code: ended by the heading after it
            };
            let opening = first.chars().take_while(|&c| c == ch).count();
            let mut lines = raw.lines();
            lines.next();
            let closing = lines.next_back().map(str::trim);
            !closing.is_some_and(|l| l.len() >= opening && l.chars().all(|c| c == ch))
        }
        Node::Html(_) => html_open(raw.trim_start()),
        _ => false,
    }
}

/// Moves `node` and everything in it `offset` bytes and `lines` lines down.
fn shift(node: &mut Node, offset: usize, lines: usize) {
    if let Some(pos) = node.position_mut() {
        pos.start.offset += offset;
        pos.start.line += lines;
        pos.end.offset += offset;
        pos.end.line += lines;
    }
    if let Some(children) = node.children_mut() {
        for child in children {
            shift(child, offset, lines);
        }
    }
}

/// Whether `line` may be a link reference or footnote definition, in a quote or a list too.
fn definition(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t', '>']);
    let rest = rest
        .strip_prefix(['-', '*', '+'])
        .or_else(|| {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            (digits > 0)
                .then(|| rest[digits..].strip_prefix(['.', ')']))
                .flatten()
        })
        .unwrap_or(rest)
        .trim_start_matches([' ', '\t', '>']);
    rest.starts_with('[') && rest.contains("]:")
}

/// Byte offsets where pieces start (the first is 0), or `None` when the file must be parsed
/// whole.
fn cuts(text: &str) -> Option<Vec<usize>> {
    let mut cuts = vec![0];
    let mut fence: Option<(char, usize)> = None;
    let mut html_end: Option<&str> = None;
    let mut previous_blank = true;
    let mut at = 0;
    let mut lines = text.split_inclusive('\n').peekable();

    // Front matter is part of the first piece, whatever it holds.
    if let Some(first) = lines.peek()
        && let delimiter @ ("---" | "+++") = first.trim_end()
    {
        at += first.len();
        lines.next();
        for line in lines.by_ref() {
            at += line.len();
            if line.trim_end() == delimiter {
                break;
            }
        }
    }

    for line in lines {
        let start = at;
        at += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches(' ').len();
        let body = content.trim_start();
        if let Some((ch, len)) = fence {
            let run = body.chars().take_while(|&c| c == ch).count();
            if run >= len && body[run..].trim().is_empty() {
                fence = None;
            }
            previous_blank = false;
            continue;
        }
        if let Some(end) = html_end {
            if content.contains(end) {
                html_end = None;
            }
            previous_blank = false;
            continue;
        }
        if definition(content) {
            return None; // references reach across pieces
        }
        // Any fence, at any indentation: a line scanner cannot know which list it is in, and
        // taking too many lines for code only costs a cut.
        if let Some(ch) = body.chars().next().filter(|c| matches!(c, '`' | '~')) {
            let run = body.chars().take_while(|&c| c == ch).count();
            if run >= 3 && !(ch == '`' && body[run..].contains('`')) {
                fence = Some((ch, run));
                previous_blank = false;
                continue;
            }
        }
        if indent <= 3
            && let Some((open, end)) = html_block(body)
        {
            if !body[open..].contains(end) {
                html_end = Some(end);
            }
            previous_blank = false;
            continue;
        }
        let heading = content.starts_with('#') && {
            let hashes = content.chars().take_while(|&c| c == '#').count();
            hashes <= 6
                && content[hashes..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == '\t')
        };
        if heading && previous_blank && start - cuts.last().copied().unwrap_or(0) >= PIECE {
            cuts.push(start);
        }
        previous_blank = content.trim().is_empty();
    }
    Some(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        super::super::parse::options()
    }

    /// The parallel parse of `text` equals the whole-file parse, and really cut the text.
    fn same_as_whole(text: &str) -> usize {
        let whole = markdown::to_mdast(text, &options()).expect("parses");
        let pieces = cuts(text).map_or(0, |c| c.len());
        let parallel = to_mdast(text, options).expect("parses");
        assert!(parallel == whole, "trees differ");
        pieces
    }

    fn filler(k: usize) -> String {
        format!(
            "## Section {k}\n\nSome text about section {k}, *emphasis* and `code`.\n\n\
             - [ ] {k}. **Task {k}**\n  - detail with a [link](https://example.com)\n  \
             - _Dependencies: Task {k}_\n  ```sh\n  # a shell comment, not a heading\n  echo {k}\n  ```\n\
             - [x] {k}.1 Sub-task with ünïcödé\n\n> Primary Agent: someone\n\n"
        )
    }

    fn big(prefix: &str, middle: &str, suffix: &str) -> String {
        let mut text = prefix.to_owned();
        for k in 0..600 {
            text.push_str(&filler(k));
            if k == 300 {
                text.push_str(middle);
            }
        }
        text.push_str(suffix);
        text
    }

    #[test]
    fn a_large_list_is_cut_and_parses_the_same() {
        let text = big("---\ntitle: x\n# not a heading\n---\n\n# Tasks\n\n", "", "");
        assert!(text.len() >= PARALLEL_FROM);
        assert!(same_as_whole(&text) > 2);
        let crlf = text.replace('\n', "\r\n");
        assert!(same_as_whole(&crlf) > 2);
    }

    #[test]
    fn headings_inside_fences_and_html_are_not_cut() {
        let fenced = "```md\n\n# inside a fence\n\n".to_owned() + &"x\n".repeat(20_000) + "```\n\n";
        assert!(same_as_whole(&big("", &fenced, "")) > 2);
        let unclosed = "~~~~\n\n# inside a fence that never closes\n\n";
        assert!(same_as_whole(&big("", unclosed, &"y\n".repeat(20_000))) > 2);
        let comment =
            "<!--\n\n# inside a comment\n\n".to_owned() + &"z\n".repeat(20_000) + "-->\n\n";
        assert!(same_as_whole(&big("", &comment, "")) > 2);
        let indented = "- item\n    ```\n\n# ends the item, and the fence\n\n  ```\n\n";
        assert!(same_as_whole(&big("", indented, "")) > 2);
    }

    /// A fence the line scanner takes for closed: the cut lands inside code, the piece before
    /// it ends in an open fence, and the file is parsed whole.
    #[test]
    fn a_cut_inside_code_falls_back_to_the_whole_file() {
        let middle = "- item\n    ```\n\n# ends the item and its fence\n\n  ```\n\n".to_owned()
            + &"code\n".repeat(5_000)
            + "\n# still code\n\n  ```\n\n";
        let text = big("", &middle, "");
        let inside = text.find("# still code").expect("there");
        assert!(cuts(&text).expect("cut").contains(&inside));
        same_as_whole(&text);
    }

    #[test]
    fn definitions_keep_the_file_whole() {
        let text = big("[ref]: https://example.com\n\n", "", "\n[ref]\n");
        assert_eq!(cuts(&text), None);
        same_as_whole(&text);
    }
}
