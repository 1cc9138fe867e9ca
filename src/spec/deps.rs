//! The dependency phrase grammar: `Tasks 4-6, 9`, `PR-A (approved)`, `Track A completion (Tasks
//! 1-3)`, `All previous CR/PR approvals (PR-A, PR-B)`, `CR-A and/or PR-A (failed)`, `None`, …
//!
//! A phrase becomes a list of [`DepRef`]s, each with the byte span of the words it came from so
//! that an unknown id can be pointed at. Turning references into tasks is the resolver's job.

use serde::Serialize;

/// What a dependency needs from the task it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    /// The task is done.
    #[default]
    Done,
    /// The task (a review gate) is done and approved: `PR-A (approved)`.
    Approved,
    /// The task (a review gate) asked for changes: `CR-A and/or PR-A (failed)`. A task with such
    /// a dependency is conditional: it runs only when the condition holds.
    Failed,
}

/// The thing a dependency names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// One task id: `3`, `2.1`, `CR-A`.
    Id { id: String },
    /// An inclusive range: `4-6`, `PR-A through PR-F`.
    Range { from: String, to: String },
    /// Every task of a track: `Track A`.
    Track { track: String },
    /// Every declared execution group's tasks: `Group 2`.
    Group { group: u32 },
    /// Every earlier task of the given id classes (`CR`, `PR`, …; all tasks when empty):
    /// `All previous CR/PR approvals`.
    AllPrevious { classes: Vec<String> },
    /// Every task of every lettered track but the depender's own: `All tracks complete`.
    AllTracks,
}

/// One reference found in a phrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepRef {
    pub target: Target,
    pub requirement: Requirement,
    /// Byte span of the reference inside the phrase.
    #[serde(skip)]
    pub span: (usize, usize),
}

/// The outcome of reading one phrase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub refs: Vec<DepRef>,
    /// The phrase says explicitly that there are no dependencies (`None`, `No Dependencies`).
    pub explicit_none: bool,
}

impl Parsed {
    /// Whether the phrase said anything this grammar understood.
    pub fn is_understood(&self) -> bool {
        self.explicit_none || !self.refs.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// A word or id, with its span.
    Word(&'a str),
    Comma,
    Plus,
    LParen,
    RParen,
    /// A spaced range dash (`T003 – T008`) or `through`/`to`.
    RangeOp,
    Slash,
}

fn tokenize(phrase: &str) -> Vec<(Tok<'_>, (usize, usize))> {
    let mut out = Vec::new();
    let mut chars = phrase.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let single = match c {
            ',' | ';' | '、' | '，' | '；' => Some(Tok::Comma),
            '+' | '&' => Some(Tok::Plus),
            '(' | '（' | '[' => Some(Tok::LParen),
            ')' | '）' | ']' => Some(Tok::RParen),
            '/' => Some(Tok::Slash),
            '–' | '—' | '→' => Some(Tok::RangeOp),
            _ => None,
        };
        if let Some(tok) = single {
            // An arrow orders two tasks; it is not a range.
            let tok = if c == '→' { Tok::Comma } else { tok };
            out.push((tok, (i, i + c.len_utf8())));
            chars.next();
            continue;
        }
        if c.is_alphanumeric() {
            let start = i;
            let mut end = i;
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '.' || d == '-' || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            // A trailing dot ends a sentence; a trailing dash is punctuation.
            let word = phrase[start..end].trim_end_matches(['.', '-']);
            let end = start + word.len();
            if !word.is_empty() {
                let tok = match word.to_ascii_lowercase().as_str() {
                    "through" | "to" => Tok::RangeOp,
                    _ => Tok::Word(word),
                };
                out.push((tok, (start, end)));
            }
            continue;
        }
        if c == '-' {
            // A dash with space around it is a range operator (`1 - 3`); otherwise noise.
            let spaced = phrase[..i].ends_with(' ') && phrase[i + 1..].starts_with(' ');
            if spaced {
                out.push((Tok::RangeOp, (i, i + 1)));
            }
        }
        chars.next();
    }
    out
}

/// Whether `word` is a task id in the dependency grammar.
pub fn is_id(word: &str) -> bool {
    is_numeric_id(word) || is_alpha_id(word) || is_speckit_id(word)
}

/// `1`, `2.1`, `303.1`.
pub fn is_numeric_id(word: &str) -> bool {
    !word.is_empty()
        && word
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `CR-A`, `PR-FINAL`, `RW-B`, `CR1`.
pub fn is_alpha_id(word: &str) -> bool {
    let bytes = word.as_bytes();
    let lead = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if lead < 2 {
        return false;
    }
    let rest = &word[lead..];
    if let Some(tail) = rest.strip_prefix('-') {
        // CR-A, PR-FINAL, CR-A1: upper-case letters and digits after one or more dashes.
        !tail.is_empty()
            && tail.split('-').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            })
    } else {
        // CR1, PR12 (but not plain words like `API`).
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) && lead <= 3
    }
}

