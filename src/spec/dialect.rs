//! What the words of a task list mean: ids, checkboxes, titles, metadata lines, track and group
//! headings. Every rule that depends on a spec tool's dialect lives here, so that new dialects
//! are added in one place; the markdown structure itself comes from markdown-rs (see `parse`).

use super::deps;

/// A checkbox at the start of a list item's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHead {
    /// Offset of the state character within the line.
    pub state_offset: usize,
    pub ch: char,
    /// Kiro's optional marker: `- [ ]* 2.3`.
    pub optional: bool,
}

/// Finds the checkbox of a list item line: `- [ ] …`, `  * [x] …`, `1. [X] …`, `> - [-] …`.
pub fn checkbox(line: &str) -> Option<BoxHead> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t' || bytes[i] == b'>') {
        i += 1;
    }
    match bytes.get(i)? {
        b'-' | b'*' | b'+' => i += 1,
        b'0'..=b'9' => {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if !matches!(bytes.get(i), Some(b'.' | b')')) {
                return None;
            }
            i += 1;
        }
        _ => return None,
    }
    let rest = &line[i..];
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.len() == rest.len() && !rest.is_empty() {
        return None; // `-[ ]` is not a list item
    }
    let at = i + (rest.len() - trimmed.len());
    let mut chars = trimmed.char_indices();
    if chars.next()?.1 != '[' {
        return None;
    }
    let (ci, ch) = chars.next()?;
    let (close_at, close) = chars.next()?;
    if close != ']' || ch == ']' {
        return None;
    }
    let state_offset = at + ci;
    let after = &trimmed[close_at + 1..];
    let optional = after.starts_with('*');
    Some(BoxHead {
        state_offset,
        ch,
        optional,
    })
}

/// The id at the start of a task's text and where the title begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskHead {
    pub id: String,
    /// Byte offset of the title within the text.
    pub rest: usize,
    /// `7.9*`: the optional marker written after the id.
    pub optional: bool,
}

/// Reads the id of a task from the plain text after its checkbox: `1. Title`, `2.1 Title`,
/// `1.1: Title`, `CR-A. Title`, `CR1. Title`, `Task 3: Title`. Letter ids count only when
/// followed by `.` or `:`, so `POST /api` is not task `POST`.
pub fn task_head(text: &str) -> Option<TaskHead> {
    let lead = text.len() - text.trim_start().len();
    let mut body = &text[lead..];
    let mut offset = lead;
    // `[ ]*` leftovers and bold openers before the id.
    for prefix in ["*", "**"] {
        if let Some(rest) = body.strip_prefix(prefix)
            && rest.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            offset += prefix.len();
            body = rest;
        }
    }
    for word in ["Task ", "Subtask "] {
        if let Some(rest) = body.strip_prefix(word) {
            offset += word.len();
            body = rest;
        }
    }
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
        .unwrap_or(body.len());
    let mut word = &body[..end];
    let numeric_word = word.trim_end_matches('.');
    let after = &body[end..];
    if deps::is_numeric_id(numeric_word) {
        let id_len = numeric_word.len();
        let rest_of_word = &word[id_len..];
        // `1.` `2.1` `303.1.` then a separator: space, `:`, `)`, `*` or end.
        let sep_ok = rest_of_word.chars().all(|c| c == '.')
            && (after.is_empty() || after.starts_with([' ', '\t', ':', ')', '*', '\\']));
        if !sep_ok {
            return None;
        }
        let mut optional = false;
        let mut rest = after;
        if let Some(r) = rest.strip_prefix('*') {
            optional = !r.starts_with('*');
            rest = r;
        }
        let rest = rest.trim_start_matches(['\\', '.', ':', ')', '*', ' ', '\t']);
        return Some(TaskHead {
            id: numeric_word.to_owned(),
            rest: offset + body.len() - rest.len(),
            optional,
        });
    }
    // Letter ids need `.` or `:` right after them (a trailing `.` may have been read into word).
    word = word.strip_suffix('.').unwrap_or(word);
    let after = &body[word.len()..];
    let dotted = after.starts_with(['.', ':']);
    // spec-kit writes `T001 [P] Title`, with no separator.
    let spaced =
        deps::is_speckit_id(word) && (after.is_empty() || after.starts_with([' ', '\t', '*']));
    if (deps::is_alpha_id(word) || deps::is_speckit_id(word)) && (dotted || spaced) {
        let rest = body[word.len() + usize::from(dotted)..].trim_start_matches(['*', ' ', '\t']);
        return Some(TaskHead {
            id: word.to_owned(),
            rest: offset + body.len() - rest.len(),
            optional: false,
        });
    }
    None
}

