//! The prompt an agent gets on standard input, after the spec workflow's agent template: the
//! feature, where its context is, the task with its details, the requirements it names (with
//! their text when requirements.md has them), the persona, and the rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use markdown::mdast::Node;

use crate::source::Source;
use crate::spec::TaskList;

/// What every prompt of a run is made from, read from the user's checkout once, when the run
/// starts: [`build`] then does no I/O.
#[derive(Debug)]
pub struct Loaded {
    feature: String,
    /// The feature's directory relative to the repository (the same inside every worktree).
    spec_dir: PathBuf,
    /// The spec's context files that exist, in the order the prompt lists them, with what
    /// they are.
    context_files: Vec<(&'static str, &'static str)>,
    /// Whether a requirements file (requirements.md, spec.md or bugfix.md) could be read.
    requirements_read: bool,
    /// That file, parsed (`None` when it could not be read or parsed).
    requirements: Option<Requirements>,
    /// The persona text of each agent name the task list uses (`None`: no persona file).
    personas: BTreeMap<String, Option<String>>,
}

impl Loaded {
    /// Reads what the prompts of `list`'s tasks need: which spec files exist in
    /// `spec_dir_abs` (the feature's directory in the user's checkout; `spec_dir` is the same
    /// relative to the repository), the requirements, and the persona file of every agent name
    /// the list uses, looked for under `roots` (the workspace root, then the repository's
    /// working tree).
    pub fn load(
        list: &TaskList,
        feature: &str,
        spec_dir: &Path,
        spec_dir_abs: &Path,
        roots: [&Path; 2],
    ) -> Loaded {
        let context_files = CONTEXT_FILES
            .into_iter()
            .filter(|(file, _)| spec_dir_abs.join(file.trim_end_matches('/')).exists())
            .collect();
        // spec-kit keeps its requirements (FR-001…) in spec.md, Kiro bugfix specs in
        // bugfix.md.
        let text = ["requirements.md", "spec.md", "bugfix.md"]
            .iter()
            .map(|f| spec_dir_abs.join(f))
            .find(|f| f.is_file())
            .and_then(|f| read_lossy(&f));
        let personas = (0..list.tasks.len())
            .filter_map(|i| list.agent_of(i))
            .map(|agent| {
                let text = crate::agents::persona_file(&roots, agent).and_then(|f| read_lossy(&f));
                (agent.to_owned(), text)
            })
            .collect();
        Loaded {
            feature: feature.to_owned(),
            spec_dir: spec_dir.to_path_buf(),
            context_files,
            requirements_read: text.is_some(),
            requirements: text.as_deref().and_then(Requirements::parse),
            personas,
        }
    }
}

/// The most lines of requirements.md quoted for one id.
const MAX_LINES: usize = 40;
/// The most lines of requirements.md quoted for one task.
const MAX_TOTAL_LINES: usize = 300;
/// The longest range (`1.1-1.5`) expanded into its ids.
const MAX_RANGE: u32 = 50;

/// The ids in a task's `_Requirements:_` value, which is free text in practice (`1.1, 2`,
/// `REQ-3.1.1`, `Requirement 1`, `1.1-1.5`, `All`): every word with a digit in it, ranges of
/// numeric ids expanded, each id once.
fn requirement_ids(reqs: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in reqs.split(|c: char| c.is_whitespace() || ",;()[]{}/、，；（）".contains(c)) {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        if !word.contains(|c: char| c.is_ascii_digit()) {
            continue;
        }
        for id in expand_range(word) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&id)) {
                out.push(id);
            }
        }
    }
    out
}

/// `1.1-1.3` → `1.1`, `1.2`, `1.3`; `2-3` → `2`, `3`; anything else as it is.
fn expand_range(word: &str) -> Vec<String> {
    let numeric = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let Some((from, to)) = word.split_once(['-', '–', '~']) else {
        return vec![word.to_owned()];
    };
    if !numeric(from) || !numeric(to) {
        return vec![word.to_owned()];
    }
    let split = |s: &'_ str| match s.rsplit_once('.') {
        Some((prefix, last)) => (Some(prefix.to_owned()), last.parse::<u32>().ok()),
        None => (None, s.parse::<u32>().ok()),
    };
    match (split(from), split(to)) {
        ((p1, Some(a)), (p2, Some(b))) if p1 == p2 && a <= b && b - a < MAX_RANGE => (a..=b)
            .map(|n| match &p1 {
                Some(prefix) => format!("{prefix}.{n}"),
                None => n.to_string(),
            })
            .collect(),
        _ => vec![word.to_owned()],
    }
}