/// `T001`.
pub fn is_speckit_id(word: &str) -> bool {
    word.len() >= 4 && word.starts_with('T') && word[1..].bytes().all(|b| b.is_ascii_digit())
}

/// A numeric range written as one word: `4-6`, `1.1-1.3`.
fn split_word_range(word: &str) -> Option<(&str, &str)> {
    let (a, b) = word.split_once('-')?;
    (is_numeric_id(a) && is_numeric_id(b)).then_some((a, b))
}

fn qualifier(word: &str) -> Option<Requirement> {
    match word.to_ascii_lowercase().as_str() {
        "approved" | "approval" | "approvals" | "passed" | "passes" => Some(Requirement::Approved),
        "failed" | "fails" | "rejected" => Some(Requirement::Failed),
        _ => None,
    }
}

const NONE_PHRASES: &[&str] = &[
    "none",
    "no dependencies",
    "no dependency",
    "n/a",
    "-",
    "—",
    "nothing",
    "can start immediately",
    "immediate start",
    "immediate",
];

/// Reads one dependency phrase.
pub fn parse(phrase: &str) -> Parsed {
    let normalized = phrase
        .trim()
        .trim_end_matches(['.', '_', '*'])
        .trim()
        .to_ascii_lowercase();
    if NONE_PHRASES.contains(&normalized.as_str()) || normalized.starts_with("none ") {
        return Parsed {
            refs: Vec::new(),
            explicit_none: true,
        };
    }
    let toks = tokenize(phrase);
    let mut refs = Vec::new();
    parse_tokens(&toks, &mut refs);
    Parsed {
        refs,
        explicit_none: false,
    }
}