/// A title with its decorations taken off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Title {
    pub title: String,
    /// `(4h)`
    pub estimate: Option<String>,
    /// `[P]` / `(P)`
    pub parallel: bool,
}

/// Cleans a title: control characters, status suffixes (`✅ APPROVED`, `✓`, emoji, mangled
/// bytes), estimates and parallel markers are fields or noise, never part of the title.
pub fn clean_title(raw: &str) -> Title {
    let mut out = Title::default();
    let mut s: String = raw.chars().filter(|c| !c.is_control()).collect();
    loop {
        let trimmed = s.trim_end().to_owned();
        s = trimmed;
        if let Some(rest) = s.strip_suffix("[P]").or_else(|| s.strip_suffix("(P)")) {
            out.parallel = true;
            s = rest.to_owned();
            continue;
        }
        if let Some(rest) = strip_suffix_ci(&s, "APPROVED")
            && (rest.trim_end().ends_with(['✅', '✓', '-', '—']) || rest.trim_end().is_empty())
        {
            s = rest.to_owned();
            continue;
        }
        if let Some((rest, estimate)) = split_estimate(&s) {
            out.estimate = Some(estimate);
            s = rest;
            continue;
        }
        match s.chars().last() {
            Some(c) if is_decoration(c) => {
                s.pop();
                continue;
            }
            _ => break,
        }
    }
    let s = s.trim();
    let s = s
        .strip_prefix("[P]")
        .or_else(|| s.strip_prefix("(P)"))
        .map_or(s, |r| {
            out.parallel = true;
            r.trim_start()
        });
    out.title = s.to_owned();
    out
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(at) && s[at..].eq_ignore_ascii_case(suffix)).then(|| &s[..at])
}

/// `(4h)`, `(2.5h)`, `(30m)` at the end of a title.
fn split_estimate(s: &str) -> Option<(String, String)> {
    let inner_end = s.strip_suffix(')')?;
    let open = inner_end.rfind('(')?;
    let inner = inner_end[open + 1..].trim();
    let unit_at = inner.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = inner.split_at(unit_at);
    let unit = unit.trim();
    if num.is_empty() || !matches!(unit, "h" | "m" | "d" | "min" | "hours" | "hour" | "days") {
        return None;
    }
    Some((s[..open].to_owned(), inner.to_owned()))
}

/// A trailing character that decorates rather than says: emoji, check marks, `=`, U+FFFD.
fn is_decoration(c: char) -> bool {
    if c.is_alphanumeric() {
        return false;
    }
    if matches!(
        c,
        ')' | ']' | '"' | '\'' | '`' | '.' | '?' | '!' | '%' | '>' | '}' | '/' | '+' | '#'
    ) {
        return false;
    }
    c == '=' || c == '\u{fffd}' || c == '*' || c == '_' || c == '-' || c == '—' || !c.is_ascii()
}

/// Canonical metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Requirements,
    Dependencies,
    Agent,
    Trigger,
    SpecReferences,
    Estimate,
    /// `File:` / `Files:` (spec-workflow), the task's declared files.
    Files,
    /// spec-workflow's `_Prompt:_`.
    Prompt,
    /// cc-sdd's `_Boundary:_`: the files or components a task keeps to.
    Boundary,
    Other,
}