/// The id a heading, list item or line starts with (`1.`, `1.1`, `Requirement 2:`, `REQ-1:`,
/// `**FR-001**:`), and whether it was named a requirement (`Requirement 2`). Only ids with a
/// digit count.
fn leading_id(text: &str) -> Option<(String, bool)> {
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || "#*_`[(>".contains(c));
    let mut explicit = false;
    let mut rest = text;
    for prefix in ["requirement", "需求", "要件"] {
        if let Some(head) = text.get(..prefix.len())
            && head.eq_ignore_ascii_case(prefix)
        {
            let after = text[prefix.len()..].trim_start();
            if after.starts_with(|c: char| c.is_ascii_digit()) {
                rest = after;
                explicit = true;
                break;
            }
        }
    }
    if let Some(head) = text.get(..10)
        && head.eq_ignore_ascii_case("user story")
    {
        let after = text[10..].trim_start();
        let n: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !n.is_empty() {
            return Some((format!("US{n}"), true));
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-._".contains(c)))
        .unwrap_or(rest.len());
    let id = rest[..end].trim_end_matches(['.', '-', '_']);
    id.contains(|c: char| c.is_ascii_digit())
        .then(|| (id.to_owned(), explicit))
}

/// Whether `text` introduces a requirement's acceptance criteria.
fn is_criteria_marker(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "acceptance criteria",
        "验收标准",
        "受入基準",
        "受け入れ基準",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

fn span(node: &Node) -> (usize, usize) {
    node.position()
        .map_or((0, 0), |p| (p.start.offset, p.end.offset))
}

fn preorder<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    out.push(node);
    for child in node.children().into_iter().flatten() {
        preorder(child, out);
    }
}

/// A heading at the top level of requirements.md and the section it starts.
#[derive(Debug)]
struct Section {
    title: String,
    id: Option<(String, bool)>,
    /// Where the heading starts and ends, and where its section (everything up to the next
    /// heading of the same or a higher rank) ends.
    start: usize,
    end: usize,
    section_end: usize,
}

/// requirements.md, parsed.
#[derive(Debug)]
struct Requirements {
    text: String,
    root: Node,
    sections: Vec<Section>,
}

/// The text of one requirement id.
#[derive(Debug, PartialEq)]
struct Resolved {
    /// What the text is: `Requirement 1: User Registration, acceptance criterion 2`.
    label: String,
    /// The markdown from requirements.md.
    body: String,
}

impl Requirements {
    /// Parses requirements.md's (lossy) text; line endings become `\n`.
    fn parse(text: &str) -> Option<Self> {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let root = crate::spec::blocks::to_mdast(&text, crate::spec::markdown_options).ok()?;
        let mut sections: Vec<Section> = Vec::new();
        let mut depths: Vec<u8> = Vec::new();
        for node in root.children().into_iter().flatten() {
            let Node::Heading(h) = node else { continue };
            let (start, end) = span(node);
            for (s, &d) in sections.iter_mut().zip(&depths) {
                if s.section_end == usize::MAX && d >= h.depth {
                    s.section_end = start;
                }
            }
            let title = node.to_string().trim().to_owned();
            sections.push(Section {
                id: leading_id(&title),
                title,
                start,
                end,
                section_end: usize::MAX,
            });
            depths.push(h.depth);
        }
        for s in &mut sections {
            s.section_end = s.section_end.min(text.len());
        }
        Some(Requirements {
            text,
            root,
            sections,
        })
    }

    /// The heading whose id is `id`, one named a requirement first.
    fn section(&self, id: &str) -> Option<&Section> {
        let matching = |explicit: bool| {
            self.sections.iter().find(|s| {
                s.id.as_ref()
                    .is_some_and(|(t, e)| *e == explicit && t.eq_ignore_ascii_case(id))
            })
        };
        matching(true).or_else(|| matching(false))
    }

    /// The title of the heading that `offset` is under: the innermost one with an id (so an
    /// item under `#### Acceptance Criteria` is labelled with its requirement), else the
    /// innermost one.
    fn context(&self, offset: usize) -> String {
        let mut around = self
            .sections
            .iter()
            .rev()
            .filter(|s| s.start <= offset && offset < s.section_end);
        let innermost = around.clone().next();
        around
            .find(|s| s.id.is_some())
            .or(innermost)
            .map(|s| s.title.clone())
            .unwrap_or_default()
    }

    /// The text of an id: the section of a heading it starts, a list item, table row or line it
    /// starts, or criterion `M` of requirement `N` for `N.M`.
    fn resolve(&self, id: &str) -> Option<Resolved> {
        if let Some(s) = self.section(id) {
            return Some(Resolved {
                label: s.title.clone(),
                body: trim_blank_lines(&self.text[s.end..s.section_end]),
            });
        }
        if let Some(found) = self.item(id) {
            return Some(found);
        }
        let (parent, m) = id.rsplit_once('.')?;
        let m: usize = m.parse().ok()?;
        let s = self.section(parent)?;
        let body = self.criterion(s, m)?;
        Some(Resolved {
            label: format!("{}, acceptance criterion {m}", s.title),
            body,
        })
    }

    /// A list item, table row or line of a paragraph that starts with `id`.
    fn item(&self, id: &str) -> Option<Resolved> {
        let mut nodes = Vec::new();
        preorder(&self.root, &mut nodes);
        let is = |text: &str| leading_id(text).is_some_and(|(t, _)| t.eq_ignore_ascii_case(id));
        for node in nodes {
            let (start, end) = span(node);
            let body = match node {
                Node::ListItem(item) => {
                    let Some(first @ Node::Paragraph(_)) = item.children.first() else {
                        continue;
                    };
                    if !is(&first.to_string()) {
                        continue;
                    }
                    let from = span(first).0;
                    let indent = first.position().map_or(0, |p| p.start.column - 1);
                    dedent(&self.text[from..end], indent)
                }
                Node::TableRow(row) => {
                    let cells: Vec<String> = row
                        .children
                        .iter()
                        .map(|c| c.to_string().trim().to_owned())
                        .collect();
                    if !cells.first().is_some_and(|c| is(c)) {
                        continue;
                    }
                    cells.join(" | ")
                }
                Node::Paragraph(_) => {
                    let Some(line) = self.text[start..end].lines().find(|l| is(l)) else {
                        continue;
                    };
                    line.trim().to_owned()
                }
                _ => continue,
            };
            return Some(Resolved {
                label: self.context(start),
                body,
            });
        }
        None
    }

    /// Criterion `m` of a requirement: item `m` of the list after its "Acceptance Criteria"
    /// (or of its first ordered list, or of its first list).
    fn criterion(&self, s: &Section, m: usize) -> Option<String> {
        let mut nodes = Vec::new();
        for node in self.root.children().into_iter().flatten() {
            let (start, _) = span(node);
            if start >= s.end && start < s.section_end {
                preorder(node, &mut nodes);
            }
        }
        let list_after_marker = nodes
            .iter()
            .position(|n| {
                matches!(n, Node::Heading(_) | Node::Paragraph(_))
                    && is_criteria_marker(&n.to_string())
            })
            .and_then(|k| nodes[k..].iter().find(|n| matches!(n, Node::List(_))));
        let list = list_after_marker
            .or_else(|| {
                nodes
                    .iter()
                    .find(|n| matches!(n, Node::List(l) if l.ordered))
            })
            .or_else(|| nodes.iter().find(|n| matches!(n, Node::List(_))));
        let Some(Node::List(list)) = list else {
            return None;
        };
        let first = list.start.unwrap_or(1) as usize;
        let item = list.children.get(m.checked_sub(first)?)?;
        let (_, end) = span(item);
        let first_child = item.children()?.first()?;
        let from = span(first_child).0;
        let indent = first_child.position().map_or(0, |p| p.start.column - 1);
        Some(dedent(&self.text[from..end], indent))
    }
}

/// `text` without its leading and trailing blank lines.
fn trim_blank_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) else {
        return String::new();
    };
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(first);
    lines[first..=last].join("\n")
}

