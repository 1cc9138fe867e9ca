//! The markdown tree of a large task list, parsed in parallel, and every parse guarded.
//!
//! markdown-rs takes time that grows faster than the input (every list item of a parse adds to
//! a map it searches from the start: a flat list of 50,000 items takes seconds). A line at the
//! left margin, outside any fenced code block, HTML block or front matter, that is a heading
//! after a blank line, or any line starting a paragraph after a blank line, has nothing open
//! before it. A list item at the left margin continues the top-level list before it, or starts
//! one. So the text is cut at such lines into pieces of a few dozen kilobytes, the pieces are
//! parsed at once with rayon, their nodes are moved to where they stand in the whole file, and
//! a list the cut split is joined again. The result is the tree of the whole-file parse (tests
//! hold it to that).
//!
//! Where a cut could change the meaning it is taken out and the pieces around it parsed as one:
//! a piece that ends inside an open code block or HTML block (the line scanner and markdown-rs
//! disagreeing about where a fence ends), a list item the piece before does not end a list
//! for, a paragraph right after a list (markdown-rs lets an ordered item interrupt it). Link
//! reference and footnote definitions reach across the file: such a file is parsed whole.
//!
//! markdown-rs panics on some input (an upstream bug): every parse is guarded, and a panic is a
//! [`Failure`] at the line whose addition makes the parser fail.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use markdown::ParseOptions;
use markdown::mdast::{List, Node};
use markdown::unist::Point;
use rayon::prelude::*;

/// Below this, one parse is fast enough (a few milliseconds).
const PARALLEL_FROM: usize = 64 * 1024;
/// The smallest piece worth a task of its own.
const PIECE: usize = 16 * 1024;
/// Rounds of joining pieces whose cut turned out wrong before the file is parsed whole.
const MAX_ROUNDS: usize = 8;
/// Above this, a failing piece is not searched for the line that makes the parser fail.
const SEARCH_UP_TO: usize = 1024 * 1024;

/// Why markdown-rs gave no tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where in the text: the start of the line whose addition makes the parser fail, as far
    /// as a search of the failing piece finds it.
    pub offset: usize,
    /// What the parser said (its panic message, for a panic).
    pub message: String,
    /// Whether the parser panicked (a bug of markdown-rs) rather than refused the text.
    pub panicked: bool,
}

thread_local! {
    /// Set while this thread is inside [`guarded`]: its panics are caught and reported as a
    /// [`Failure`], so the panic hook stays quiet about them.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once, a panic hook that is silent for panics inside [`guarded`] on the thread that
/// raised them and hands every other panic to the hook that was there before.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// `markdown::to_mdast`, with a panic inside markdown-rs caught (markdown-rs 1.0 has known
/// panics on some inputs) and reported as a [`Failure`] at offset 0 of `text`.
fn guarded(text: &str, options: fn() -> ParseOptions) -> Result<Node, Failure> {
    install_quiet_hook();
    let was = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| markdown::to_mdast(text, &options())));
    QUIET.with(|q| q.set(was));
    match result {
        Ok(Ok(root)) => Ok(root),
        Ok(Err(message)) => Err(Failure {
            offset: 0,
            message: message.to_string(),
            panicked: false,
        }),
        Err(payload) => Err(Failure {
            offset: 0,
            message: payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned()),
            panicked: true,
        }),
    }
}

/// [`guarded`], and on failure the line of `text` (from `at` in the whole file) whose addition
/// makes the parser fail: a bisection over the prefixes of `text` that end at a line end.
fn parse_unit(text: &str, at: usize, options: fn() -> ParseOptions) -> Result<Node, Failure> {
    guarded(text, options).map_err(|mut failure| {
        failure.offset = at;
        if text.len() <= SEARCH_UP_TO {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .filter(|&i| i < text.len())
                .collect();
            // Invariant: the first `lo` lines parse, the first `hi` lines do not.
            let (mut lo, mut hi) = (0, starts.len());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let prefix = &text[..starts[mid]];
                if guarded(prefix, options).is_ok() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            failure.offset = at + starts.get(hi.saturating_sub(1)).copied().unwrap_or(0);
        }
        failure
    })
}