pub fn canonical_key(key: &str) -> Key {
    let k: String = key
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match k.as_str() {
        "requirements" | "requirement" | "validates" => Key::Requirements,
        "dependencies" | "dependency" | "depends" | "dependson" | "deps" => Key::Dependencies,
        "agent" => Key::Agent,
        "trigger" => Key::Trigger,
        "specreferences" | "specreference" | "refs" => Key::SpecReferences,
        "estimate" | "effort" => Key::Estimate,
        "file" | "files" => Key::Files,
        "prompt" => Key::Prompt,
        "boundary" => Key::Boundary,
        _ => Key::Other,
    }
}

/// A `_Key: value_` metadata line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// Offset of the value within the text.
    pub value_offset: usize,
}

/// Reads a metadata line from a detail bullet's text (the markdown after the bullet marker):
/// `_Requirements: 1.1_`, `*Agent: name*`, `**Dependencies**: Task 3`, and, for the keys that
/// matter to planning, plain `Dependencies: Task 3`.
pub fn metadata(text: &str) -> Option<Meta<'_>> {
    let first_line = text.lines().next().unwrap_or("");
    let lead = first_line.len() - first_line.trim_start().len();
    let line = first_line.trim();
    let (opener, closer) = if line.starts_with("**") {
        ("**", "**")
    } else if line.starts_with('_') {
        ("_", "_")
    } else if line.starts_with('*') {
        ("*", "*")
    } else {
        ("", "")
    };
    let inner = &line[opener.len()..];
    let colon = inner.find([':', '：'])?;
    let key = inner[..colon].trim_end_matches(['*', '_']).trim();
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_alphabetic())
        || !key
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '-')
        || key.split_whitespace().count() > 3
    {
        return None;
    }
    let colon_len = inner[colon..].chars().next().map_or(1, char::len_utf8);
    let mut value_start = colon + colon_len;
    let mut value = &inner[value_start..];
    if opener == "**" {
        // `**Key**: value` or `**Key:** value`
        let stripped = value.trim_start_matches(['*', ':']);
        value_start += value.len() - stripped.len();
        value = stripped;
    } else if !closer.is_empty() {
        // Greedy to the last closer on the line: values may contain `_` (`mnist_data`).
        let end = value.rfind(closer)?;
        value = &value[..end];
    } else if canonical_key(key) == Key::Other {
        return None;
    }
    let ws = value.len() - value.trim_start().len();
    let value_offset = lead + opener.len() + value_start + ws;
    Some(Meta {
        key,
        value: value.trim(),
        value_offset,
    })
}

/// What a heading means to the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heading<'a> {
    /// `### Track A: Name (Dependencies: …)`
    Track {
        track: &'a str,
        name: &'a str,
        deps: Option<(&'a str, usize)>,
    },
    /// Another task section, maybe with `(Dependencies: …)`: `### Testing Track (Dependencies: CR4)`.
    Section { deps: Option<(&'a str, usize)> },
    /// `## Execution Strategy` / `## Execution Order`: parallel groups follow.
    ExecutionStrategy,
}

/// Classifies a heading's text.
pub fn heading(text: &str) -> Heading<'_> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let core = lower.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if core.starts_with("execution strategy") || core.starts_with("execution order") {
        return Heading::ExecutionStrategy;
    }
    let deps = heading_deps(t);
    if let Some(rest) = t.strip_prefix("Track ") {
        let name_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let track = &rest[..name_end];
        if !track.is_empty() && track.starts_with(|c: char| c.is_ascii_uppercase()) {
            let after = rest[name_end..].trim_start_matches([':', ' ', '-', '—', '–']);
            let name_end = after.find(" (").unwrap_or(after.len());
            let name = after[..name_end].trim_end_matches([' ', '✓', '✅']);
            return Heading::Track { track, name, deps };
        }
    }
    Heading::Section { deps }
}