/// A list item's text from its first line on: later lines lose up to `indent` leading spaces.
fn dedent(text: &str, indent: usize) -> String {
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if k == 0 {
            out.push(line);
        } else {
            let spaces = line.len() - line.trim_start_matches(' ').len();
            out.push(&line[spaces.min(indent)..]);
        }
    }
    trim_blank_lines(&out.join("\n"))
}

/// The prompt's text for the requirement ids a task names: each one found in the requirements
/// (`doc`; `read` tells whether the file could be read at all) quoted under its label, then
/// the ids not found.
fn requirements_text(ids: &[String], doc: Option<&Requirements>, read: bool) -> String {
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut left_out = Vec::new();
    let mut total = 0;
    for id in ids {
        let Some(found) = doc.and_then(|d| d.resolve(id)) else {
            missing.push(id.as_str());
            continue;
        };
        if total >= MAX_TOTAL_LINES {
            left_out.push(id.as_str());
            continue;
        }
        let label = if found.label.is_empty() || found.label == *id {
            String::new()
        } else {
            format!(" — {}", found.label)
        };
        let _ = writeln!(out, "\n### {id}{label}\n");
        let lines: Vec<&str> = found.body.lines().collect();
        let keep = lines.len().min(MAX_LINES);
        total += keep.max(1);
        for line in &lines[..keep] {
            if line.is_empty() {
                out.push_str(">\n");
            } else {
                let _ = writeln!(out, "> {line}");
            }
        }
        if keep < lines.len() {
            let _ = writeln!(
                out,
                ">\n> … (truncated: {} more lines in requirements.md)",
                lines.len() - keep
            );
        }
        if lines.is_empty() {
            out.push_str("(no text under the heading)\n");
        }
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            out,
            "\nNot quoted, to keep this prompt short (read them in requirements.md): {}.",
            left_out.join(", ")
        );
    }
    if !missing.is_empty() {
        let why = if !read {
            " (the file is missing or unreadable)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\nNot found in requirements.md{why}: {}.",
            missing.join(", ")
        );
    }
    out
}

