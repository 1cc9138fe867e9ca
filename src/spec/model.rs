//! The parsed task list: tasks in document order, with their tracks, groups and resolved
//! dependencies. Indices into [`TaskList::tasks`] are the task handles everywhere else.

use serde::Serialize;

use super::deps::{self, Requirement};
use crate::error::{Diagnostic, Location};
use crate::source::Source;

/// A task's state as its checkbox says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// `[ ]`
    Pending,
    /// `[x]` or `[X]`
    Done,
    /// `[-]`: in progress elsewhere, or stale from a crash; planned as pending.
    InProgress,
    /// `[~]`: not done and not runnable.
    Blocked,
}

impl TaskState {
    pub fn from_box(c: char) -> Option<Self> {
        match c {
            ' ' | '\t' | '\u{a0}' => Some(TaskState::Pending),
            'x' | 'X' => Some(TaskState::Done),
            '-' | '/' => Some(TaskState::InProgress),
            '~' => Some(TaskState::Blocked),
            _ => None,
        }
    }

    /// Whether the task still has to run.
    pub fn is_open(self) -> bool {
        self != TaskState::Done
    }
}

/// The spec tool a task list comes from, detected from its content. The grammar is one; the
/// dialect decides the defaults (how order and parallelism are read, what metadata means).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// specflow: tracks, `_Dependencies:_`, review tasks, execution-strategy groups.
    Specflow,
    /// AWS Kiro: numbered tasks and sub-tasks in document order, optional `[ ]*` tasks.
    Kiro,
    /// GitHub spec-kit: `T001 [P] [US1]` tasks in `## Phase N:` sections.
    SpecKit,
    /// cc-sdd (Kiro-compatible): document order, `(P)` for tasks that run alongside their
    /// `(P)` neighbours, `_Depends:_` and `_Boundary:_` lines.
    CcSdd,
    /// spec-workflow: numbered tasks with `File:`, `_Leverage:_`, `_Prompt:_`.
    SpecWorkflow,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Specflow => "specflow",
            Dialect::Kiro => "Kiro",
            Dialect::SpecKit => "spec-kit",
            Dialect::CcSdd => "cc-sdd",
            Dialect::SpecWorkflow => "spec-workflow",
        }
    }
}

/// Where the checkbox of a task is, for surgical edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkbox {
    /// Offset of the state character in the lossy text.
    pub text_offset: usize,
    /// Offset of the state character in the original bytes.
    pub byte_offset: usize,
    /// The state character as written.
    pub ch: char,
}

/// Where a dependency came from; lower sources only fill gaps left by higher ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DepSource {
    /// `_Dependencies: …_` on the task itself.
    Task,
    /// Inherited from the containing task.
    Parent,
    /// `(Dependencies: …)` on the task's track or section heading.
    Heading,
    /// The `## Execution Strategy` parallel groups.
    Group,
    /// spec-kit's order: phase after phase, a task after the ones before it unless both are `[P]`.
    Phase,
    /// cc-sdd's order: a task after the sibling before it, unless both are `(P)`.
    Order,
    /// No dependency information in the file: document order.
    DocumentOrder,
    /// `--overlap serialize`: the task declares a file an earlier task it could have run
    /// beside declares too, so it waits for that task (added by the plan, not written in the
    /// file).
    Overlap,
}

/// A dependency phrase as written, before it is resolved.
#[derive(Debug, Clone)]
pub struct DepPhrase {
    pub text: String,
    /// Offset of the phrase in the source text.
    pub offset: usize,
    pub parsed: deps::Parsed,
}

impl DepPhrase {
    /// The phrase `text`, written at `offset`, with its parse.
    pub fn new(text: impl Into<String>, offset: usize) -> DepPhrase {
        let text = text.into();
        DepPhrase {
            parsed: deps::parse(&text),
            text,
            offset,
        }
    }
}