/// Clause-level state: where the current clause started, and where the last qualifier applied.
fn parse_tokens(toks: &[(Tok<'_>, (usize, usize))], refs: &mut Vec<DepRef>) {
    let mut track_mode = false;
    let mut group_mode = false;
    // refs[clause_start..] belong to the clause being read (since the last separator).
    let mut clause_start = refs.len();
    // refs[unqualified_start..] have not had a qualifier applied yet.
    let mut unqualified_start = refs.len();
    let mut i = 0;
    while i < toks.len() {
        let (tok, span) = &toks[i];
        match tok {
            Tok::Comma | Tok::Plus => {
                clause_start = refs.len();
                track_mode = track_mode && matches!(tok, Tok::Comma);
                group_mode = group_mode && matches!(tok, Tok::Comma);
            }
            Tok::Slash | Tok::RangeOp | Tok::RParen => {}
            Tok::LParen => {
                let close = matching_paren(toks, i);
                let inner = &toks[i + 1..close];
                let mut inner_refs = Vec::new();
                parse_tokens(inner, &mut inner_refs);
                let has_refs = !inner_refs.is_empty();
                let inner_qualifier = inner.iter().find_map(|(t, _)| match t {
                    Tok::Word(w) => qualifier(w),
                    _ => None,
                });
                if has_refs {
                    // A parenthesised id list inside a vague clause wins over it.
                    let clause_is_vague = refs[clause_start..].iter().all(|r| {
                        matches!(
                            r.target,
                            Target::Track { .. } | Target::AllPrevious { .. } | Target::AllTracks
                        )
                    });
                    if clause_is_vague {
                        // The vague words' qualifier carries over: `All … approvals (PR-A, PR-B)`.
                        let carried = refs[clause_start..]
                            .iter()
                            .map(|r| r.requirement)
                            .find(|q| *q != Requirement::Done);
                        refs.truncate(clause_start);
                        if let Some(q) = carried {
                            for r in &mut inner_refs {
                                if r.requirement == Requirement::Done {
                                    r.requirement = q;
                                }
                            }
                        }
                    }
                    refs.extend(inner_refs);
                } else if let Some(q) = inner_qualifier {
                    apply_qualifier(&mut refs[unqualified_start..], q);
                    unqualified_start = refs.len();
                }
                track_mode = false;
                i = close + 1;
                continue;
            }
            Tok::Word(word) => {
                let lower = word.to_ascii_lowercase();
                if let Some(q) = qualifier(word) {
                    apply_qualifier(&mut refs[unqualified_start..], q);
                    unqualified_start = refs.len();
                } else if lower == "track" || lower == "tracks" {
                    track_mode = true;
                    group_mode = false;
                } else if lower == "group" || lower == "groups" {
                    group_mode = true;
                    track_mode = false;
                } else if lower == "task" || lower == "tasks" || lower == "subtask" {
                    track_mode = false;
                    group_mode = false;
                } else if lower == "all"
                    && !matches!(toks.get(i + 1), Some((Tok::Word(next), _)) if qualifier(next).is_some())
                {
                    let (target, requirement, next) = read_all_phrase(toks, i);
                    refs.push(DepRef {
                        target,
                        requirement,
                        span: (span.0, toks[next - 1].1.1),
                    });
                    i = next;
                    continue;
                } else if group_mode && word.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(group) = word.parse() {
                        refs.push(DepRef {
                            target: Target::Group { group },
                            requirement: Requirement::Done,
                            span: *span,
                        });
                    }
                } else if track_mode && is_track_name(word) {
                    refs.push(DepRef {
                        target: Target::Track {
                            track: (*word).to_owned(),
                        },
                        requirement: Requirement::Done,
                        span: *span,
                    });
                } else if let Some((from, to)) = split_word_range(word) {
                    track_mode = false;
                    refs.push(DepRef {
                        target: Target::Range {
                            from: from.to_owned(),
                            to: to.to_owned(),
                        },
                        requirement: Requirement::Done,
                        span: *span,
                    });
                } else if is_id(word) {
                    track_mode = false;
                    // `A - B`, `A – B`, `A through B`.
                    if let (Some((Tok::RangeOp, _)), Some((Tok::Word(to), to_span))) =
                        (toks.get(i + 1), toks.get(i + 2))
                        && is_id(to)
                    {
                        refs.push(DepRef {
                            target: Target::Range {
                                from: (*word).to_owned(),
                                to: (*to).to_owned(),
                            },
                            requirement: Requirement::Done,
                            span: (span.0, to_span.1),
                        });
                        i += 3;
                        continue;
                    }
                    refs.push(DepRef {
                        target: Target::Id {
                            id: (*word).to_owned(),
                        },
                        requirement: Requirement::Done,
                        span: *span,
                    });
                }
                // Anything else (`completion`, `and`, prose) is noise.
            }
        }
        i += 1;
    }
}

/// A track name after `Track`: a letter (`A`) or a short upper-case label with digits (`US1`).
fn is_track_name(word: &str) -> bool {
    let mut chars = word.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && word.len() <= 4
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && !is_alpha_id(word)
}

fn apply_qualifier(refs: &mut [DepRef], q: Requirement) {
    for r in refs {
        r.requirement = q;
    }
}

fn matching_paren(toks: &[(Tok<'_>, (usize, usize))], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, (tok, _)) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Reads an `All …` phrase up to the next separator or parenthesis; returns the target and the
/// index of the first token after it.
fn read_all_phrase(
    toks: &[(Tok<'_>, (usize, usize))],
    start: usize,
) -> (Target, Requirement, usize) {
    let mut classes = Vec::new();
    let mut requirement = Requirement::Done;
    let mut previous = false;
    let mut tracks = false;
    let mut j = start + 1;
    while j < toks.len() {
        match &toks[j].0 {
            Tok::Word(w) => {
                let lower = w.to_ascii_lowercase();
                match lower.as_str() {
                    "previous" | "prior" | "earlier" | "preceding" => previous = true,
                    "track" | "tracks" => tracks = true,
                    "cr" | "pr" | "rw" | "qa" => classes.push(w.to_ascii_uppercase()),
                    _ => {
                        if let Some(q) = qualifier(w) {
                            requirement = q;
                        }
                    }
                }
            }
            Tok::Slash => {}
            _ => break,
        }
        j += 1;
    }
    let target = if tracks && !previous {
        Target::AllTracks
    } else {
        Target::AllPrevious { classes }
    };
    (target, requirement, j.max(start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(phrase: &str) -> Vec<(Target, Requirement)> {
        parse(phrase)
            .refs
            .into_iter()
            .map(|r| (r.target, r.requirement))
            .collect()
    }

    fn id(s: &str) -> Target {
        Target::Id { id: s.into() }
    }

    fn range(a: &str, b: &str) -> Target {
        Target::Range {
            from: a.into(),
            to: b.into(),
        }
    }

    fn track(s: &str) -> Target {
        Target::Track { track: s.into() }
    }

    use Requirement::{Approved, Done, Failed};

    #[test]
    fn plain_ids_and_ranges() {
        assert_eq!(targets("Task 3"), [(id("3"), Done)]);
        assert_eq!(targets("Tasks 1-2"), [(range("1", "2"), Done)]);
        assert_eq!(
            targets("Tasks 4-6, 9"),
            [(range("4", "6"), Done), (id("9"), Done)]
        );
        assert_eq!(targets("2.1, 2.2"), [(id("2.1"), Done), (id("2.2"), Done)]);
        assert_eq!(
            targets("Tasks 3-4, RW-B"),
            [(range("3", "4"), Done), (id("RW-B"), Done)]
        );
        assert_eq!(targets("T003 – T008"), [(range("T003", "T008"), Done)]);
        assert_eq!(
            targets("All track approvals (PR-A through PR-F)"),
            [(range("PR-A", "PR-F"), Approved)]
        );
    }

    #[test]
    fn qualifiers_apply_to_the_list_before_them() {
        assert_eq!(targets("PR-A (approved)"), [(id("PR-A"), Approved)]);
        assert_eq!(
            targets("PR-D, PR-E (approved)"),
            [(id("PR-D"), Approved), (id("PR-E"), Approved)]
        );
        assert_eq!(
            targets("PR-B (approved), PR-C (approved)"),
            [(id("PR-B"), Approved), (id("PR-C"), Approved)]
        );
        assert_eq!(
            targets("CR-A and/or PR-A (failed)"),
            [(id("CR-A"), Failed), (id("PR-A"), Failed)]
        );
        assert_eq!(
            targets("PR-A, PR-B, PR-C (all approved)"),
            [
                (id("PR-A"), Approved),
                (id("PR-B"), Approved),
                (id("PR-C"), Approved)
            ]
        );
        assert_eq!(targets("CR1 approved "), [(id("CR1"), Approved)]);
    }

    #[test]
    fn tracks_and_vague_phrases() {
        assert_eq!(targets("Track A"), [(track("A"), Done)]);
        assert_eq!(
            targets("Track A, B"),
            [(track("A"), Done), (track("B"), Done)]
        );
        assert_eq!(
            targets("Track B, C + CR2"),
            [(track("B"), Done), (track("C"), Done), (id("CR2"), Done)]
        );
        assert_eq!(
            targets("Track A, CR-A, PR-A"),
            [(track("A"), Done), (id("CR-A"), Done), (id("PR-A"), Done)]
        );
        assert_eq!(
            targets("Tracks B, C, E completion"),
            [(track("B"), Done), (track("C"), Done), (track("E"), Done)]
        );
        assert_eq!(
            targets("Track A completion (Tasks 1-3)"),
            [(range("1", "3"), Done)]
        );
        assert_eq!(
            targets("Track F partial (Tasks 19-28)"),
            [(range("19", "28"), Done)]
        );
        assert_eq!(
            targets("All previous CR/PR approvals (PR-A, PR-B, PR-C)"),
            [
                (id("PR-A"), Approved),
                (id("PR-B"), Approved),
                (id("PR-C"), Approved)
            ]
        );
        assert_eq!(
            targets("All previous CR/PR approvals"),
            [(
                Target::AllPrevious {
                    classes: vec!["CR".into(), "PR".into()]
                },
                Approved
            )]
        );
        assert_eq!(targets("All tracks complete"), [(Target::AllTracks, Done)]);
        assert_eq!(
            targets("After Group 1 + CR1"),
            [(Target::Group { group: 1 }, Done), (id("CR1"), Done)]
        );
    }

    #[test]
    fn none_and_prose() {
        assert!(parse("None").explicit_none);
        assert!(parse("No Dependencies").explicit_none);
        assert!(parse("none").refs.is_empty());
        let prose = parse("Data models from previous features");
        assert!(!prose.is_understood());
        // Words that look like ids only in upper case are not ids.
        assert!(!is_id("API"));
        assert!(is_id("CR-FINAL") && is_id("CR1") && is_id("2.1") && is_id("T001"));
    }

    #[test]
    fn spans_point_at_the_words() {
        let phrase = "Tasks 4-6, CR-A";
        let refs = parse(phrase).refs;
        assert_eq!(&phrase[refs[0].span.0..refs[0].span.1], "4-6");
        assert_eq!(&phrase[refs[1].span.0..refs[1].span.1], "CR-A");
    }
}