/// A file's text, read lossily (a user's file need not be valid UTF-8), without a byte order
/// mark; `None` when it cannot be read.
fn read_lossy(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(Source::new(path, bytes).text)
}

/// A spec's context files, in the order the prompt lists them, with what they are.
const CONTEXT_FILES: [(&str, &str); 9] = [
    ("requirements.md", "Requirements"),
    ("bugfix.md", "Bug report"),
    ("spec.md", "Feature specification"),
    ("design.md", "Design"),
    ("plan.md", "Implementation plan"),
    ("data-model.md", "Data model"),
    ("research.md", "Research"),
    ("quickstart.md", "Quickstart"),
    ("contracts/", "Contracts"),
];

/// The prompt of task `index` of `list`, run on `branch`, from what the run `loaded`. Pure: no
/// I/O. (A review round's and a rework's sections are appended by the caller:
/// [`super::review::review_prompt`], [`super::review::rework_prompt`].)
pub fn build(loaded: &Loaded, list: &TaskList, index: usize, branch: &str) -> String {
    let task = &list.tasks[index];
    let spec = loaded.spec_dir.display();
    let mut p = String::new();
    let _ = writeln!(p, "# Task {}: {}\n", task.id, task.title);
    let _ = writeln!(
        p,
        "You are implementing one task of the feature `{}`, in a git worktree of its own.\n",
        loaded.feature
    );
    let _ = writeln!(p, "## Context\n");
    let _ = writeln!(p, "- Specification: `{spec}/`");
    // The spec's files as each tool names them (spec-kit: spec.md, plan.md, data-model.md,
    // contracts/; Kiro bugfix specs: bugfix.md), those that exist.
    for (file, what) in &loaded.context_files {
        let _ = writeln!(p, "- {what}: `{spec}/{file}`");
    }
    if loaded.context_files.is_empty() {
        let _ = writeln!(p, "- Requirements: `{spec}/requirements.md`");
        let _ = writeln!(p, "- Design: `{spec}/design.md`");
    }
    let _ = writeln!(
        p,
        "- Task list: `{spec}/tasks.md` (read it for the surrounding tasks)\n"
    );
    let _ = writeln!(p, "## Task {}\n", task.id);
    let _ = writeln!(p, "{}", task.title);
    if let Some(parent) = task.parent {
        let parent = &list.tasks[parent];
        let _ = writeln!(p, "\nPart of task {}: {}", parent.id, parent.title);
    }
    if !task.details.is_empty() {
        p.push('\n');
        for detail in &task.details {
            if detail.starts_with("```") || detail.starts_with("~~~") {
                let _ = writeln!(p, "{detail}");
            } else {
                let _ = writeln!(p, "- {detail}");
            }
        }
    }
    for m in &task.metadata {
        let _ = writeln!(p, "- {}: {}", m.key, m.value);
    }
    if !task.files.is_empty() {
        let _ = writeln!(p, "\n## Files\n\nThis task creates or modifies:");
        for f in &task.files {
            let _ = writeln!(p, "- `{f}`");
        }
    }
    if let Some(instructions) = &task.prompt {
        // spec-workflow's `_Prompt:_`: `Role: … | Task: … | Restrictions: … | Success: …`.
        let _ = writeln!(p, "\n## Instructions\n");
        for part in instructions
            .split(" | ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let _ = writeln!(p, "- {part}");
        }
    }
    if let Some(reqs) = &task.requirements {
        let _ = writeln!(
            p,
            "\n## Requirements\n\nThis task implements requirements {reqs}."
        );
        let ids = requirement_ids(reqs);
        if !ids.is_empty() {
            p.push_str(&requirements_text(
                &ids,
                loaded.requirements.as_ref(),
                loaded.requirements_read,
            ));
        }
    }
    if let Some(refs) = &task.spec_references {
        let _ = writeln!(p, "\nSpec references: {refs}");
    }
    if let Some(agent) = list.agent_of(index) {
        let _ = writeln!(p, "\n## Persona\n\nWork as `{agent}`.");
        if let Some(Some(text)) = loaded.personas.get(agent) {
            let _ = writeln!(p, "\n{}", text.trim_end());
        }
    }
    let _ = writeln!(p, "\n## Rules\n");
    let _ = writeln!(
        p,
        "- Only work on this task; other tasks are handled separately."
    );
    let _ = writeln!(
        p,
        "- Do not edit tasks.md: spec-exec ticks the task when you succeed."
    );
    let _ = writeln!(
        p,
        "- Do not commit: spec-exec commits your changes on branch `{}`.",
        branch
    );
    let _ = writeln!(
        p,
        "- Exit with status 0 when the task is done, non-zero if you could not do it."
    );
    p
}