/// One resolved edge: this task waits for `on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The leaf task waited for.
    pub on: usize,
    pub requirement: Requirement,
    pub source: DepSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaEntry {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub title: String,
    /// The state of the task's own checkbox (see [`TaskList::state`] for containers).
    pub state: TaskState,
    /// Offset of the task's line in the source text.
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    /// `None` for an implied container that has no line of its own.
    pub checkbox: Option<Checkbox>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// The task this one is nested in, in the markdown.
    pub nested_in: Option<usize>,
    pub section: Option<usize>,
    pub optional: bool,
    pub requirements: Option<String>,
    pub agent: Option<String>,
    pub trigger: Option<String>,
    pub spec_references: Option<String>,
    pub estimate: Option<String>,
    /// Other `_Key: value_` lines, verbatim.
    pub metadata: Vec<MetaEntry>,
    /// The nested bullets and paragraphs, as markdown.
    pub details: Vec<String>,
    pub code_blocks: Vec<CodeBlock>,
    /// `_Dependencies: …_` phrases on the task.
    pub dep_phrases: Vec<DepPhrase>,
    /// Resolved, deduplicated edges (leaf tasks only; empty for containers).
    pub deps: Vec<Edge>,
    /// Files the task says it creates or modifies (`Files to create/modify:`, `- File:`, paths
    /// in a spec-kit description).
    pub files: Vec<String>,
    /// spec-workflow's `_Prompt:_`: the agent's instructions for this task.
    pub prompt: Option<String>,
    /// spec-kit's `[P]`, cc-sdd's `(P)`: may run alongside the parallel tasks next to it.
    pub parallel: bool,
    /// cc-sdd's `_Boundary:_`: the files or components the task keeps to.
    pub boundary: Vec<String>,
    /// spec-kit's story label (`US1`): the task's track.
    pub story: Option<String>,
    /// A task written as a heading (`#### Task 1.1: Title`) has no box of its own: the
    /// unnumbered checkboxes under it are its steps, and it is done when they all are.
    pub steps: Vec<Checkbox>,
}

impl Task {
    /// A task with nothing but its id, title, state, place and section: no box, no details,
    /// no dependencies. The parser and the resolver fill in the rest.
    pub fn new(
        id: String,
        title: String,
        state: TaskState,
        (offset, line, column): (usize, usize, usize),
        section: Option<usize>,
    ) -> Task {
        Task {
            id,
            title,
            state,
            offset,
            line,
            column,
            checkbox: None,
            parent: None,
            children: Vec::new(),
            nested_in: None,
            section,
            optional: false,
            requirements: None,
            agent: None,
            trigger: None,
            spec_references: None,
            estimate: None,
            metadata: Vec::new(),
            details: Vec::new(),
            code_blocks: Vec::new(),
            dep_phrases: Vec::new(),
            deps: Vec::new(),
            files: Vec::new(),
            prompt: None,
            parallel: false,
            boundary: Vec::new(),
            story: None,
            steps: Vec::new(),
        }
    }

    pub fn is_container(&self) -> bool {
        !self.children.is_empty()
    }

    /// What the task says it changes, for the overlap warnings: its declared files, cc-sdd's
    /// `_Boundary:_`, and the file paths named in its title and details.
    pub fn touches(&self) -> Vec<String> {
        let named = std::iter::once(&self.title)
            .chain(&self.details)
            .flat_map(|text| super::dialect::named_paths(text));
        let mut out: Vec<String> = Vec::new();
        for f in self
            .files
            .iter()
            .chain(&self.boundary)
            .cloned()
            .chain(named)
        {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// A container implied by its sub-tasks' numbering, with no line of its own.
    pub fn is_implied(&self) -> bool {
        self.checkbox.is_none() && self.steps.is_empty()
    }

    /// Tasks this one runs only after, on the condition that they asked for changes.
    pub fn condition(&self) -> impl Iterator<Item = usize> + '_ {
        self.deps
            .iter()
            .filter(|e| e.requirement == Requirement::Failed)
            .map(|e| e.on)
    }
}

/// A track or other section heading that tasks sit under.
#[derive(Debug, Clone)]
pub struct Section {
    /// The track letter (`A`) for `### Track A: …` headings.
    pub track: Option<String>,
    pub title: String,
    pub level: u8,
    pub line: usize,
    /// `(Dependencies: …)` on the heading.
    pub deps: Option<DepPhrase>,
    /// `> Primary Agent: name`.
    pub agent: Option<String>,
}

/// A declared parallel group of the `## Execution Strategy` section.
#[derive(Debug, Clone)]
pub struct Group {
    pub number: u32,
    pub line: usize,
    /// Member references as written (resolved into `members`).
    pub member_phrases: Vec<DepPhrase>,
    pub members: Vec<usize>,
    /// What the group waits for: `None` = the previous group, explicit phrase otherwise.
    pub after: Option<DepPhrase>,
    /// `Immediate Start`: waits for nothing.
    pub immediate: bool,
}

/// One wave of Kiro's `## Task Dependency Graph` (`{"waves": [{"id": 0, "tasks": ["1.1"]}]}`):
/// its tasks run together, after the wave before it (or the waves it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// `id` or `wave`, when written.
    pub id: Option<i64>,
    /// Task ids as written (`"1.1"`, `3`).
    pub tasks: Vec<String>,
    /// `depends_on`: the ids of the waves it waits for, when written.
    pub depends_on: Option<Vec<i64>>,
}

