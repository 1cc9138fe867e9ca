//! Dependencies inferred by an agent for a task list that declares none: the prompt that asks
//! for them, the answer read from the agent's output, its validation against the list, and the
//! edits that write it into tasks.md as the dialect's own annotation.
//!
//! Pure: no process runs here and nothing is written. The caller runs the agent, hands its
//! output to [`parse_answer`], then [`infer`], and writes [`Inferred::bytes`] only when every
//! step succeeded, so that an invalid answer leaves tasks.md byte-identical.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::edit::{self, LineEdit};
use super::model::{Dialect, TaskList, TaskState};
use crate::error::{Diagnostic, Location};
use crate::plan;

/// Lists with more pending tasks than this are asked in parts (see [`parts`]).
pub const PART_SIZE: usize = 150;

/// How many lines of an unreadable output an error shows.
const SHOWN_LINES: usize = 20;

/// The agent's answer: `{"tasks": [{"id": "2.1", "depends_on": ["1.1"], "reason": "…"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub tasks: Vec<AnsweredTask>,
}

/// One task of the answer. `depends_on: []` means independent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredTask {
    #[serde(deserialize_with = "id")]
    pub id: String,
    #[serde(deserialize_with = "ids")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An id as a string, or as a number (`2`, `2.1`) as models sometimes write them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Integer(u64),
    Number(serde_json::Number),
}

impl Id {
    /// The id as text. A number with a fraction is refused: as a JSON number `1.10` is `1.1`,
    /// another task.
    fn text<E: serde::de::Error>(self) -> Result<String, E> {
        match self {
            Id::Text(s) => Ok(s),
            Id::Integer(n) => Ok(n.to_string()),
            Id::Number(n) => Err(E::custom(format!(
                "the id {n} is written as a number; write ids as strings (\"{n}\"): as a number, 1.10 is read as 1.1"
            ))),
        }
    }
}

fn id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Id::deserialize(d)?.text()
}

fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(Id::text)
        .collect()
}

/// The answer format, as the prompt and the errors state it.
pub const FORMAT: &str = r#"{"tasks": [{"id": "2.1", "depends_on": ["1.1", "1.3"], "reason": "uses the schema from 1.1"}]}"#;

/// Reads the answer from the agent's standard output: the last fenced ```` ```json ```` block,
/// or the whole output when it is one JSON value. Anything else is an error showing the first
/// lines of the output (the caller adds the log's path as a note).
#[expect(
    clippy::result_large_err,
    reason = "cold path; the diagnostic is the result"
)]
pub fn parse_answer(output: &str) -> Result<Answer, Diagnostic> {
    let (json, from_block) = match last_json_block(output) {
        Some(block) => (block, true),
        None => (output.trim().to_owned(), false),
    };
    let why = if json.is_empty() {
        if output.trim().is_empty() {
            "the output is empty".to_owned()
        } else {
            "no ```json block, and the output is not one JSON value".to_owned()
        }
    } else {
        match serde_json::from_str::<Answer>(&json) {
            Ok(answer) => return Ok(answer),
            Err(e) if from_block => format!("its last ```json block does not fit: {e}"),
            Err(e) => {
                format!("no ```json block, and the output is not one JSON value of the format: {e}")
            }
        }
    };
    let mut d = Diagnostic::error(format!(
        "the agent's answer is not in the format spec-exec asked for: {why}"
    ))
    .help(format!(
        "the answer is the last ```json block of the output, or the whole output as one JSON value: {FORMAT}"
    ));
    let lines: Vec<&str> = crate::source::lines(output).collect();
    d = d.note(if lines.len() > SHOWN_LINES {
        format!(
            "the output's first {SHOWN_LINES} lines (of {}):",
            lines.len()
        )
    } else {
        "the output:".to_owned()
    });
    for line in lines.iter().take(SHOWN_LINES) {
        d = d.note(format!("| {}", printable(line)));
    }
    Err(d)
}

/// An agent's text as it may be shown on a terminal: control characters (escape sequences, a
/// bell) each become `�`; tabs stay.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// The text of the last fenced block whose info string is `json`.
fn last_json_block(output: &str) -> Option<String> {
    let mut last = None;
    let mut open: Option<(usize, Vec<&str>)> = None;
    for line in crate::source::lines(output) {
        let t = line.trim();
        match &mut open {
            Some((ticks, body)) => {
                let n = t.len() - t.trim_start_matches('`').len();
                if n >= *ticks && t[n..].trim().is_empty() {
                    last = Some(body.join("\n"));
                    open = None;
                } else {
                    body.push(line);
                }
            }
            None => {
                let n = t.len() - t.trim_start_matches('`').len();
                if n >= 3 && t[n..].trim().eq_ignore_ascii_case("json") {
                    open = Some((n, Vec::new()));
                }
            }
        }
    }
    last
}

/// What [`infer`] may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--replace`: a task that declares its dependencies gets the answer's instead.
    pub replace: bool,
}

/// Where a task's dependencies in the new plan come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The agent's answer, written into tasks.md.
    Answer,
    /// The task declares its own; they stay (no `--replace`).
    Declared,
    /// Missing from the answer: it keeps its place (written out when the file had no
    /// dependency information, so that it keeps it once others have some).
    Unanswered,
}

/// A pending task in the new plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub id: String,
    /// The ids it waits for, as written (a container's id stands for its sub-tasks).
    pub depends_on: Vec<String>,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A valid answer, ready to be written.
#[derive(Debug, Clone)]
pub struct Inferred {
    /// Every pending task, in document order, with its dependencies in the new plan.
    pub planned: Vec<Planned>,
    /// The lines added to (or replaced in) tasks.md.
    pub edits: Vec<LineEdit>,
    /// tasks.md with the edits made.
    pub bytes: Vec<u8>,
    /// The edited list, parsed again: it plans as `planned` says.
    pub after: TaskList,
    /// Pending tasks missing from the answer, answers for done tasks, declarations kept.
    pub warnings: Vec<Diagnostic>,
}

/// A plan's shape, for the summary before → after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Pending tasks that will run.
    pub tasks: usize,
    /// Tasks on the longest chain.
    pub critical_path: usize,
    /// Tasks in the widest group.
    pub widest: usize,
}

/// The plan before and after the edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub before: Shape,
    pub after: Shape,
}

/// The shape of `list`'s plan (every track, optional tasks included). The list must have no
/// errors.
pub fn shape(list: &TaskList) -> crate::error::Result<Shape> {
    let p = plan::build(
        list,
        &plan::Options {
            max_agents: usize::MAX,
            ..plan::Options::default()
        },
    )?;
    Ok(Shape {
        tasks: p.nodes.len(),
        critical_path: p.critical_path.len(),
        widest: p.levels.iter().map(Vec::len).max().unwrap_or(0),
    })
}

impl Inferred {
    /// The plan of `before` (the list the answer was validated against) and of the edited list.
    pub fn summary(&self, before: &TaskList) -> crate::error::Result<Summary> {
        Ok(Summary {
            before: shape(before)?,
            after: shape(&self.after)?,
        })
    }

    /// The edits as a unified diff, for `--dry-run`.
    pub fn diff(&self, before: &TaskList) -> String {
        edit::render_diff(
            &before.source.display_path,
            &before.source.bytes,
            &self.edits,
        )
    }
}

/// Where task `i` is written, for diagnostics.
fn at(list: &TaskList, i: usize) -> Location {
    list.location(list.id_offset(i), list.tasks[i].id.len())
}

/// The pending executable tasks, in document order.
pub fn pending(list: &TaskList) -> Vec<usize> {
    list.leaves()
        .filter(|&i| list.tasks[i].state != TaskState::Done)
        .collect()
}