/// The tree of `text`, as `markdown::to_mdast` makes it, or where and why the parser failed.
/// `options` makes the parse options (they cannot be shared between threads).
pub fn to_mdast(text: &str, options: fn() -> ParseOptions) -> Result<Node, Failure> {
    if text.len() >= PARALLEL_FROM
        && let Some(cuts) = cuts(text, PIECE)
        && cuts.len() > 1
        && let Some(root) = parse_pieces(text, cuts, options)?
    {
        return Ok(root);
    }
    parse_unit(text, 0, options)
}

/// Where a piece starts, and what the text before it may leave open there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    at: usize,
    kind: CutKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutKind {
    /// The first piece, or a heading after a blank line: nothing is open there.
    Fresh,
    /// A line after a blank line that starts a paragraph (or a quote, a table…): nothing is
    /// open there, but markdown-rs lets an ordered item interrupt the paragraph when a list
    /// comes just before it, so the piece before must not end with a list.
    Paragraph,
    /// A list item at the left margin: an item of the top-level list the piece before ends
    /// with, if its marker is the same, else (after a blank line) the start of a new list.
    Item { blank_before: bool },
}

/// Parses the pieces starting at `cuts` (the first is the start) and joins them into one
/// root; `None` when a piece ends inside a block the cut may have split. A cut where the
/// pieces do not join as they must is taken out, and the two pieces parsed as one.
fn parse_pieces(
    text: &str,
    mut cuts: Vec<Cut>,
    options: fn() -> ParseOptions,
) -> Result<Option<Node>, Failure> {
    let piece_end = |cuts: &[Cut], k: usize| cuts.get(k + 1).map_or(text.len(), |c| c.at);
    let mut trees: Vec<Option<Node>> = vec![None; cuts.len()];
    let mut rounds = 0;
    loop {
        let todo: Vec<(usize, usize, usize)> = (0..cuts.len())
            .filter(|&k| trees[k].is_none())
            .map(|k| (k, cuts[k].at, piece_end(&cuts, k)))
            .collect();
        let parsed: Vec<(usize, Result<Node, Failure>)> = todo
            .par_iter()
            .map(|&(k, from, to)| (k, parse_unit(&text[from..to], from, options)))
            .collect();
        for (k, tree) in parsed {
            trees[k] = Some(tree?);
        }
        // The cuts the pieces around them contradict.
        let mut bad = Vec::new();
        for k in 1..cuts.len() {
            let (Some(Node::Root(before)), Some(Node::Root(after))) = (&trees[k - 1], &trees[k])
            else {
                return Ok(None);
            };
            let piece = &text[cuts[k - 1].at..cuts[k].at];
            if before
                .children
                .last()
                .is_some_and(|n| open_at_end(n, piece))
            {
                bad.push(k);
                continue;
            }
            if cuts[k].kind == CutKind::Paragraph
                && matches!(before.children.last(), Some(Node::List(_)))
            {
                bad.push(k);
            }
            if let CutKind::Item { blank_before } = cuts[k].kind {
                let continues = matches!(
                    (before.children.last(), after.children.first()),
                    (Some(Node::List(a)), Some(Node::List(b)))
                        if same_list(text, cuts[k - 1].at, a, cuts[k].at, b)
                );
                let starts_list = matches!(after.children.first(), Some(Node::List(b))
                    if b.position.as_ref().is_some_and(|p| p.start.offset == 0));
                if !starts_list || (!continues && !blank_before) {
                    bad.push(k);
                }
            }
        }
        if bad.is_empty() {
            break;
        }
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Ok(None);
        }
        for &k in bad.iter().rev() {
            cuts.remove(k);
            trees.remove(k);
            trees[k - 1] = None;
        }
    }

    let mut children: Vec<Node> = Vec::new();
    let mut end = None;
    let mut line = 1;
    let last = cuts.len() - 1;
    for (k, tree) in trees.into_iter().enumerate() {
        let Some(Node::Root(root)) = tree else {
            return Ok(None);
        };
        let at = cuts[k].at;
        let piece = &text[at..piece_end(&cuts, k)];
        let mut nodes = root.children.into_iter().peekable();
        if let CutKind::Item { blank_before } = cuts[k].kind
            && let Some(Node::List(before)) = children.last_mut()
            && let Some(Node::List(mut after)) =
                nodes.next_if(|n| matches!(n, Node::List(b) if same_list(text, 0, before, at, b)))
        {
            shift_all(&mut after.children, at, line - 1);
            before.spread |= after.spread || blank_before;
            before.children.append(&mut after.children);
            if let (Some(p), Some(q)) = (before.position.as_mut(), after.position) {
                p.end = Point::new(q.end.line + line - 1, q.end.column, q.end.offset + at);
            }
        }
        for mut node in nodes {
            shift(&mut node, at, line - 1);
            children.push(node);
        }
        if k == last {
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

/// Whether list `b`, parsed from `text[b_at..]`, continues list `a`, parsed from
/// `text[a_at..]`: both ordered or not, with the same marker (`-`, `*`, `+`; `.` or `)`).
fn same_list(text: &str, a_at: usize, a: &List, b_at: usize, b: &List) -> bool {
    let marker = |at: usize, list: &List| {
        let first = list.children.first()?.position()?.start.offset + at;
        let line = text.get(first..)?.trim_start_matches([' ', '\t']);
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        line[digits..].chars().next()
    };
    a.ordered == b.ordered && marker(a_at, a).is_some() && marker(a_at, a) == marker(b_at, b)
}

fn shift_all(nodes: &mut [Node], offset: usize, lines: usize) {
    for node in nodes {
        shift(node, offset, lines);
    }
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

/// Whether `node`, the last of a piece, is (or ends with, in a list or a quote) a code or HTML
/// block that runs to the piece's end without being closed there.
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
        _ => node
            .children()
            .and_then(|c| c.last())
            .is_some_and(|n| open_at_end(n, piece)),
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

/// A list item's marker at the start of `line` (`-`, `*`, `+` or up to nine digits and `.` or
/// `)`), followed by a space, a tab or the end of the line: (marker length, ordered).
pub(crate) fn list_marker(line: &str) -> Option<(usize, bool)> {
    let b = line.as_bytes();
    let (len, ordered) = match b.first()? {
        b'-' | b'*' | b'+' => (1, false),
        b'0'..=b'9' => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 9 || !matches!(b.get(digits), Some(b'.' | b')')) {
                return None;
            }
            (digits + 1, true)
        }
        _ => return None,
    };
    matches!(b.get(len), None | Some(b' ' | b'\t' | b'\n' | b'\r')).then_some((len, ordered))
}

/// Whether `line` is a thematic break (`---`, `* * *`, `___`).
fn thematic_break(line: &str) -> bool {
    let body: Vec<u8> = line.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    body.len() >= 3 && matches!(body[0], b'-' | b'*' | b'_') && body.iter().all(|&c| c == body[0])
}

/// Where pieces start (the first at 0), or `None` when the file must be parsed whole. A piece
/// starts at a line at the left margin, outside code and HTML blocks, that is a heading or
/// follows a blank line (it starts a block with nothing open), or that is a list item
/// (see [`CutKind::Item`]).
fn cuts(text: &str, piece: usize) -> Option<Vec<Cut>> {
    let mut cuts = vec![Cut {
        at: 0,
        kind: CutKind::Fresh,
    }];
    let mut fence: Option<(char, usize)> = None;
    let mut html_end: Option<&str> = None;
    let mut previous_blank = true;
    // The last line that was not blank held only a list marker (an empty item).
    let mut empty_item = false;
    let mut at = 0;
    let mut lines = crate::source::lines_with_endings(text).peekable();

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
        let blank = content.trim().is_empty();
        let heading = content.starts_with('#') && {
            let hashes = content.chars().take_while(|&c| c == '#').count();
            hashes <= 6
                && content[hashes..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == '\t')
        };
        let marker = if indent == 0 {
            list_marker(content)
        } else {
            None
        };
        let kind = match marker {
            // A non-empty item that is no thematic break or table row, not after an empty
            // item (markdown-rs makes a list with an empty item before another loose); an
            // ordered one only after a blank line (it may not interrupt a paragraph).
            Some((len, ordered))
                if !content[len..].trim().is_empty()
                    && !thematic_break(content)
                    && !content.contains('|')
                    && !empty_item
                    && (previous_blank || !ordered) =>
            {
                Some(CutKind::Item {
                    blank_before: previous_blank,
                })
            }
            Some(_) => None,
            None if heading && previous_blank => Some(CutKind::Fresh),
            None if previous_blank
                && !blank
                && indent == 0
                // Not `---` or `+++`: front matter, at the start of a piece.
                && !content.starts_with(['\t', '|', '-', '+']) =>
            {
                Some(CutKind::Paragraph)
            }
            None => None,
        };
        if let Some(kind) = kind
            && start - cuts.last().map_or(0, |c| c.at) >= piece
        {
            cuts.push(Cut { at: start, kind });
        }
        if !blank {
            empty_item = marker.is_some_and(|(len, _)| content[len..].trim().is_empty());
        }
        previous_blank = blank;
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
        let pieces = cuts(text, PIECE).map_or(0, |c| c.len());
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
        assert!(
            cuts(&text, PIECE)
                .expect("cut")
                .iter()
                .any(|c| c.at == inside)
        );
        same_as_whole(&text);
    }

    #[test]
    fn definitions_keep_the_file_whole() {
        let text = big("[ref]: https://example.com\n\n", "", "\n[ref]\n");
        assert_eq!(cuts(&text, PIECE), None);
        same_as_whole(&text);
    }

    /// The tree of `text` cut every `piece` bytes or so equals the whole-file tree.
    fn same_in_pieces_of(text: &str, piece: usize) -> usize {
        // markdown-rs panics on some of these: nothing to compare with.
        let Ok(whole) = guarded(text, options) else {
            return 0;
        };
        let Some(cuts) = cuts(text, piece) else {
            return 0;
        };
        let n = cuts.len();
        if let Ok(Some(parallel)) = parse_pieces(text, cuts, options) {
            assert!(parallel == whole, "trees differ for {text:?}");
        }
        n
    }

    #[test]
    fn long_lists_are_cut_between_items_and_parse_the_same() {
        let tight: String = (0..4000)
            .map(|i| format!("- [ ] {i}. Task {i}\n  - detail *{i}*\n"))
            .collect();
        assert!(same_as_whole(&tight) > 2);
        let loose: String = (0..4000)
            .map(|i| format!("- [ ] {i}. Task {i}\n\n  more about {i}\n\n"))
            .collect();
        assert!(same_as_whole(&loose) > 2);
        let ordered: String = (1..4000).map(|i| format!("{i}. Task {i}\n\n")).collect();
        assert!(same_as_whole(&ordered) > 2);
        let mixed: String = (0..4000)
            .map(|i| match i % 5 {
                0 => format!("* star {i}\n"),
                1 => format!("para {i}\n- dash {i}\n"),
                2 => format!("\n+ plus {i}\n\n"),
                3 => format!("> quote {i}\n- after {i}\n"),
                _ => format!("| a | b |\n|---|---|\n- row? {i}\n"),
            })
            .collect();
        same_as_whole(&mixed);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Small pieces of markdown-like lines, cut as small as they come: the same tree.
        #[test]
        fn any_cut_gives_the_whole_tree(lines in proptest::collection::vec(proptest::sample::select(vec![
            "- [ ] 1. Task", "- [x] 2. Done", "* star", "+ plus", "1. one", "2) two", "10. ten",
            "  - nested", "    - deeper", "  continued", "text", "", "", "> quote", "# Heading",
            "Setext", "---", "===", "- - -", "***", "```sh", "```", "~~~", "<!--", "-->",
            "<div>", "| a | b |", "|---|---|", "-", "1.", "\t- tab", "  ```", "**bold** _em_",
            "- ✅ done", "[x] not a list",
        ]), 1..60)) {
            let text = lines.join("\n") + "\n";
            same_in_pieces_of(&text, 1);
            same_in_pieces_of(&text.replace('\n', "\r\n"), 1);
            same_in_pieces_of(&text.replace('\n', "\r"), 1);
        }
    }
}