#[derive(Debug, Clone)]
pub struct TaskList {
    pub source: Source,
    pub dialect: Dialect,
    pub tasks: Vec<Task>,
    pub sections: Vec<Section>,
    pub groups: Vec<Group>,
    /// Byte offsets of every checkbox state character in the file (tasks and checklists).
    pub checkbox_bytes: Vec<usize>,
    /// Text range of the front matter block, delimiters included.
    pub front_matter: Option<std::ops::Range<usize>>,
    /// Kiro's waves, and the text offset of the block they are written in.
    pub waves: Vec<Wave>,
    pub waves_offset: usize,
    /// Whether the file declares any dependency (else it runs in document order).
    pub has_dependency_info: bool,
    /// Whether the file ticks boxes with `[X]`.
    pub upper_x: bool,
    pub diagnostics: Vec<Diagnostic>,
}

impl TaskList {
    /// The effective state: a container's comes from its sub-tasks.
    pub fn state(&self, index: usize) -> TaskState {
        let task = &self.tasks[index];
        if !task.is_container() {
            return task.state;
        }
        let mut all_done = true;
        let mut any_blocked = false;
        for leaf in self.leaves_of(index) {
            match self.tasks[leaf].state {
                TaskState::Done => {}
                TaskState::Blocked => {
                    any_blocked = true;
                    all_done = false;
                }
                _ => all_done = false,
            }
        }
        if all_done {
            TaskState::Done
        } else if any_blocked {
            TaskState::Blocked
        } else {
            TaskState::Pending
        }
    }

    /// The leaf tasks under `index` (itself when it is a leaf), in document order.
    pub fn leaves_of(&self, index: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![index];
        while let Some(i) = stack.pop() {
            let task = &self.tasks[i];
            if task.children.is_empty() {
                out.push(i);
            } else {
                stack.extend(task.children.iter().rev());
            }
        }
        out
    }

    /// Executable tasks (leaves), in document order.
    pub fn leaves(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.tasks.len()).filter(|&i| !self.tasks[i].is_container())
    }

    /// Where task `index`'s id is written (its line's start when it cannot be found).
    pub fn id_offset(&self, index: usize) -> usize {
        let t = &self.tasks[index];
        self.source.text[t.offset..]
            .find(t.id.as_str())
            .map_or(t.offset, |k| t.offset + k)
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    pub fn track_of(&self, index: usize) -> Option<&str> {
        let task = &self.tasks[index];
        if let Some(story) = &task.story {
            return Some(story);
        }
        self.sections[task.section?].track.as_deref()
    }

    /// The agent named for a task: its own `_Agent:_`, else its track's `> Primary Agent:`.
    pub fn agent_of(&self, index: usize) -> Option<&str> {
        let task = &self.tasks[index];
        task.agent
            .as_deref()
            .or_else(|| task.section.and_then(|s| self.sections[s].agent.as_deref()))
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// A location in this file.
    pub fn location(&self, text_offset: usize, len: usize) -> Location {
        self.source.location(text_offset, len)
    }

    /// (done, total) over executable tasks.
    pub fn progress(&self) -> (usize, usize) {
        let mut done = 0;
        let mut total = 0;
        for i in self.leaves() {
            total += 1;
            if self.tasks[i].state == TaskState::Done {
                done += 1;
            }
        }
        (done, total)
    }
}