/// The section of a prompt that says how the work is checked before it is committed.
pub fn verification(commands: &[crate::config::VerifyCommand]) -> String {
    let mut p = String::from(
        "\n## Verification\n\nBefore your work is committed, spec-exec runs these commands in the workspace; when one fails, you get its output and another attempt:\n",
    );
    for c in commands {
        let _ = writeln!(p, "- `{}`", c.line);
    }
    p
}

/// What a merge that conflicts is for.
#[derive(Debug, Clone, Copy)]
pub enum Resolving<'a> {
    /// The base of task `id`: the merge of its dependencies' branches.
    Base { id: &'a str, title: &'a str },
    /// The feature's integration branch: every done task's branch merged.
    Integration { branch: &'a str },
}

/// The prompt that asks the agent to resolve the conflicts of a merge: `sides` are the
/// branches merged with what each holds, `merging` the branch whose merge conflicted in
/// `paths`. Pure.
pub fn resolve(
    feature: &str,
    what: Resolving<'_>,
    sides: &[(String, String)],
    merging: &str,
    paths: &[String],
) -> String {
    let mut p = String::new();
    match what {
        Resolving::Base { id, title } => {
            let _ = writeln!(p, "# Resolve the conflicts of the base of task {id}\n");
            let _ = writeln!(
                p,
                "Task {id} of the feature `{feature}` (“{title}”) builds on the work of the tasks it depends on. Their branches were merged into this worktree, and the merge conflicts: a merge is in progress, with conflict markers in the files.\n"
            );
        }
        Resolving::Integration { branch } => {
            let _ = writeln!(
                p,
                "# Resolve the conflicts of the integration of `{feature}`\n"
            );
            let _ = writeln!(
                p,
                "The branches of the done tasks of the feature `{feature}` are being merged into its integration branch (`{branch}`), and a merge conflicts: a merge is in progress in this worktree, with conflict markers in the files.\n"
            );
        }
    }
    let _ = writeln!(p, "## The sides\n");
    for (branch, label) in sides {
        let mark = if branch == merging {
            " (being merged: `theirs`)"
        } else {
            ""
        };
        let _ = writeln!(p, "- {label}: branch `{branch}`{mark}");
    }
    let _ = writeln!(
        p,
        "\n`ours` in the markers is what was merged before; `theirs` is `{merging}`.\n"
    );
    let _ = writeln!(p, "## Conflicted files\n");
    for path in paths {
        let _ = writeln!(p, "- `{path}`");
    }
    let _ = writeln!(p, "\n## What to do\n");
    let _ = writeln!(
        p,
        "- Resolve the conflicts so both tasks' work is kept: combine the two sides, do not drop either."
    );
    let _ = writeln!(
        p,
        "- Remove every conflict marker (`<<<<<<<`, `=======`, `>>>>>>>`)."
    );
    match what {
        Resolving::Base { id, .. } => {
            let _ = writeln!(
                p,
                "- Do not start task {id} yet: it runs after this, on the resolved base."
            );
        }
        Resolving::Integration { .. } => {
            let _ = writeln!(p, "- Change nothing else: no new work, only the merge.");
        }
    }
    let _ = writeln!(
        p,
        "- Do not commit and do not edit tasks.md: spec-exec checks the result (no markers left, the verify commands pass) and commits the merge."
    );
    let _ = writeln!(
        p,
        "- Exit with status 0 when the conflicts are resolved, non-zero if you could not resolve them."
    );
    p
}