/// The `(Dependencies: …)` or `(No Dependencies)` part of a heading: the phrase and its offset.
fn heading_deps(text: &str) -> Option<(&str, usize)> {
    let lower = text.to_ascii_lowercase();
    if let Some(at) = lower.find("(no dependencies") {
        let end = text[at..].find(')').map_or(text.len(), |e| at + e);
        return Some((&text[at + 1..end], at + 1));
    }
    for key in ["(dependencies:", "(dependency:", "(depends on"] {
        if let Some(at) = lower.find(key) {
            let start = at + key.len();
            let end = matching_close(text, at).unwrap_or(text.len());
            let phrase = &text[start..end];
            let ws = phrase.len() - phrase.trim_start().len();
            return Some((phrase.trim(), start + ws));
        }
    }
    None
}

fn matching_close(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `> Primary Agent: name` under a track heading.
pub fn primary_agent(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("Primary Agent:")?;
    let name = rest.trim().trim_matches(['*', '_', '`']).trim();
    // `go-developer (Tasks 2-3)`: keep the agent's name.
    let name = name.split(" (").next().unwrap_or(name).trim();
    (!name.is_empty()).then_some(name)
}

/// A parallel group declaration: `Group 3 (After PR-A Approval) - PARALLEL:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHead<'a> {
    pub number: u32,
    /// What it waits for, with the offset of the phrase in the text.
    pub after: Option<(&'a str, usize)>,
    pub immediate: bool,
}

pub fn group_head(text: &str) -> Option<GroupHead<'_>> {
    let t = text.trim_start_matches(['*', '_', ' ']);
    let lead = text.len() - t.len();
    let rest = t.strip_prefix("Group ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number = rest[..digits].parse().ok()?;
    let base = lead + "Group ".len() + digits;
    let tail = &rest[digits..];
    let mut after = None;
    let mut immediate = false;
    if let Some(open) = tail.find('(') {
        let close = matching_close(tail, open).unwrap_or(tail.len());
        let cond = &tail[open + 1..close];
        let lower = cond.to_ascii_lowercase();
        if lower.contains("immediate") || lower.contains("no dependencies") {
            immediate = true;
        } else {
            for key in ["depends on ", "after ", "following ", "requires "] {
                if let Some(at) = lower.find(key) {
                    let start = at + key.len();
                    after = Some((&cond[start..], base + open + 1 + start));
                    break;
                }
            }
        }
    }
    Some(GroupHead {
        number,
        after,
        immediate,
    })
}

/// The track a review task belongs to by its id: `CR-B`, `PR-B` and `RW-B` review track B,
/// wherever they are written.
pub fn review_track(id: &str) -> Option<&str> {
    let (class, letter) = id.split_once('-')?;
    (matches!(class, "CR" | "PR" | "RW")
        && letter.len() == 1
        && letter.bytes().all(|b| b.is_ascii_uppercase()))
    .then_some(letter)
}

/// The class of an id for `All previous CR/PR …` phrases: `CR-A` → `CR`, `CR1` → `CR`.
pub fn id_class(id: &str) -> &str {
    let end = id
        .find(|c: char| !c.is_ascii_uppercase())
        .unwrap_or(id.len());
    &id[..end]
}

/// A task written as a heading: `Task 1.1: Title` (also `Task 3. Title`); its id and title.
pub fn heading_task(text: &str) -> Option<(String, String)> {
    let rest = text.trim().strip_prefix("Task ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let id = rest[..end].trim_end_matches('.');
    let after = &rest[end..];
    if !deps::is_numeric_id(id) || !(rest[..end].ends_with('.') || after.starts_with(':')) {
        return None;
    }
    let title = clean_title(after.trim_start_matches([':', ' ', '\t'])).title;
    (!title.is_empty()).then(|| (id.to_owned(), title))
}

/// spec-kit's markers at the start of a title, `[P] [US1] Create …`: the title without them,
/// whether `[P]` was there, and the story label.
pub fn speckit_markers(title: &str) -> (String, bool, Option<String>) {
    let mut rest = title.trim_start();
    let mut parallel = false;
    let mut story = None;
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else { break };
        let marker = &inner[..close];
        if marker == "P" {
            parallel = true;
        } else if marker.starts_with("US")
            && marker[2..].bytes().all(|b| b.is_ascii_digit())
            && marker.len() > 2
        {
            story = Some(marker.to_owned());
        } else if !matches!(marker, "Story" | "conditional") {
            break;
        }
        rest = inner[close + 1..].trim_start();
    }
    (rest.to_owned(), parallel, story)
}

/// spec-kit's inline `(depends on T012, T013)` in a title: the byte range of the whole
/// parenthesis and of the list inside it.
pub fn inline_depends(title: &str) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let lower = title.to_ascii_lowercase();
    let at = lower
        .find("(depends on ")
        .or_else(|| lower.find("(depends on:"))?;
    let list_start = at + "(depends on".len();
    let close = title[list_start..].find(')')? + list_start;
    let list = &title[list_start..close];
    let lead = list.len() - list.trim_start_matches([' ', ':']).len();
    Some((at..close + 1, list_start + lead..close))
}