/// Validates `answer` against `list` (which must parse without errors) and computes the edits
/// that write it into tasks.md. Errors name the task and where it is written; on any error
/// nothing is computed, so nothing can be written.
pub fn infer(
    list: &TaskList,
    answer: &Answer,
    options: &Options,
) -> Result<Inferred, Vec<Diagnostic>> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let answered = read_answer(list, answer, &mut errors, &mut warnings);

    // Every pending task's dependencies in the new plan.
    let pending = pending(list);
    let write_order = list.dialect != Dialect::SpecKit && !list.has_dependency_info;
    let mut planned: Vec<PlannedTask> = Vec::new();
    let mut missing: Vec<usize> = Vec::new();
    for &i in &pending {
        let task = &list.tasks[i];
        let declared = !task.dep_phrases.is_empty();
        let current: Vec<usize> = task.deps.iter().map(|e| e.on).collect();
        let current_ids = || current.iter().map(|&d| list.tasks[d].id.clone()).collect();
        match answered.get(&i) {
            Some(_) if declared && !options.replace => {
                warnings.push(
                    Diagnostic::warning(format!(
                        "task {} declares its dependencies; they are kept",
                        task.id
                    ))
                    .at(at(list, i))
                    .help("`--replace` writes the answer's instead"),
                );
                planned.push((
                    i,
                    Planned {
                        id: task.id.clone(),
                        depends_on: current_ids(),
                        origin: Origin::Declared,
                        reason: None,
                    },
                    current.clone(),
                ));
            }
            Some((written, leaves, reason)) => planned.push((
                i,
                Planned {
                    id: task.id.clone(),
                    depends_on: written.clone(),
                    origin: Origin::Answer,
                    reason: reason.clone(),
                },
                leaves.clone(),
            )),
            None => {
                missing.push(i);
                planned.push((
                    i,
                    Planned {
                        id: task.id.clone(),
                        depends_on: current_ids(),
                        origin: if declared {
                            Origin::Declared
                        } else {
                            Origin::Unanswered
                        },
                        reason: None,
                    },
                    current.clone(),
                ));
            }
        }
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|&i| list.tasks[i].id.as_str()).collect();
        warnings.push(
            Diagnostic::warning(format!(
                "the answer leaves out {} pending task{}: {}; {} keep{} today's order",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                if names.len() == 1 { "it" } else { "they" },
                if names.len() == 1 { "s" } else { "" },
            ))
            .at(at(list, missing[0]))
            .help("run `deps` again to ask for them, or declare their dependencies by hand"),
        );
    }

    // spec-kit runs its phases in order: a task cannot wait for one of a later phase.
    if list.dialect == Dialect::SpecKit {
        let phase = speckit_phases(list);
        for (i, p, leaves) in &planned {
            if p.origin != Origin::Answer {
                continue;
            }
            for &d in leaves {
                if let (Some(a), Some(b)) = (phase[*i], phase[d])
                    && b > a
                {
                    errors.push(
                        Diagnostic::error(format!(
                            "task {} depends on {}, which is in a later phase ({})",
                            p.id, list.tasks[d].id, list.sections[b].title
                        ))
                        .at(at(list, *i))
                        .label(format!("in {}", list.sections[a].title))
                        .help("spec-kit runs the phases in order, so this cannot hold; ask again, or move the task"),
                    );
                }
            }
        }
    }

    if errors.is_empty()
        && let Some(cycle) = find_cycle(list.tasks.len(), &planned)
    {
        let names: Vec<&str> = cycle.iter().map(|&i| list.tasks[i].id.as_str()).collect();
        errors.push(
            Diagnostic::error(format!(
                "task {} is in a dependency cycle: {} → {}",
                names[0],
                names.join(" → "),
                names[0]
            ))
            .at(at(list, cycle[0]))
            .note("each task waits for the next one")
            .help("the tasks of a cycle could never start; ask again"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let edits = line_edits(list, &planned, write_order)?;
    let (new_bytes, after) = read_back(list, &planned, &edits)?;
    Ok(Inferred {
        planned: planned.into_iter().map(|(_, p, _)| p).collect(),
        edits,
        bytes: new_bytes,
        after,
        warnings,
    })
}

/// An answered task: its dependencies as written, the leaves it waits for, and the reason.
type Entry = (Vec<String>, Vec<usize>, Option<String>);

/// The answer, task by task, with what is wrong in it added to `errors` (and what is odd to
/// `warnings`).
fn read_answer(
    list: &TaskList,
    answer: &Answer,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> HashMap<usize, Entry> {
    let path = list.source.display_path.clone();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, t) in list.tasks.iter().enumerate() {
        ids.entry(t.id.as_str()).or_insert(i);
    }
    let ancestors = |i: usize| {
        let mut out = Vec::new();
        let mut at = list.tasks[i].parent;
        while let Some(p) = at {
            out.push(p);
            at = list.tasks[p].parent;
        }
        out
    };

    let mut answered: HashMap<usize, Entry> = HashMap::new();
    for entry in &answer.tasks {
        let Some(&i) = ids.get(entry.id.trim()) else {
            errors.push(
                Diagnostic::error(format!(
                    "the answer gives dependencies for task {}, which is not in tasks.md",
                    entry.id
                ))
                .in_file(&path)
                .help("the answer may name only the tasks of the list it was given; ask again"),
            );
            continue;
        };
        let task = &list.tasks[i];
        if task.is_container() {
            errors.push(
                Diagnostic::error(format!(
                    "the answer gives dependencies for task {}, which has sub-tasks",
                    task.id
                ))
                .at(at(list, i))
                .label("a container runs as its sub-tasks")
                .help("the answer must give the dependencies of its sub-tasks instead; ask again"),
            );
            continue;
        }
        if task.state == TaskState::Done {
            warnings.push(
                Diagnostic::warning(format!(
                    "the answer gives dependencies for task {}, which is done; they are left out",
                    task.id
                ))
                .at(at(list, i)),
            );
            continue;
        }
        if answered.contains_key(&i) {
            errors.push(
                Diagnostic::error(format!("the answer gives task {} twice", task.id))
                    .at(at(list, i))
                    .help("each pending task is answered once; ask again"),
            );
            continue;
        }
        let mut written: Vec<String> = Vec::new();
        let mut leaves: Vec<usize> = Vec::new();
        for dep in &entry.depends_on {
            let dep = dep.trim();
            let Some(&d) = ids.get(dep) else {
                errors.push(
                    Diagnostic::error(format!(
                        "task {} depends on {dep}, which is not in tasks.md",
                        task.id
                    ))
                    .at(at(list, i))
                    .label("the answer names an unknown task here")
                    .help("the answer may name only the tasks of the list; ask again"),
                );
                continue;
            };
            let base = dep.split_once('@').map_or(dep, |(b, _)| b);
            let namesakes: Vec<usize> = (0..list.tasks.len())
                .filter(|&k| {
                    let id = list.tasks[k].id.as_str();
                    id == base || id.strip_prefix(base).is_some_and(|r| r.starts_with('@'))
                })
                .collect();
            if namesakes.len() > 1 {
                let lines: Vec<String> = namesakes
                    .iter()
                    .map(|&k| list.tasks[k].line.to_string())
                    .collect();
                errors.push(
                    Diagnostic::error(format!(
                        "task {} depends on {dep}, but {} tasks have the id {base} (lines {}): tasks.md cannot name one of them",
                        task.id,
                        namesakes.len(),
                        lines.join(", ")
                    ))
                    .at(at(list, i))
                    .help("give those tasks distinct ids, then run `deps` again"),
                );
                continue;
            }
            if d == i {
                errors.push(
                    Diagnostic::error(format!("task {} depends on itself", task.id))
                        .at(at(list, i))
                        .help("a task cannot wait for itself; ask again"),
                );
                continue;
            }
            if ancestors(i).contains(&d) {
                errors.push(
                    Diagnostic::error(format!(
                        "task {} depends on {dep}, which contains it",
                        task.id
                    ))
                    .at(at(list, i))
                    .help("a sub-task cannot wait for its own parent; ask again"),
                );
                continue;
            }
            if !written.iter().any(|w| w == dep) {
                written.push(dep.to_owned());
                for l in list.leaves_of(d) {
                    if !leaves.contains(&l) {
                        leaves.push(l);
                    }
                }
            }
        }
        answered.insert(i, (written, leaves, entry.reason.clone()));
    }
    answered
}

/// A task of the new plan: its index, its dependencies, and the leaves it waits for.
type PlannedTask = (usize, Planned, Vec<usize>);

/// The lines that write `planned` into tasks.md, in the dialect's own form: a task's answered
/// dependencies (and, in a file with no dependency information, `write_order`, the order of
/// tasks the answer left out).
fn line_edits(
    list: &TaskList,
    planned: &[PlannedTask],
    write_order: bool,
) -> Result<Vec<LineEdit>, Vec<Diagnostic>> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let bytes = &list.source.bytes;
    let lines = edit::byte_lines(bytes);
    let key = if list.source.text.contains("_Dependencies:") {
        "Dependencies"
    } else if list.source.text.contains("_Depends:") || list.source.text.contains("_Boundary:") {
        "Depends"
    } else {
        "Dependencies"
    };
    let mut edits: Vec<LineEdit> = Vec::new();
    for (i, p, _) in planned {
        let write = match p.origin {
            Origin::Answer => true,
            Origin::Unanswered => write_order,
            Origin::Declared => false,
        };
        if !write {
            continue;
        }
        let task = &list.tasks[*i];
        let task_line = task.line;
        let phrase_lines: Vec<usize> = {
            let mut v: Vec<usize> = task
                .dep_phrases
                .iter()
                .map(|ph| list.source.line_col(ph.offset).0)
                .collect();
            v.dedup();
            v
        };
        if phrase_lines.len() > 1 {
            errors.push(
                Diagnostic::error(format!(
                    "task {} declares its dependencies on {} lines; `--replace` replaces one",
                    task.id,
                    phrase_lines.len()
                ))
                .at(at(list, *i))
                .help("merge them into one line by hand, then run `deps --replace` again"),
            );
            continue;
        }
        let line_bytes = |n: usize| {
            let (s, c, _) = lines[n - 1];
            &bytes[s..c]
        };
        let inline = list.dialect == Dialect::SpecKit || phrase_lines.first() == Some(&task_line);
        if inline {
            let old = line_bytes(task_line);
            let new = inline_line(old, &p.depends_on);
            if new != old {
                edits.push(LineEdit {
                    line: task_line,
                    replace: true,
                    text: new,
                });
            }
            continue;
        }
        let value = if p.depends_on.is_empty() {
            "None".to_owned()
        } else {
            p.depends_on.join(", ")
        };
        let annotation = format!("_{key}: {value}_");
        if let Some(&n) = phrase_lines.first() {
            let old = line_bytes(n);
            // The line is replaced whole: only when it says nothing but the dependencies.
            let body = trim_bullet(old).trim_ascii();
            let only_phrase = (body.starts_with(b"_Dependencies:")
                || body.starts_with(b"_Depends:"))
                && body.len() > 1
                && body.ends_with(b"_")
                && !body[1..body.len() - 1].contains(&b'_');
            if !only_phrase {
                errors.push(
                    Diagnostic::error(format!(
                        "task {}'s dependencies are declared on a line that says more than them; `--replace` would lose the rest",
                        task.id
                    ))
                    .at(at(list, *i))
                    .help("put the dependencies on a line of their own (`_Dependencies: …_`), then run `deps --replace` again"),
                );
                continue;
            }
            let lead = old.len() - trim_bullet(old).len();
            let mut text = old[..lead].to_vec();
            text.extend_from_slice(annotation.as_bytes());
            edits.push(LineEdit {
                line: n,
                replace: true,
                text,
            });
            continue;
        }
        let (after, mut prefix) = detail_place(bytes, &lines, task_line, !task.steps.is_empty());
        prefix.extend_from_slice(annotation.as_bytes());
        edits.push(LineEdit {
            line: after,
            replace: false,
            text: prefix,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(edits)
}

/// The file with `edits` applied, parsed again: it must read back as `planned` answered, every
/// answered edge holding, or nothing is written.
fn read_back(
    list: &TaskList,
    planned: &[PlannedTask],
    edits: &[LineEdit],
) -> Result<(Vec<u8>, TaskList), Vec<Diagnostic>> {
    let path = list.source.display_path.clone();
    let bytes = &list.source.bytes;
    let mut errors: Vec<Diagnostic> = Vec::new();
    let new_bytes = edit::apply(bytes, edits);
    let after = super::parse_bytes(path.clone(), new_bytes.clone());
    if after.has_errors() {
        let mut out: Vec<Diagnostic> = after.errors().cloned().collect();
        for d in &mut out {
            *d = d.clone().note(
                "this is what tasks.md would say with the answer written; it was not written",
            );
        }
        return Err(out);
    }
    // Nothing but the dependencies changes: every task keeps its title and code blocks.
    // Only lines were added or replaced: the tasks are the same, in the same order.
    for (i, task) in list.tasks.iter().enumerate() {
        let same = after.tasks.len() == list.tasks.len() && {
            let t = &after.tasks[i];
            t.id == task.id
                && t.title == task.title
                && t.code_blocks
                    .iter()
                    .map(|b| &b.code)
                    .eq(task.code_blocks.iter().map(|b| &b.code))
        };
        if !same {
            errors.push(
                Diagnostic::error(format!(
                    "writing the answer would change task {}'s text, not only its dependencies; nothing was written",
                    task.id
                ))
                .at(at(list, i))
                .help("add its dependencies by hand, or ask again"),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (i, p, leaves) in planned {
        let Some(j) = after.find(&p.id) else {
            continue;
        };
        let read: HashSet<&str> = after.tasks[j]
            .deps
            .iter()
            .map(|e| after.tasks[e.on].id.as_str())
            .collect();
        for &d in leaves {
            let want = list.tasks[d].id.as_str();
            if !read.contains(want) {
                errors.push(
                    Diagnostic::error(format!(
                        "task {}'s dependency on {want} would not hold in tasks.md as written (the file's own order may run {want} after it)",
                        p.id
                    ))
                    .at(at(list, *i))
                    .help("ask again, or move the tasks in the file"),
                );
            }
        } // What the task itself declares is what was answered: a declaration the edit left
        // in place (on another line) must not keep a dependency the answer dropped.
        if p.origin == Origin::Answer {
            let wanted: HashSet<&str> = leaves.iter().map(|&d| list.tasks[d].id.as_str()).collect();
            for e in &after.tasks[j].deps {
                let on = after.tasks[e.on].id.as_str();
                if e.source == crate::spec::model::DepSource::Task && !wanted.contains(on) {
                    errors.push(
                        Diagnostic::error(format!(
                            "task {} would still declare a dependency on {on}, which the answer leaves out; nothing was written",
                            p.id
                        ))
                        .at(at(list, *i))
                        .help("remove that declaration by hand (it is not on the line spec-exec replaces), then run `deps --replace` again"),
                    );
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((new_bytes, after))
}

/// A line with its leading list marker (`- `, `* `, `12. `) and indentation: the rest.
fn trim_bullet(line: &[u8]) -> &[u8] {
    let mut k = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(line.len());
    let rest = &line[k..];
    if matches!(rest.first(), Some(b'-' | b'*' | b'+')) && matches!(rest.get(1), Some(b' ' | b'\t'))
    {
        k += 2;
    } else {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0
            && matches!(rest.get(digits), Some(b'.' | b')'))
            && matches!(rest.get(digits + 1), Some(b' ' | b'\t'))
        {
            k += digits + 2;
        }
    }
    &line[k..]
}

/// Indentation width in columns (a tab to the next multiple of 4).
fn indent_width(line: &[u8]) -> usize {
    let mut w = 0;
    for &b in line {
        match b {
            b' ' => w += 1,
            b'\t' => w = (w / 4 + 1) * 4,
            _ => break,
        }
    }
    w
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Whether a line starts a block of its own (list item, heading, fence, quote, table), rather
/// than continuing the paragraph before it.
fn starts_block(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    is_bullet(line)
        || t.starts_with(b"#")
        || t.starts_with(b"```")
        || t.starts_with(b"~~~")
        || t.starts_with(b">")
        || t.starts_with(b"|")
        || t.starts_with(b"<!--")
}

/// Whether a line is a list item.
fn is_bullet(line: &[u8]) -> bool {
    trim_bullet(line).len() < line.trim_ascii_start().len()
}

/// Where a task's first detail line goes (the 1-based line it follows: the task's line, or
/// the last line of its wrapped title) and the new line's indentation and marker: those of the
/// task's first detail bullet, or, with none, a nested list item under the task. A task
/// written as a heading (`#### Task 1.1: Title`) gets a `- ` line at the end of the list of
/// steps under it, where its metadata is read.
fn detail_place(
    bytes: &[u8],
    lines: &[(usize, usize, usize)],
    task_line: usize,
    heading: bool,
) -> (usize, Vec<u8>) {
    let text = |n: usize| {
        let (s, c, _) = lines[n - 1];
        &bytes[s..c]
    };
    let own = text(task_line);
    let mut after = task_line;
    while after < lines.len() && !is_blank(text(after + 1)) && !starts_block(text(after + 1)) {
        after += 1;
    }
    if heading {
        // A heading task's metadata is read after its steps: the end of the list under it.
        // A code fence's lines (blank ones too) belong to it: the line goes after the fence.
        let mut n = after + 1;
        while n <= lines.len() && is_blank(text(n)) {
            n += 1;
        }
        let mut fence = false;
        while n <= lines.len()
            && (fence || (!is_blank(text(n)) && !text(n).trim_ascii_start().starts_with(b"#")))
        {
            let t = text(n).trim_ascii_start();
            if t.starts_with(b"```") || t.starts_with(b"~~~") {
                fence = !fence;
            }
            after = n;
            n += 1;
        }
        return (after, b"- ".to_vec());
    }
    let task_indent = indent_width(own);
    let lead = own.len() - own.trim_ascii_start().len();
    let marker_len = own.len() - lead - trim_bullet(own).len();
    let marker = match own.get(lead) {
        Some(&m @ (b'-' | b'*' | b'+')) => m,
        _ => b'-',
    };
    let mut prefix = own[..lead].to_vec();
    prefix.extend(std::iter::repeat_n(b' ', marker_len.max(2)));
    prefix.extend_from_slice(&[marker, b' ']);
    for n in after + 1..=lines.len() {
        let l = text(n);
        if is_blank(l) {
            continue;
        }
        if indent_width(l) <= task_indent {
            break;
        }
        if is_bullet(l) {
            let k = l.len() - l.trim_ascii_start().len();
            prefix = if matches!(l[k], b'-' | b'*' | b'+') {
                l[..l.len() - trim_bullet(l).len()].to_vec()
            } else {
                let mut p = l[..k].to_vec();
                p.extend_from_slice(b"- ");
                p
            };
            break;
        }
    }
    (after, prefix)
}

/// spec-kit's task line with `(depends on …)` at its end (or in place of the one it has; none
/// at all for no dependencies).
fn inline_line(old: &[u8], deps: &[String]) -> Vec<u8> {
    let lower = old.to_ascii_lowercase();
    let phrase = if deps.is_empty() {
        Vec::new()
    } else {
        format!("(depends on {})", deps.join(", ")).into_bytes()
    };
    if let Some(start) = find(&lower, b"(depends on")
        && let Some(close) = old[start..].iter().position(|&b| b == b')')
    {
        let end = start + close + 1;
        let mut begin = start;
        if phrase.is_empty() && begin > 0 && old[begin - 1] == b' ' {
            begin -= 1;
        }
        let mut new = old[..begin].to_vec();
        new.extend_from_slice(&phrase);
        new.extend_from_slice(&old[end..]);
        return new;
    }
    if phrase.is_empty() {
        return old.to_vec();
    }
    // Before the markers that end the line (`[P]`, `(P)`, `[US1]`), which are read only there.
    let mut content = old.trim_ascii_end().len();
    loop {
        let t = &old[..content];
        let marker = if t.ends_with(b"[P]") || t.ends_with(b"(P)") {
            3
        } else if t.ends_with(b"]")
            && let Some(open) = t.iter().rposition(|&b| b == b'[')
            && t[open + 1..t.len() - 1].starts_with(b"US")
            && t[open + 3..t.len() - 1].iter().all(u8::is_ascii_digit)
        {
            t.len() - open
        } else {
            break;
        };
        let before = &t[..t.len() - marker];
        if !before.ends_with(b" ") {
            break;
        }
        content = before.trim_ascii_end().len();
    }
    let mut new = old[..content].to_vec();
    new.push(b' ');
    new.extend_from_slice(&phrase);
    new.extend_from_slice(&old[content..]);
    new
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// spec-kit: the `## Phase N:` section each task is in (the phase heading's section index).
fn speckit_phases(list: &TaskList) -> Vec<Option<usize>> {
    let phase_of = super::resolve::phase_sections(list);
    list.tasks
        .iter()
        .map(|t| t.section.and_then(|s| phase_of[s]))
        .collect()
}

/// A cycle among the planned tasks' dependencies, first task first.
fn find_cycle(n: usize, planned: &[(usize, Planned, Vec<usize>)]) -> Option<Vec<usize>> {
    let mut edges: Vec<&[usize]> = vec![&[]; n];
    for (i, _, deps) in planned {
        edges[*i] = deps;
    }
    // 0 = unseen, 1 = on the path, 2 = finished.
    let mut color = vec![0u8; n];
    for &(start, _, _) in planned {
        if color[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&d) = edges[node].get(*next) {
                *next += 1;
                match color[d] {
                    0 => {
                        color[d] = 1;
                        path.push((d, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(t, _)| t == d).unwrap_or(0);
                        return Some(path[from..].iter().map(|&(t, _)| t).collect());
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                path.pop();
            }
        }
    }
    None
}

/// Answers from parts merged into one, to be validated as one by [`infer`].
pub fn merge(answers: impl IntoIterator<Item = Answer>) -> Answer {
    Answer {
        tasks: answers.into_iter().flat_map(|a| a.tasks).collect(),
    }
}

/// One part of a long list: the pending tasks it asks about, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub tasks: Vec<usize>,
}

/// The pending tasks cut into parts of at most `max` tasks, along top-level parents (or,
/// for tasks without a parent, their phase or section): one part when they all fit.
pub fn parts(list: &TaskList, max: usize) -> Vec<Part> {
    let max = max.max(1);
    let pending = pending(list);
    let phases = (list.dialect == Dialect::SpecKit).then(|| speckit_phases(list));
    let key = |i: usize| -> (bool, Option<usize>) {
        let mut top = i;
        while let Some(p) = list.tasks[top].parent {
            top = p;
        }
        if top != i {
            return (true, Some(top));
        }
        match &phases {
            Some(ph) => (false, ph[i].or(list.tasks[i].section)),
            None => (false, list.tasks[i].section),
        }
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut last = None;
    for &i in &pending {
        let k = key(i);
        if last == Some(k) {
            groups.last_mut().expect("a group").push(i);
        } else {
            groups.push(vec![i]);
            last = Some(k);
        }
    }
    let mut out: Vec<Part> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for group in groups {
        if !current.is_empty() && current.len() + group.len() > max {
            out.push(Part {
                tasks: std::mem::take(&mut current),
            });
        }
        for chunk in group.chunks(max) {
            if current.len() + chunk.len() > max {
                out.push(Part {
                    tasks: std::mem::take(&mut current),
                });
            }
            current.extend_from_slice(chunk);
        }
    }
    if !current.is_empty() || out.is_empty() {
        out.push(Part { tasks: current });
    }
    out
}

/// What the prompt points the agent at.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    pub feature: &'a str,
    /// tasks.md, as shown to the user.
    pub tasks: &'a Path,
    /// requirements.md (or bugfix.md), when the spec has one.
    pub requirements: Option<&'a Path>,
    pub design: Option<&'a Path>,
}

/// The prompt asking which pending tasks depend on which: for the whole list, or for `part`
/// (`(k, n, part)`, the k-th of n), which lists the other pending tasks by id and title only.
pub fn prompt(
    list: &TaskList,
    input: &PromptInput<'_>,
    part: Option<(usize, usize, &Part)>,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let asked: Vec<usize> = match part {
        Some((_, _, p)) => p.tasks.clone(),
        None => pending(list),
    };
    let _ = writeln!(
        s,
        "You are planning the work on feature `{}`: decide which of the pending tasks of its task list depend on which, so that independent tasks can run in parallel.",
        input.feature
    );
    let _ = writeln!(
        s,
        "Read only: do not change, create or delete any file, and do not commit."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Read for context:");
    let _ = writeln!(s, "- the task list: `{}`", input.tasks.display());
    if let Some(r) = input.requirements {
        let _ = writeln!(s, "- the requirements: `{}`", r.display());
    }
    if let Some(d) = input.design {
        let _ = writeln!(s, "- the design: `{}`", d.display());
    }
    let _ = writeln!(
        s,
        "- the repository, in the current directory: what exists already, and what each task will touch"
    );
    if let Some((k, n, _)) = part {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "The list is long, so it is asked in {n} parts; this is part {k}. Answer for the tasks under \"Pending tasks\" only; the other pending tasks are listed by id and title, and may be named as dependencies."
        );
    }
    let done: Vec<usize> = list
        .leaves()
        .filter(|&i| list.tasks[i].state == TaskState::Done)
        .collect();
    if !done.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "## Done tasks (finished; may be named as dependencies)");
        let _ = writeln!(s);
        for i in done {
            let _ = writeln!(s, "- {} {}", list.tasks[i].id, list.tasks[i].title);
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Pending tasks");
    for &i in &asked {
        let t = &list.tasks[i];
        let _ = writeln!(s);
        let _ = writeln!(s, "### {} {}", t.id, t.title);
        if let Some(p) = t.parent {
            let _ = writeln!(s, "(part of {} {})", list.tasks[p].id, list.tasks[p].title);
        }
        for d in &t.details {
            for (k, line) in d.lines().enumerate() {
                let _ = writeln!(s, "{}{line}", if k == 0 { "- " } else { "  " });
            }
        }
        if let Some(r) = &t.requirements {
            let _ = writeln!(s, "- Requirements: {r}");
        }
        for m in &t.metadata {
            let _ = writeln!(s, "- {}: {}", m.key, m.value);
        }
    }
    if part.is_some() {
        let others: Vec<usize> = pending(list)
            .into_iter()
            .filter(|i| !asked.contains(i))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "## Other pending tasks (asked in other parts)");
            let _ = writeln!(s);
            for i in others {
                let _ = writeln!(s, "- {} {}", list.tasks[i].id, list.tasks[i].title);
            }
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Answer");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "End your output with one fenced ```json block (or make the whole output that JSON value):"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "```json");
    let _ = writeln!(s, "{FORMAT}");
    let _ = writeln!(s, "```");
    let _ = writeln!(s);
    let _ = writeln!(s, "Rules:");
    let _ = writeln!(
        s,
        "- Give every task under \"Pending tasks\" exactly once, by its id; `depends_on: []` means it can start at once."
    );
    let _ = writeln!(
        s,
        "- A task depends on another only when it needs that task's result: code, a schema, a file, a decision it makes. Tasks that touch the same files should not run at the same time either."
    );
    let _ = writeln!(
        s,
        "- Name only ids of this list. A task never depends on itself or on its own parent, and the dependencies form no cycle."
    );
    let _ = writeln!(
        s,
        "- Prefer the fewest dependencies that keep the work correct: each one you leave out lets tasks run in parallel."
    );
    if list.dialect == Dialect::SpecKit {
        let _ = writeln!(
            s,
            "- The phases run in order: a task may not depend on a task of a later phase."
        );
    }
    let _ = writeln!(
        s,
        "- `reason` is optional: one short sentence, shown to the user who reviews the result."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_bytes;

    fn list(text: &[u8]) -> TaskList {
        let l = parse_bytes("specs/f/tasks.md", text.to_vec());
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        l
    }

    fn answer(pairs: &[(&str, &[&str])]) -> Answer {
        Answer {
            tasks: pairs
                .iter()
                .map(|(id, deps)| AnsweredTask {
                    id: (*id).to_owned(),
                    depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
                    reason: None,
                })
                .collect(),
        }
    }

    /// Each pending task's dependencies as the parser reads them, sorted.
    fn dag(l: &TaskList) -> Vec<(String, Vec<String>)> {
        pending(l)
            .into_iter()
            .map(|i| {
                let mut d: Vec<String> = l.tasks[i]
                    .deps
                    .iter()
                    .map(|e| l.tasks[e.on].id.clone())
                    .collect();
                d.sort();
                (l.tasks[i].id.clone(), d)
            })
            .collect()
    }

    fn expected(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(id, deps)| {
                let mut d: Vec<String> = deps.iter().map(|d| (*d).to_owned()).collect();
                d.sort();
                ((*id).to_owned(), d)
            })
            .collect()
    }

    const KIRO6: &str = "# Implementation Plan\n\n- [ ] 1. Set up the crate\n  - Create the workspace\n  - _Requirements: 1.1_\n\n- [ ] 2. Define the schema\n  - _Requirements: 1.2_\n\n- [ ] 3. Write the parser\n\n- [ ] 4. Write the renderer\n  - Render to HTML\n\n- [ ] 5. Wire the CLI\n\n- [ ] 6. Document it\n";

    const DAG6: &[(&str, &[&str])] = &[
        ("1", &[]),
        ("2", &["1"]),
        ("3", &["2"]),
        ("4", &["2"]),
        ("5", &["3", "4"]),
        ("6", &[]),
    ];

    #[test]
    fn a_kiro_list_of_six_tasks_becomes_exactly_the_answered_dag() {
        let before = list(KIRO6.as_bytes());
        assert_eq!(shape(&before).unwrap().widest, 1);
        let inferred = infer(&before, &answer(DAG6), &Options::default()).unwrap();
        let text = String::from_utf8(inferred.bytes.clone()).unwrap();
        assert_eq!(
            text,
            "# Implementation Plan\n\n- [ ] 1. Set up the crate\n  - _Dependencies: None_\n  - Create the workspace\n  - _Requirements: 1.1_\n\n- [ ] 2. Define the schema\n  - _Dependencies: 1_\n  - _Requirements: 1.2_\n\n- [ ] 3. Write the parser\n  - _Dependencies: 2_\n\n- [ ] 4. Write the renderer\n  - _Dependencies: 2_\n  - Render to HTML\n\n- [ ] 5. Wire the CLI\n  - _Dependencies: 3, 4_\n\n- [ ] 6. Document it\n  - _Dependencies: None_\n"
        );
        let after = list(&inferred.bytes);
        assert_eq!(dag(&after), expected(DAG6));
        assert_eq!(dag(&inferred.after), expected(DAG6));
        // Only lines were added: removing them gives the file back.
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("_Dependencies:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(kept, KIRO6);
        let s = inferred.summary(&before).unwrap();
        assert_eq!(
            (s.before.critical_path, s.before.widest),
            (6, 1),
            "before: one chain"
        );
        assert_eq!((s.after.critical_path, s.after.widest), (4, 2));
        assert!(inferred.warnings.is_empty(), "{:?}", inferred.warnings);
    }

    #[test]
    fn the_diff_shows_each_added_line_after_its_task() {
        let before = list(KIRO6.as_bytes());
        let inferred = infer(&before, &answer(&DAG6[..2]), &Options::default()).unwrap();
        assert_eq!(
            inferred.diff(&before),
            "--- a/specs/f/tasks.md\n+++ b/specs/f/tasks.md\n@@ -3,1 +3,2 @@\n - [ ] 1. Set up the crate\n+  - _Dependencies: None_\n@@ -7,1 +8,2 @@\n - [ ] 2. Define the schema\n+  - _Dependencies: 1_\n@@ -10,1 +12,2 @@\n - [ ] 3. Write the parser\n+  - _Dependencies: 2_\n@@ -12,1 +15,2 @@\n - [ ] 4. Write the renderer\n+  - _Dependencies: 3_\n@@ -15,1 +19,2 @@\n - [ ] 5. Wire the CLI\n+  - _Dependencies: 4_\n@@ -17,1 +22,2 @@\n - [ ] 6. Document it\n+  - _Dependencies: 5_\n"
        );
    }

    #[test]
    fn a_partial_answer_keeps_the_order_of_the_tasks_it_leaves_out() {
        let before = list(KIRO6.as_bytes());
        let inferred = infer(
            &before,
            &answer(&[("1", &[]), ("2", &[]), ("5", &["1"]), ("6", &[])]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            dag(&inferred.after),
            expected(&[
                ("1", &[]),
                ("2", &[]),
                ("3", &["2"]),
                ("4", &["3"]),
                ("5", &["1"]),
                ("6", &[]),
            ])
        );
        let w: Vec<String> = inferred.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            w,
            [
                "specs/f/tasks.md:10:7: the answer leaves out 2 pending tasks: 3, 4; they keep today's order"
            ]
        );
        assert_eq!(
            inferred
                .planned
                .iter()
                .map(|p| p.origin)
                .collect::<Vec<_>>(),
            [
                Origin::Answer,
                Origin::Answer,
                Origin::Unanswered,
                Origin::Unanswered,
                Origin::Answer,
                Origin::Answer
            ]
        );
    }

    #[test]
    fn sub_tasks_get_the_line_under_them_in_their_own_indentation_and_marker() {
        let text = "# Implementation Plan\n\n- [x] 1. Base\n- [ ] 2. Core\n  - [ ] 2.1 Model\n    * Write the types\n  - [ ] 2.2 Store\n- [ ] 3. Flat parent\n- [ ] 3.1 Flat child\n- [ ] 3.2 Flat child with a title\n  wrapped on two lines\n";
        let before = list(text.as_bytes());
        let dag_ = [
            ("2.1", &["1"][..]),
            ("2.2", &["2.1"][..]),
            ("3.1", &[][..]),
            ("3.2", &["2"][..]),
        ];
        let inferred = infer(&before, &answer(&dag_), &Options::default()).unwrap();
        assert_eq!(
            String::from_utf8(inferred.bytes.clone()).unwrap(),
            "# Implementation Plan\n\n- [x] 1. Base\n- [ ] 2. Core\n  - [ ] 2.1 Model\n    * _Dependencies: 1_\n    * Write the types\n  - [ ] 2.2 Store\n    - _Dependencies: 2.1_\n- [ ] 3. Flat parent\n- [ ] 3.1 Flat child\n  - _Dependencies: None_\n- [ ] 3.2 Flat child with a title\n  wrapped on two lines\n  - _Dependencies: 2_\n"
        );
        // `2` stands for its sub-tasks; a dependency on a done task is allowed.
        assert_eq!(
            dag(&inferred.after),
            expected(&[
                ("2.1", &["1"]),
                ("2.2", &["2.1"]),
                ("3.1", &[]),
                ("3.2", &["2.1", "2.2"]),
            ])
        );
        let title = |l: &TaskList| l.tasks[l.find("3.2").unwrap()].title.clone();
        assert_eq!(title(&inferred.after), title(&before));
    }

    #[test]
    fn crlf_and_invalid_utf8_are_kept_and_added_lines_end_as_the_files_do() {
        let mut bytes =
            b"# Plan\r\n\r\n- [ ] 1. One \xff\xfe\r\n- [ ] 2. Two\r\n- [ ] 3. Three".to_vec();
        let before = parse_bytes("tasks.md", bytes.clone());
        assert!(!before.has_errors());
        let inferred = infer(
            &before,
            &answer(&[("1", &[]), ("2", &[]), ("3", &["1", "2"])]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            inferred.bytes,
            b"# Plan\r\n\r\n- [ ] 1. One \xff\xfe\r\n  - _Dependencies: None_\r\n- [ ] 2. Two\r\n  - _Dependencies: None_\r\n- [ ] 3. Three\r\n  - _Dependencies: 1, 2_"
        );
        assert_eq!(
            dag(&inferred.after),
            expected(&[("1", &[]), ("2", &[]), ("3", &["1", "2"])])
        );
        // Nothing was written to the input.
        bytes.truncate(bytes.len());
        assert_eq!(before.source.bytes, bytes);
    }

    #[test]
    fn spec_kit_writes_depends_on_at_the_end_of_the_task_line() {
        let text = "# Tasks: F\n\n## Phase 1: Setup\n\n- [x] T001 Create the project\n- [ ] T002 Add lint config in .eslintrc [P]\n\n## Phase 2: Core\n\n- [ ] T003 [P] Model in src/model.ts\n- [ ] T004 [P] Store in src/store.ts\n- [ ] T005 [P] View in src/view.ts\n";
        let before = list(text.as_bytes());
        let inferred = infer(
            &before,
            &answer(&[
                ("T002", &["T001"]),
                ("T003", &[]),
                ("T004", &["T003"]),
                ("T005", &["T003", "T004"]),
            ]),
            &Options::default(),
        )
        .unwrap();
        let out = String::from_utf8(inferred.bytes.clone()).unwrap();
        assert_eq!(
            out,
            text.replace("src/store.ts\n", "src/store.ts (depends on T003)\n")
                .replace("src/view.ts\n", "src/view.ts (depends on T003, T004)\n")
                .replace(".eslintrc [P]\n", ".eslintrc (depends on T001) [P]\n")
        );
        let d = dag(&inferred.after);
        // The phase order stays: the answer's edges come on top of it.
        assert_eq!(
            d,
            expected(&[
                ("T002", &["T001"]),
                ("T003", &["T002"]),
                ("T004", &["T002", "T003"]),
                ("T005", &["T002", "T003", "T004"]),
            ])
        );
        for (id, title) in [
            ("T004", "Store in src/store.ts"),
            ("T002", "Add lint config in .eslintrc"),
        ] {
            let t = &inferred.after.tasks[inferred.after.find(id).unwrap()];
            assert_eq!(t.title, title);
            assert!(t.parallel);
        }
    }

    #[test]
    fn spec_kit_refuses_a_dependency_on_a_later_phase() {
        let text = "# Tasks: F\n\n## Phase 1: Setup\n\n- [ ] T001 Create the project\n\n## Phase 2: Core\n\n- [ ] T002 Model\n";
        let before = list(text.as_bytes());
        let e = infer(
            &before,
            &answer(&[("T001", &["T002"])]),
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            [
                "specs/f/tasks.md:5:7: task T001 depends on T002, which is in a later phase (Phase 2: Core)"
            ]
        );
    }

    #[test]
    fn cc_sdd_lists_get_depends() {
        let text = "# Implementation Plan\n\n- [ ] 1. Foundation\n- [ ] 1.1 (P) Schema\n  - Observable: the schema loads\n  - _Boundary: db_\n- [ ] 1.2 (P) Config\n  - _Boundary: config_\n- [ ] 2. Service\n- [ ] 2.1 Handler\n  - _Requirements: 2_\n";
        let before = list(text.as_bytes());
        let dag_: &[(&str, &[&str])] = &[("1.1", &[]), ("1.2", &[]), ("2.1", &["1.1"])];
        let inferred = infer(&before, &answer(dag_), &Options::default()).unwrap();
        let out = String::from_utf8(inferred.bytes.clone()).unwrap();
        assert_eq!(
            out,
            "# Implementation Plan\n\n- [ ] 1. Foundation\n- [ ] 1.1 (P) Schema\n  - _Depends: None_\n  - Observable: the schema loads\n  - _Boundary: db_\n- [ ] 1.2 (P) Config\n  - _Depends: None_\n  - _Boundary: config_\n- [ ] 2. Service\n- [ ] 2.1 Handler\n  - _Depends: 1.1_\n  - _Requirements: 2_\n"
        );
        // cc-sdd's own order still holds, as the format defines `_Depends:_` (cross-boundary
        // dependencies on top of it): 2.1 also waits for the rest of major 1.
        let read: &[(&str, &[&str])] = &[("1.1", &[]), ("1.2", &[]), ("2.1", &["1.1", "1.2"])];
        assert_eq!(dag(&inferred.after), expected(read));
    }

    #[test]
    fn a_heading_tasks_line_goes_after_its_code_fence_not_into_it() {
        let text = "### Task 1: Setup\n- [ ] Make it\n\n### Task 2: Build\n\n- [ ] Step one\n```sh\ncargo build\n\ncargo test\n```\n\n### Task 3: Ship\n- [ ] Ship it\n";
        let before = list(text.as_bytes());
        let dag_: &[(&str, &[&str])] = &[("1", &[]), ("2", &[]), ("3", &["1", "2"])];
        let inferred = infer(&before, &answer(dag_), &Options::default()).unwrap();
        let two = |l: &TaskList| {
            let t = &l.tasks[l.find("2").unwrap()];
            t.code_blocks
                .iter()
                .map(|b| b.code.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(two(&inferred.after), two(&before));
        assert_eq!(dag(&inferred.after), expected(dag_));
    }

    #[test]
    fn replace_refuses_what_it_cannot_replace_whole() {
        let replace = Options { replace: true };
        // A declaration with more on its line.
        let text =
            "# Tasks\n\n- [ ] 1. One\n- [ ] 2. Two\n  - _Dependencies: 1_ see the caching note\n";
        let e = infer(&list(text.as_bytes()), &answer(&[("2", &[])]), &replace).unwrap_err();
        assert!(e[0].to_string().contains("says more than them"), "{e:?}");
        // A declaration on another line than the one replaced.
        let text = "# Tasks\n\n## Phase 1: Setup\n\n- [ ] T001 [P] Create project in src/a.rs\n- [ ] T002 [P] Add thing in src/b.rs\n      - Dependency: T001\n- [ ] T003 [P] Add other in src/c.rs\n";
        let e = infer(
            &list(text.as_bytes()),
            &answer(&[("T002", &["T003"])]),
            &replace,
        )
        .unwrap_err();
        assert!(
            e.iter().any(|d| d
                .to_string()
                .contains("would still declare a dependency on T001")),
            "{e:?}"
        );
    }

    #[test]
    fn a_task_written_as_a_heading_gets_the_line_after_its_steps() {
        let text = "### Phase 1: Core\n\n#### Task 1.1: Service\n- [ ] Create the class\n- _Requirements: 1.1_\n\n#### Task 1.2: Lifecycle\n- [ ] Handle onCreate\n\n#### Task 1.3: Channel\n- [ ] Define constants\n";
        let before = list(text.as_bytes());
        let dag_: &[(&str, &[&str])] = &[("1.1", &[]), ("1.2", &["1.1"]), ("1.3", &["1.1"])];
        let inferred = infer(&before, &answer(dag_), &Options::default()).unwrap();
        assert_eq!(
            String::from_utf8(inferred.bytes.clone()).unwrap(),
            "### Phase 1: Core\n\n#### Task 1.1: Service\n- [ ] Create the class\n- _Requirements: 1.1_\n- _Dependencies: None_\n\n#### Task 1.2: Lifecycle\n- [ ] Handle onCreate\n- _Dependencies: 1.1_\n\n#### Task 1.3: Channel\n- [ ] Define constants\n- _Dependencies: 1.1_\n"
        );
        assert_eq!(dag(&inferred.after), expected(dag_));
    }

    const SPECFLOW: &str = "# Tasks\n\n- [ ] 1. Base\n  - _Dependencies: None_\n- [ ] 2. Model\n  - _Agent: rust_\n- [ ] 3. Store\n  - _Dependencies: Task 1_\n";

    #[test]
    fn declared_dependencies_stay_unless_replaced() {
        let before = list(SPECFLOW.as_bytes());
        let a = answer(&[("1", &[]), ("2", &["1"]), ("3", &["2"])]);
        let kept = infer(&before, &a, &Options::default()).unwrap();
        assert_eq!(
            String::from_utf8(kept.bytes.clone()).unwrap(),
            SPECFLOW.replace("  - _Agent", "  - _Dependencies: 1_\n  - _Agent")
        );
        assert_eq!(
            dag(&kept.after),
            expected(&[("1", &[]), ("2", &["1"]), ("3", &["1"])])
        );
        assert_eq!(kept.warnings.len(), 2, "{:?}", kept.warnings);
        let replaced = infer(&before, &a, &Options { replace: true }).unwrap();
        assert_eq!(
            String::from_utf8(replaced.bytes.clone()).unwrap(),
            SPECFLOW
                .replace("  - _Agent", "  - _Dependencies: 1_\n  - _Agent")
                .replace("Task 1_", "2_")
        );
        assert_eq!(
            dag(&replaced.after),
            expected(&[("1", &[]), ("2", &["1"]), ("3", &["2"])])
        );
        assert_eq!(replaced.edits.iter().filter(|e| e.replace).count(), 2);
    }

    #[test]
    fn spec_kit_replace_rewrites_the_inline_dependencies() {
        let text = "# Tasks: F\n\n## Phase 1: Setup\n\n- [ ] T001 [P] One\n- [ ] T002 [P] Two\n- [ ] T003 [P] Three (depends on T001)\n";
        let before = list(text.as_bytes());
        let a = answer(&[("T001", &[]), ("T002", &[]), ("T003", &["T002"])]);
        let r = infer(&before, &a, &Options { replace: true }).unwrap();
        assert_eq!(
            String::from_utf8(r.bytes).unwrap(),
            text.replace("(depends on T001)", "(depends on T002)")
        );
        let none = infer(
            &before,
            &answer(&[("T003", &[])]),
            &Options { replace: true },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(none.bytes).unwrap(),
            text.replace(" (depends on T001)", "")
        );
    }

    /// Each bad answer: the error it gives.
    fn refused(text: &str, a: &Answer) -> Vec<String> {
        let before = list(text.as_bytes());
        match infer(&before, a, &Options::default()) {
            Ok(i) => panic!("accepted: {:?}", i.planned),
            Err(e) => e.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn bad_answers_name_the_task_where_it_is_written() {
        assert_eq!(
            refused(KIRO6, &answer(&[("9", &[])])),
            [
                "specs/f/tasks.md: the answer gives dependencies for task 9, which is not in tasks.md"
            ]
        );
        assert_eq!(
            refused(KIRO6, &answer(&[("3", &["1", "7"])])),
            ["specs/f/tasks.md:10:7: task 3 depends on 7, which is not in tasks.md"]
        );
        assert_eq!(
            refused(KIRO6, &answer(&[("4", &["4"])])),
            ["specs/f/tasks.md:12:7: task 4 depends on itself"]
        );
        assert_eq!(
            refused(
                KIRO6,
                &answer(&[("2", &["5"]), ("5", &["3"]), ("3", &["2"])])
            ),
            ["specs/f/tasks.md:7:7: task 2 is in a dependency cycle: 2 → 5 → 3 → 2"]
        );
        assert_eq!(
            refused(KIRO6, &answer(&[("2", &[]), ("2", &["1"])])),
            ["specs/f/tasks.md:7:7: the answer gives task 2 twice"]
        );
        let nested = "- [ ] 1. Parent\n  - [ ] 1.1 A\n  - [ ] 1.2 B\n";
        assert_eq!(
            refused(nested, &answer(&[("1", &[])])),
            ["specs/f/tasks.md:1:7: the answer gives dependencies for task 1, which has sub-tasks"]
        );
        assert_eq!(
            refused(nested, &answer(&[("1.2", &["1"])])),
            ["specs/f/tasks.md:3:9: task 1.2 depends on 1, which contains it"]
        );
        let twice = "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 2. Other\n";
        assert_eq!(
            refused(twice, &answer(&[("1", &["2"])])),
            [
                "specs/f/tasks.md:1:7: task 1 depends on 2, but 2 tasks have the id 2 (lines 2, 3): tasks.md cannot name one of them"
            ]
        );
        // A missing task keeps its place: a cycle through it counts too.
        assert_eq!(
            refused(KIRO6, &answer(&[("2", &["4"])])),
            ["specs/f/tasks.md:7:7: task 2 is in a dependency cycle: 2 → 4 → 3 → 2"]
        );
    }

    /// What the caller does: write only a valid answer.
    fn deps_step(path: &Path, output: &str) -> Result<(), Vec<Diagnostic>> {
        let bytes = std::fs::read(path).unwrap();
        let before = parse_bytes("tasks.md", bytes);
        let a = parse_answer(output).map_err(|d| vec![d])?;
        let inferred = infer(&before, &a, &Options::default())?;
        std::fs::write(path, &inferred.bytes).unwrap();
        Ok(())
    }

    #[test]
    fn every_bad_answer_leaves_the_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.md");
        let original = KIRO6.replace('\n', "\r\n");
        std::fs::write(&path, &original).unwrap();
        let bad = [
            "I think they are all independent.",
            "```json\n{\"tasks\": [{\"id\": \"1\"}]}\n```",
            "{\"tasks\": [{\"id\": \"9\", \"depends_on\": []}]}",
            "{\"tasks\": [{\"id\": \"2\", \"depends_on\": [\"8\"]}]}",
            "{\"tasks\": [{\"id\": \"2\", \"depends_on\": [\"2\"]}]}",
            "{\"tasks\": [{\"id\": \"1\", \"depends_on\": [\"2\"]}, {\"id\": \"2\", \"depends_on\": [\"1\"]}]}",
            "{\"tasks\": [{\"id\": \"2\", \"depends_on\": []}, {\"id\": \"2\", \"depends_on\": []}]}",
            "",
        ];
        for output in bad {
            assert!(deps_step(&path, output).is_err(), "accepted: {output}");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                original,
                "{output}"
            );
        }
        deps_step(
            &path,
            "Here:\n```json\n{\"tasks\": [{\"id\": \"2\", \"depends_on\": []}]}\n```\n",
        )
        .unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), original);
    }

    #[test]
    fn the_answer_is_the_last_json_block_or_the_whole_output() {
        let out = "Thinking…\n```json\n{\"tasks\": []}\n```\nOn reflection:\n```json\n{\"tasks\": [{\"id\": \"2.1\", \"depends_on\": [\"1.1\", \"1.3\"], \"reason\": \"uses the schema from 1.1\"}]}\n```\nDone.";
        let a = parse_answer(out).unwrap();
        assert_eq!(a.tasks.len(), 1);
        assert_eq!(a.tasks[0].depends_on, ["1.1", "1.3"]);
        assert_eq!(
            a.tasks[0].reason.as_deref(),
            Some("uses the schema from 1.1")
        );
        let whole = parse_answer(" {\"tasks\": [{\"id\": \"1\", \"depends_on\": []}]}\n").unwrap();
        assert_eq!(whole.tasks[0].reason, None);
        // Whole numbers for ids are read as the ids they spell; a number with a fraction is
        // refused (as a number, 1.10 is 1.1).
        let numbers =
            parse_answer("{\"tasks\": [{\"id\": 3, \"depends_on\": [1, \"2.2\"]}]}").unwrap();
        assert_eq!(numbers.tasks[0].id, "3");
        assert_eq!(numbers.tasks[0].depends_on, ["1", "2.2"]);
        let fraction = parse_answer("{\"tasks\": [{\"id\": 1.10, \"depends_on\": []}]}")
            .unwrap_err()
            .to_string();
        assert!(fraction.contains("write ids as strings"), "{fraction}");
        assert_eq!(
            serde_json::from_str::<Answer>(FORMAT).unwrap().tasks[0].id,
            "2.1"
        );
    }

    #[test]
    fn an_answer_not_in_the_format_shows_the_first_twenty_lines() {
        let out: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        let d = parse_answer(&out).unwrap_err();
        assert!(
            d.message
                .starts_with("the agent's answer is not in the format"),
            "{}",
            d.message
        );
        assert_eq!(d.notes[0], "the output's first 20 lines (of 30):");
        assert_eq!(d.notes.len(), 21);
        assert_eq!(d.notes[20], "| line 20");
        let d = parse_answer("```json\n{\"tasks\": [{\"id\": true, \"depends_on\": []}]}\n```")
            .unwrap_err();
        assert!(
            d.message.contains("last ```json block does not fit"),
            "{}",
            d.message
        );
        assert_eq!(d.notes[0], "the output:");
    }

    /// A Kiro list of `majors` parents with `subs` sub-tasks each.
    fn long_list(majors: usize, subs: usize) -> String {
        let mut s = String::from("# Implementation Plan\n\n");
        for m in 1..=majors {
            s.push_str(&format!("- [ ] {m}. Part {m}\n"));
            for k in 1..=subs {
                s.push_str(&format!("  - [ ] {m}.{k} Step {k} of part {m}\n"));
            }
        }
        s
    }

    #[test]
    fn long_lists_are_asked_in_parts_along_parents_and_merged() {
        let before = list(long_list(8, 40).as_bytes());
        let ps = parts(&before, PART_SIZE);
        let sizes: Vec<usize> = ps.iter().map(|p| p.tasks.len()).collect();
        assert_eq!(sizes, [120, 120, 80]);
        let all: Vec<usize> = ps.iter().flat_map(|p| p.tasks.clone()).collect();
        assert_eq!(all, pending(&before));
        // A part names the rest by id and title.
        let input = PromptInput {
            feature: "big",
            tasks: Path::new("specs/big/tasks.md"),
            requirements: None,
            design: None,
        };
        let p2 = prompt(&before, &input, Some((2, 3, &ps[1])));
        assert!(p2.contains("this is part 2"));
        assert!(p2.contains("### 4.1 Step 1 of part 4\n"));
        assert!(p2.contains("- 1.1 Step 1 of part 1\n"));
        assert!(!p2.contains("### 1.1 "));
        // Each part answers its own tasks: each task after the one before it in its part.
        let answers = ps.iter().map(|p| Answer {
            tasks: p
                .tasks
                .iter()
                .enumerate()
                .map(|(k, &i)| AnsweredTask {
                    id: before.tasks[i].id.clone(),
                    depends_on: if k % 40 == 0 {
                        vec![]
                    } else {
                        vec![before.tasks[i - 1].id.clone()]
                    },
                    reason: None,
                })
                .collect(),
        });
        let merged = merge(answers);
        let inferred = infer(&before, &merged, &Options::default()).unwrap();
        assert!(inferred.warnings.is_empty());
        let s = inferred.summary(&before).unwrap();
        assert_eq!((s.before.critical_path, s.before.widest), (320, 1));
        assert_eq!((s.after.critical_path, s.after.widest), (40, 8));
        // A group larger than a part is cut.
        let big = list(long_list(1, 320).as_bytes());
        let sizes: Vec<usize> = parts(&big, PART_SIZE)
            .iter()
            .map(|p| p.tasks.len())
            .collect();
        assert_eq!(sizes, [150, 150, 20]);
        assert_eq!(parts(&list(KIRO6.as_bytes()), PART_SIZE).len(), 1);
    }

    #[test]
    fn spec_kit_lists_are_cut_along_phases() {
        let mut text = String::from("# Tasks: F\n");
        let mut n = 0;
        for (phase, count) in [(1, 3), (2, 2), (3, 4)] {
            text.push_str(&format!("\n## Phase {phase}: P{phase}\n\n### Tests\n\n"));
            for _ in 0..count {
                n += 1;
                text.push_str(&format!("- [ ] T{n:03} [P] Task {n}\n"));
            }
        }
        let l = list(text.as_bytes());
        let ids =
            |p: &Part| -> Vec<String> { p.tasks.iter().map(|&i| l.tasks[i].id.clone()).collect() };
        let ps = parts(&l, 5);
        assert_eq!(
            ps.iter().map(ids).collect::<Vec<_>>(),
            [
                vec!["T001", "T002", "T003", "T004", "T005"],
                vec!["T006", "T007", "T008", "T009"]
            ]
        );
        let input = PromptInput {
            feature: "f",
            tasks: Path::new("tasks.md"),
            requirements: None,
            design: None,
        };
        let p = prompt(&l, &input, Some((2, 2, &ps[1])));
        assert!(p.contains("a task may not depend on a task of a later phase"));
        assert!(p.contains("- T001 Task 1\n"));
    }

    #[test]
    fn the_prompt() {
        let text = "# Implementation Plan\n\n- [x] 1. Set up the crate\n- [ ] 2. Define the schema\n  - Tables for users and sessions\n  - _Requirements: 1.2_\n  - _Leverage: src/db.rs_\n- [ ] 3. Write the parser\n  - [ ] 3.1 Lexer\n  - [ ] 3.2 Grammar\n";
        let l = list(text.as_bytes());
        let input = PromptInput {
            feature: "auth",
            tasks: Path::new("specs/auth/tasks.md"),
            requirements: Some(Path::new("specs/auth/requirements.md")),
            design: Some(Path::new("specs/auth/design.md")),
        };
        insta::assert_snapshot!(prompt(&l, &input, None));
    }
}