/// The prompt that asks the agent to make the feature's integration pass its checks: every
/// task's branch merged cleanly, but the result fails a verify command (the failure follows,
/// added by the attempt). Pure.
pub fn integration_fix(feature: &str, branch: &str, sides: &[(String, String)]) -> String {
    let mut p = String::new();
    let _ = writeln!(p, "# Make the integration of `{feature}` pass its checks\n");
    let _ = writeln!(
        p,
        "The branches of the done tasks of the feature `{feature}` were merged into its integration branch (`{branch}`) without conflicts, and this worktree holds the result. Each task passed its checks on its own branch, but together they do not.\n"
    );
    let _ = writeln!(p, "## The tasks merged\n");
    for (branch, label) in sides {
        let _ = writeln!(p, "- {label}: branch `{branch}`");
    }
    let _ = writeln!(p, "\n## What to do\n");
    let _ = writeln!(
        p,
        "- Fix what the check below reports so that every task's work is kept and works together; add nothing else."
    );
    let _ = writeln!(
        p,
        "- Do not commit and do not edit tasks.md: spec-exec checks the result and commits it."
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: &str = "\
# Requirements Document

## Introduction

Users register and log in.

## Requirements

### Requirement 1: User Registration

**User Story:** As a visitor, I want to register, so that I can log in.

#### Acceptance Criteria

1. WHEN a visitor submits a valid email and password THEN the system SHALL create an account
2. IF the email is taken THEN the system SHALL reject the registration

### Requirement 2: Login

**User Story:** As a user, I want to log in, so that I can see my account.

#### Acceptance Criteria

1. WHEN a user submits valid credentials THEN the system SHALL start a session
2. IF the password is wrong THEN the system SHALL refuse the login
";

    const FLAT: &str = "\
# Requirements: User Authentication

## 1. Accounts
- 1.1 A user registers with an email address and a password.
- 1.2 Passwords are stored as salted hashes, never in clear text.

## 2. Sessions
- 2.1 A registered user logs in and receives a session token.
";

    fn ids(s: &str) -> Vec<String> {
        requirement_ids(s)
    }

    /// The prompt's text for `ids`, from requirements.md's `text` (`None`: not readable).
    fn quote(ids: &[String], text: Option<&str>) -> String {
        let doc = text.and_then(Requirements::parse);
        requirements_text(ids, doc.as_ref(), text.is_some())
    }

    fn resolve(text: &str, id: &str) -> Option<Resolved> {
        Requirements::parse(text).expect("parses").resolve(id)
    }

    #[test]
    fn reads_ids_from_free_text() {
        assert_eq!(ids("1.1, 2"), ["1.1", "2"]);
        assert_eq!(ids("9, 7.1, 9"), ["9", "7.1"]);
        assert_eq!(ids("All"), Vec::<String>::new());
        assert_eq!(ids("N/A (prerequisite fix)"), Vec::<String>::new());
        assert_eq!(ids("1.1-1.3, 6.1–6.2"), ["1.1", "1.2", "1.3", "6.1", "6.2"]);
        assert_eq!(ids("2-3"), ["2", "3"]);
        assert_eq!(ids("REQ-3.1.1, FR-3, US1"), ["REQ-3.1.1", "FR-3", "US1"]);
        assert_eq!(ids("Requirement 1, 阶段 1 ZIP 导入"), ["1"]);
        assert_eq!(ids("User context for 1.1, 1.2."), ["1.1", "1.2"]);
    }

    #[test]
    fn a_number_is_the_whole_requirement() {
        let found = resolve(STANDARD, "2").expect("found");
        assert_eq!(found.label, "Requirement 2: Login");
        assert_eq!(
            found.body,
            "**User Story:** As a user, I want to log in, so that I can see my account.\n\n\
             #### Acceptance Criteria\n\n\
             1. WHEN a user submits valid credentials THEN the system SHALL start a session\n\
             2. IF the password is wrong THEN the system SHALL refuse the login"
        );
    }

    #[test]
    fn n_m_is_a_criterion_of_requirement_n() {
        let found = resolve(STANDARD, "1.1").expect("found");
        assert_eq!(
            found,
            Resolved {
                label: "Requirement 1: User Registration, acceptance criterion 1".into(),
                body: "WHEN a visitor submits a valid email and password THEN the system SHALL \
                       create an account"
                    .into(),
            }
        );
        let found = resolve(STANDARD, "2.2").expect("found");
        assert_eq!(
            found.body,
            "IF the password is wrong THEN the system SHALL refuse the login"
        );
        assert_eq!(resolve(STANDARD, "1.3"), None);
        assert_eq!(resolve(STANDARD, "3"), None);
        assert_eq!(resolve(STANDARD, "3.1"), None);
    }

    #[test]
    fn the_prompt_text_for_the_standard_layout() {
        let out = quote(&ids("1.1, 2, 9.9"), Some(STANDARD));
        assert!(
            out.contains(
                "### 1.1 — Requirement 1: User Registration, acceptance criterion 1\n\n\
                 > WHEN a visitor submits a valid email and password THEN the system SHALL \
                 create an account\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "### 2 — Requirement 2: Login\n\n\
                 > **User Story:** As a user, I want to log in, so that I can see my account.\n\
                 >\n\
                 > #### Acceptance Criteria\n"
            ),
            "{out}"
        );
        assert!(!out.contains("IF the email is taken"), "{out}");
        assert!(
            out.ends_with("\nNot found in requirements.md: 9.9.\n"),
            "{out}"
        );
    }

    #[test]
    fn the_flat_layout() {
        let found = resolve(FLAT, "1.1").expect("found");
        assert_eq!(
            found,
            Resolved {
                label: "1. Accounts".into(),
                body: "1.1 A user registers with an email address and a password.".into(),
            }
        );
        let out = quote(&ids("1.1, 2"), Some(FLAT));
        assert!(!out.contains("- -"), "{out}");
        assert_eq!(
            out,
            "\n### 1.1 — 1. Accounts\n\n\
             > 1.1 A user registers with an email address and a password.\n\
             \n### 2 — 2. Sessions\n\n\
             > - 2.1 A registered user logs in and receives a session token.\n"
        );
    }

    #[test]
    fn other_ids_match_headings_items_and_rows_exactly() {
        let text = "\
# Spec

## REQ-1: Export

Exports a CSV.

## Functional

- **FR-001**: System MUST log in users.
- **FR-0010**: Not this one.

| id | text |
| --- | --- |
| NFR-2 | Fast |

### User Story 1 - Sign up (Priority: P1)

A visitor signs up.
";
        assert_eq!(
            resolve(text, "REQ-1").expect("found").body,
            "Exports a CSV."
        );
        assert_eq!(
            resolve(text, "req-1").expect("found").label,
            "REQ-1: Export"
        );
        assert_eq!(
            resolve(text, "FR-001").expect("found"),
            Resolved {
                label: "Functional".into(),
                body: "**FR-001**: System MUST log in users.".into()
            }
        );
        assert_eq!(resolve(text, "FR-00"), None);
        assert_eq!(resolve(text, "NFR-2").expect("found").body, "NFR-2 | Fast");
        assert_eq!(
            resolve(text, "US1").expect("found").body,
            "A visitor signs up."
        );
        assert_eq!(resolve(text, "REQ"), None);
    }

    #[test]
    fn not_found_ids_are_listed() {
        let out = quote(&ids("4.2, REQ-9"), Some(FLAT));
        assert_eq!(out, "\nNot found in requirements.md: 4.2, REQ-9.\n");
        let out = quote(&ids("1.1"), None);
        assert_eq!(
            out,
            "\nNot found in requirements.md (the file is missing or unreadable): 1.1.\n"
        );
    }

    #[test]
    fn crlf_and_lossy_text() {
        let crlf = STANDARD.replace('\n', "\r\n");
        let out = quote(&ids("1.2, 2"), Some(&crlf));
        assert!(!out.contains('\r'), "{out:?}");
        assert!(
            out.contains(
                "### 1.2 — Requirement 1: User Registration, acceptance criterion 2\n\n\
                 > IF the email is taken THEN the system SHALL reject the registration\n"
            ),
            "{out}"
        );
        let mut bytes = FLAT.replace('\n', "\r\n").into_bytes();
        bytes.splice(0..0, *b"\xEF\xBB\xBF");
        bytes.extend_from_slice(b"- 2.2 Sessions expire \xFF\xFE after 30 minutes.\r\n");
        let text = Source::new("requirements.md", bytes).text;
        let found = resolve(&text, "2.2").expect("found");
        assert_eq!(
            found.body,
            "2.2 Sessions expire \u{FFFD}\u{FFFD} after 30 minutes."
        );
    }

    #[test]
    fn long_requirements_are_cut() {
        let mut text = String::from("### Requirement 1: Big\n\n#### Acceptance Criteria\n\n");
        for n in 1..=60 {
            let _ = writeln!(text, "{n}. WHEN {n} THEN the system SHALL do {n}");
        }
        let out = quote(&ids("1, 1.55"), Some(&text));
        assert!(out.contains("> 38. WHEN 38 THEN"), "{out}");
        assert!(!out.contains("> 39. WHEN 39 THEN"), "{out}");
        assert!(
            out.contains("> … (truncated: 22 more lines in requirements.md)"),
            "{out}"
        );
        assert!(
            out.contains(
                "### 1.55 — Requirement 1: Big, acceptance criterion 55\n\n> WHEN 55 THEN"
            ),
            "{out}"
        );
    }

    #[test]
    fn items_with_ids_are_labelled_with_their_requirement() {
        let text = "\
### Requirement 3: Audit

#### Acceptance Criteria

- 3.1 WHEN a user logs in THEN the system SHALL record it
";
        assert_eq!(
            resolve(text, "3.1").expect("found"),
            Resolved {
                label: "Requirement 3: Audit".into(),
                body: "3.1 WHEN a user logs in THEN the system SHALL record it".into(),
            }
        );
    }

    #[test]
    fn paragraph_lines_and_nested_items() {
        let text = "\
## Accounts

**1.1** Register with email.
**1.2** Hash passwords.

- 2.1 Log in
  - with email
  - with a passkey
";
        assert_eq!(
            resolve(text, "1.2").expect("found").body,
            "**1.2** Hash passwords."
        );
        assert_eq!(
            resolve(text, "2.1").expect("found").body,
            "2.1 Log in\n- with email\n- with a passkey"
        );
    }

    /// A feature's directory with requirements.md and design.md, a persona file, and a task
    /// list with a plain task, a task naming requirements and an agent, a review and its
    /// rework; loaded as a run loads it.
    fn loaded_example() -> (tempfile::TempDir, TaskList, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let spec = root.join("documentation/features/demo");
        std::fs::create_dir_all(&spec).unwrap();
        std::fs::create_dir_all(root.join(".claude/agents")).unwrap();
        let tasks = "\
# Implementation Plan

- [ ] 1. Set up the crate
  - Create `crates/auth` with an empty library
- [ ] 2. Register users
  - Hash the password before storing it
  - _Requirements: 1.1, 2, 9.9_
  - _Agent: rust-reviewer_
- [ ] CR-A. Review the registration
  - _Dependencies: Task 2_
- [ ] RW-A. Rework the registration
  - _Dependencies: CR-A (failed)_
";
        std::fs::write(spec.join("tasks.md"), tasks).unwrap();
        std::fs::write(spec.join("requirements.md"), STANDARD).unwrap();
        std::fs::write(spec.join("design.md"), "# Design\n").unwrap();
        std::fs::write(
            root.join(".claude/agents/rust-reviewer.md"),
            "You review Rust code with care.\n",
        )
        .unwrap();
        let list = crate::spec::parse_bytes("tasks.md", tasks.as_bytes().to_vec());
        let loaded = Loaded::load(
            &list,
            "demo",
            Path::new("documentation/features/demo"),
            &spec,
            [root, root],
        );
        (dir, list, loaded)
    }

    fn prompt_of(list: &TaskList, loaded: &Loaded, id: &str, branch: &str) -> String {
        build(loaded, list, list.find(id).expect("task"), branch)
    }

    #[test]
    fn prompt_of_a_plain_task() {
        let (_dir, list, loaded) = loaded_example();
        insta::assert_snapshot!(prompt_of(&list, &loaded, "1", "spec/demo/1"));
    }

    #[test]
    fn prompt_of_a_task_with_requirements_and_a_persona() {
        let (_dir, list, loaded) = loaded_example();
        insta::assert_snapshot!(prompt_of(&list, &loaded, "2", "spec/demo/2"));
    }

    /// As the scheduler makes it: the task's prompt, then the review's section.
    #[test]
    fn prompt_of_a_review_round() {
        let (_dir, list, loaded) = loaded_example();
        let index = list.find("CR-A").expect("task");
        let mut p = prompt_of(&list, &loaded, "CR-A", "spec/demo/CR-A.round-2");
        p.push_str(&super::super::review::review_prompt(
            &super::super::review::verdict_file(&list, index),
            2,
            Some("RW-A"),
        ));
        insta::assert_snapshot!(p);
    }

    /// As the scheduler makes it: the rework's prompt, then the findings it answers.
    #[test]
    fn prompt_of_a_rework() {
        let (_dir, list, loaded) = loaded_example();
        let mut p = prompt_of(&list, &loaded, "RW-A", "spec/demo/RW-A");
        p.push_str(&super::super::review::rework_prompt(
            "CR-A",
            1,
            "`code_review/CR-A.md`",
            "Passwords are stored with MD5.\n\nStatus: REQUIRES CHANGES\n",
        ));
        insta::assert_snapshot!(p);
    }

    /// Everything is read by `Loaded::load`: with the files gone, the prompts are the same.
    #[test]
    fn building_reads_no_file() {
        let (dir, list, loaded) = loaded_example();
        let before: Vec<String> = ["1", "2", "CR-A", "RW-A"]
            .iter()
            .map(|id| prompt_of(&list, &loaded, id, "b"))
            .collect();
        drop(dir);
        let after: Vec<String> = ["1", "2", "CR-A", "RW-A"]
            .iter()
            .map(|id| prompt_of(&list, &loaded, id, "b"))
            .collect();
        assert_eq!(before, after);
        assert!(before[1].contains("You review Rust code with care."));
        assert!(before[1].contains("> WHEN a visitor submits a valid email"));
    }
}