/// The parts of a cc-sdd `_Boundary:_` value: `update.ts`, `InlineCommentItem, InlineCommentReplies`.
pub fn boundary_parts(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in value.split([',', '、', ';', '，']) {
        let part = part.trim().trim_matches('`').trim();
        if !part.is_empty() && !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}

/// File paths named in a text: backticked words with a `/` or an extension, and bare words
/// with a `/` and an extension (`src/config.rs`, `tests/unit/test_x.py`).
pub fn paths_in(text: &str) -> Vec<String> {
    // A bare word is a path when it has a `/`, or a file extension that says so (`README.md`,
    // `docker-compose.yml`), not any dotted word (`e.g.`, `v1.2`).
    collect_paths(text, |_| true, |w| w.contains('/') || has_file_extension(w))
}

/// File paths named anywhere in a task's words, for the overlap warnings: backticked words that
/// are paths with a directory or a known file extension (`src/lib.rs`, `Cargo.toml`), and bare
/// words with a directory and an extension (`src/lib.rs`). Stricter than [`paths_in`], so that
/// prose (`console.log`, `e.g.`) is not read as files.
pub fn named_paths(text: &str) -> Vec<String> {
    collect_paths(
        text,
        |w| w.contains('/') || has_file_extension(w),
        |w| w.contains('/'),
    )
}

/// The paths among the words of `text`: backticked ones that `code` accepts, bare ones that
/// `bare` accepts, each kept when [`as_path`] takes it for a path, once.
fn collect_paths(
    text: &str,
    code: impl Fn(&str) -> bool,
    bare: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, part) in text.split('`').enumerate() {
        let words: Vec<&str> = if k % 2 == 1 {
            Some(part.trim()).filter(|w| code(w)).into_iter().collect()
        } else {
            part.split_whitespace().filter(|w| bare(w)).collect()
        };
        for w in words {
            if let Some(p) = as_path(w)
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
    }
    out
}

fn has_file_extension(word: &str) -> bool {
    const EXTENSIONS: [&str; 40] = [
        "md", "rs", "toml", "yml", "yaml", "json", "ts", "tsx", "js", "jsx", "mjs", "py", "go",
        "java", "kt", "kts", "swift", "rb", "php", "c", "h", "cc", "cpp", "hpp", "cs", "sh", "sql",
        "html", "css", "scss", "txt", "xml", "proto", "lock", "ini", "cfg", "env", "gradle", "vue",
        "svelte",
    ];
    let w = word.trim_end_matches([',', ';', ':', ')', '"', '\'', '*', '.']);
    w.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && EXTENSIONS.contains(&ext)
            // `3.c` is a clause, not a file; `Node.js` and `Vue.js` are names of things.
            && !stem.bytes().all(|b| b.is_ascii_digit())
            && (ext != "js" || !stem.starts_with(|c: char| c.is_ascii_uppercase()))
    })
}

/// `w` as a relative file path, when it looks like one.
fn as_path(w: &str) -> Option<String> {
    let w = w
        .trim_start_matches(['(', '"', '\'', '*'])
        .trim_end_matches([',', ';', ':', ')', '"', '\'', '*', '.']);
    let w = w.strip_prefix("./").unwrap_or(w);
    let name = w.rsplit('/').next().unwrap_or(w);
    let (stem, ext) = name.rsplit_once('.')?;
    let ok = !w.is_empty()
        && !w.contains("://")
        && !w.starts_with(['/', '-'])
        && !w.starts_with("..")
        && w.chars()
            .all(|c| c.is_alphanumeric() || "/._-@+".contains(c))
        && !stem.is_empty()
        && (1..=8).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        && !ext.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| w.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkboxes() {
        let b = checkbox("- [ ] 1. Title").unwrap();
        assert_eq!((b.ch, b.state_offset), (' ', 3));
        assert_eq!(checkbox("  * [X] 2.1 x").unwrap().ch, 'X');
        assert_eq!(checkbox("1. [x] a").unwrap().ch, 'x');
        assert!(checkbox("- [ ]* 2.3 opt").unwrap().optional);
        assert_eq!(checkbox("- [-] 5. x").unwrap().ch, '-');
        assert!(checkbox("- [] 5. x").is_none());
        assert!(checkbox("- plain").is_none());
        assert!(checkbox("-[ ] no").is_none());
        assert!(checkbox("- [link](x)").is_none());
    }

    fn head(s: &str) -> Option<(String, String)> {
        task_head(s).map(|h| (h.id, s[h.rest..].to_owned()))
    }

    #[test]
    fn task_ids() {
        assert_eq!(head("1. Title"), Some(("1".into(), "Title".into())));
        assert_eq!(
            head("2.1 Sub task"),
            Some(("2.1".into(), "Sub task".into()))
        );
        assert_eq!(head("303.1. X"), Some(("303.1".into(), "X".into())));
        assert_eq!(head("1.1: Colon"), Some(("1.1".into(), "Colon".into())));
        assert_eq!(head("CR-A. Review"), Some(("CR-A".into(), "Review".into())));
        assert_eq!(head("CR1. Review"), Some(("CR1".into(), "Review".into())));
        assert_eq!(
            head("CR-FINAL. Last"),
            Some(("CR-FINAL".into(), "Last".into()))
        );
        assert_eq!(head("Task 3: Words"), Some(("3".into(), "Words".into())));
        assert_eq!(head("POST /api/users"), None);
        assert_eq!(head("CR-A review"), None);
        assert_eq!(head("Every track has CR"), None);
        assert_eq!(head("1st thing"), None);
        assert!(task_head("7.9* (P) opt").unwrap().optional);
    }

    #[test]
    fn titles_lose_decorations() {
        assert_eq!(
            clean_title("Code Review: Foundation Setup =\u{fffd}\u{f}").title,
            "Code Review: Foundation Setup"
        );
        assert_eq!(
            clean_title("Backend core ✅ APPROVED").title,
            "Backend core"
        );
        assert_eq!(clean_title("Thing ✓").title, "Thing");
        let t = clean_title("Build screens (4h)");
        assert_eq!(
            (t.title.as_str(), t.estimate.as_deref()),
            ("Build screens", Some("4h"))
        );
        let t = clean_title("Models in src/models/ [P]");
        assert!(t.parallel);
        assert_eq!(t.title, "Models in src/models/");
        assert_eq!(clean_title("Ünïcödé 标题").title, "Ünïcödé 标题");
        assert_eq!(
            clean_title("Handle (edge) cases").title,
            "Handle (edge) cases"
        );
    }

    #[test]
    fn metadata_lines() {
        let m = metadata("_Dependencies: Tasks 1-2_").unwrap();
        assert_eq!((m.key, m.value), ("Dependencies", "Tasks 1-2"));
        assert_eq!(
            &"_Dependencies: Tasks 1-2_"[m.value_offset..][..9],
            "Tasks 1-2"
        );
        let m = metadata("_Boundary: mnist_training_data_").unwrap();
        assert_eq!(m.value, "mnist_training_data");
        let m = metadata("**Dependencies**: Task 3").unwrap();
        assert_eq!((m.key, m.value), ("Dependencies", "Task 3"));
        let m = metadata("Dependencies: Task 3").unwrap();
        assert_eq!(m.value, "Task 3");
        assert!(metadata("Create the files: a, b").is_none());
        assert!(metadata("Set up things").is_none());
    }

    #[test]
    fn headings() {
        assert_eq!(
            heading("Track B: Core Features (Dependencies: Track A, CR-A, PR-A)"),
            Heading::Track {
                track: "B",
                name: "Core Features",
                deps: Some(("Track A, CR-A, PR-A", 38)),
            }
        );
        assert!(matches!(
            heading("Track A: Foundation (No Dependencies)"),
            Heading::Track {
                track: "A",
                deps: Some(("No Dependencies", _)),
                ..
            }
        ));
        assert_eq!(heading("📋 Execution Strategy"), Heading::ExecutionStrategy);
        assert_eq!(
            heading("Testing Track (Dependencies: CR4)"),
            Heading::Section {
                deps: Some(("CR4", 29))
            }
        );
    }

    #[test]
    fn groups() {
        let g = group_head("Group 2 (After Group 1 + CR1):").unwrap();
        assert_eq!(g.number, 2);
        assert_eq!(g.after.unwrap().0, "Group 1 + CR1");
        assert!(group_head("Group 1 (Immediate Start):").unwrap().immediate);
        let g = group_head("Group 4 (Review Gate 2):").unwrap();
        assert!(g.after.is_none() && !g.immediate);
        let g = group_head("Group 3 (depends on Group 2)").unwrap();
        let (phrase, at) = g.after.unwrap();
        assert_eq!(
            &"Group 3 (depends on Group 2)"[at..at + phrase.len()],
            "Group 2"
        );
    }

    #[test]
    fn speckit_heads_and_markers() {
        let head = task_head("T012 [P] [US1] Create the model in src/model.rs").expect("a task");
        assert_eq!(head.id, "T012");
        let rest = &"T012 [P] [US1] Create the model in src/model.rs"[head.rest..];
        assert_eq!(
            speckit_markers(rest),
            (
                "Create the model in src/model.rs".to_owned(),
                true,
                Some("US1".to_owned())
            )
        );
        assert_eq!(
            task_head("**T003** Bold id").map(|h| h.id),
            Some("T003".to_owned())
        );
        assert_eq!(task_head("TODO write this"), None);
    }

    #[test]
    fn inline_depends_is_found() {
        let t = "Wire it in src/cli.rs (depends on T008, T009)";
        let (whole, list) = inline_depends(t).expect("found");
        assert_eq!(&t[list], "T008, T009");
        assert_eq!(&t[whole], "(depends on T008, T009)");
    }

    #[test]
    fn paths_named_in_prose_need_a_directory_or_backticks() {
        assert_eq!(
            named_paths(
                "Edit `src/lib.rs` and `Cargo.toml`, then src/cli.rs; not README.md, `console.log` or e.g. v1.2"
            ),
            vec!["src/lib.rs", "Cargo.toml", "src/cli.rs"]
        );
    }

    #[test]
    fn paths_are_found_and_other_words_are_not() {
        assert_eq!(
            paths_in(
                "Add `config.toml` and src/lib.rs, then .github/workflows/ci.yml (see docs/x.md), README.md; e.g. v1.2 with Node.js, per 3.c."
            ),
            vec![
                "config.toml",
                "src/lib.rs",
                ".github/workflows/ci.yml",
                "docs/x.md",
                "README.md"
            ]
        );
        assert!(paths_in("version 1.2 of and/or the https://example.com/a.html page").is_empty());
    }
}
