//! tasks.md → [`TaskList`]: markdown-rs builds the tree (GFM, front matter, byte positions;
//! large files in parallel pieces, see [`super::blocks`]);
//! this walker reads tasks, sections and groups from it. Nothing inside a fenced code block or
//! an HTML comment is ever a task, because markdown-rs never makes list items there.
//!
//! The words themselves (ids, titles, metadata, headings) are read by [`super::dialect`].

use markdown::mdast::{ListItem, Node};
use markdown::{Constructs, ParseOptions};

use super::deps;
use super::dialect::{self, Heading, Key};
use super::model::{
    Checkbox, CodeBlock, DepPhrase, Dialect, Group, MetaEntry, Section, Task, TaskList, TaskState,
};
use crate::error::Diagnostic;
use crate::source::Source;

/// The markdown every spec file is read with: GitHub's extensions and front matter. Requirements,
/// benchmarks and tests use it too, so that a file means the same everywhere.
pub fn options() -> ParseOptions {
    ParseOptions {
        constructs: Constructs {
            frontmatter: true,
            ..Constructs::gfm()
        },
        ..ParseOptions::gfm()
    }
}

/// For a file whose opening `---` is a thematic break, not front matter.
fn options_without_front_matter() -> ParseOptions {
    ParseOptions::gfm()
}

/// Whether the `---` (or `+++`) block at the start of `text` is front matter: it is closed,
/// and holds nothing YAML or TOML cannot start a line with but markdown does: a checkbox, a
/// bold `**…**` or a `* ` bullet. A list of tasks, or prose, between two rules is not metadata,
/// and approving must not write into it.
fn has_front_matter(text: &str) -> bool {
    let mut lines = text.lines();
    let Some(delimiter @ ("---" | "+++")) = lines.next().map(str::trim_end) else {
        return false;
    };
    for line in lines {
        let l = line.trim();
        if l == delimiter {
            return true;
        }
        let checkbox = l
            .strip_prefix(['-', '*', '+'])
            .map(str::trim_start)
            .and_then(|b| b.strip_prefix('['))
            .is_some_and(|b| {
                let mut c = b.chars();
                matches!(c.next(), Some(' ' | 'x' | 'X' | '~' | '-' | '/')) && c.next() == Some(']')
            });
        if checkbox || l.starts_with("**") || l.starts_with("* ") {
            return false;
        }
    }
    false
}

/// Parses a task list and resolves its dependencies. Problems are in `diagnostics`.
pub fn parse(source: Source) -> TaskList {
    let mut list = TaskList {
        source,
        dialect: Dialect::Specflow,
        tasks: Vec::new(),
        sections: Vec::new(),
        groups: Vec::new(),
        checkbox_bytes: Vec::new(),
        front_matter: None,
        waves: Vec::new(),
        waves_offset: 0,
        has_dependency_info: false,
        upper_x: false,
        diagnostics: Vec::new(),
    };
    let with = if has_front_matter(&list.source.text) {
        options
    } else {
        options_without_front_matter
    };
    if let Some(d) = super::limits::check(&list.source) {
        list.diagnostics.push(d);
        return list;
    }
    let root = match super::blocks::to_mdast(&list.source.text, with) {
        Ok(root) => root,
        Err(failure) => {
            list.diagnostics
                .push(could_not_parse(&list.source, &failure));
            return list;
        }
    };
    let mut walker = Walker {
        list: &mut list,
        current_section: None,
        exec_level: None,
        tasks_in_section: 0,
        heading_task: None,
        in_dependency_graph: false,
    };
    if let Some(children) = root.children() {
        walker.blocks(children);
    }
    list.has_dependency_info = !list.groups.is_empty()
        || list.sections.iter().any(|s| s.deps.is_some())
        || list.tasks.iter().any(|t| !t.dep_phrases.is_empty());
    list.dialect = detect_dialect(&list);
    // spec-kit's phases and `[P]` markers, and cc-sdd's `(P)` markers, are their dependency
    // information (a cc-sdd list without them runs in document order, and says so).
    list.has_dependency_info |= list.dialect == Dialect::SpecKit
        || (list.dialect == Dialect::CcSdd && list.tasks.iter().any(|t| t.parallel));
    // Kiro's waves are its dependency information (read after the dialect is told: a file
    // whose only dependency information is its waves is a Kiro file).
    list.has_dependency_info |= !list.waves.is_empty();
    list.upper_x = list
        .tasks
        .iter()
        .any(|t| t.checkbox.is_some_and(|c| c.ch == 'X'));
    super::resolve::resolve(&mut list);
    list
}

/// The error for text markdown-rs gives no tree for, at the line where it fails.
fn could_not_parse(source: &Source, failure: &super::blocks::Failure) -> Diagnostic {
    let at = failure.offset.min(source.text.len());
    let len = source.line_end(at) - at;
    if failure.panicked {
        Diagnostic::error("could not parse this file: the markdown parser fails at this line")
            .at(source.location(at, len))
            .label("the parser fails once this line is added")
            .note(format!(
                "markdown-rs, the markdown parser, stopped with an internal error: {}",
                failure.message
            ))
            .help(
                "change the markdown here (close an open code fence, or put a blank line before this line), \
                 and report the text to https://github.com/wooorm/markdown-rs/issues",
            )
    } else {
        Diagnostic::error(format!("could not parse this file: {}", failure.message))
            .at(source.location(at, len))
            .help("change the markdown here")
    }
}

struct Walker<'a> {
    list: &'a mut TaskList,
    current_section: Option<usize>,
    /// Heading level of the `## Execution Strategy` section we are in.
    exec_level: Option<u8>,
    tasks_in_section: usize,
    /// The `#### Task 1.1: Title` heading we are under: its id, title, offset, and the task
    /// made of it once a step shows up.
    heading_task: Option<(String, String, usize, Option<usize>)>,
    /// Under Kiro's `## Task Dependency Graph` heading.
    in_dependency_graph: bool,
}

fn start(node: &Node) -> usize {
    node.position().map_or(0, |p| p.start.offset)
}

fn end(node: &Node) -> usize {
    node.position().map_or(0, |p| p.end.offset)
}

/// The plain text of a node's first line (emphasis markers dropped).
fn first_line_plain(node: &Node) -> String {
    let text = node.to_string();
    crate::source::lines(&text).next().unwrap_or("").to_owned()
}

impl Walker<'_> {
    fn text(&self) -> &str {
        &self.list.source.text
    }

    fn blocks(&mut self, nodes: &[Node]) {
        for node in nodes {
            match node {
                Node::Yaml(_) | Node::Toml(_) => {
                    self.list.front_matter = Some(start(node)..end(node));
                }
                Node::Heading(h) => self.heading(node, h.depth),
                Node::Code(code)
                    if self.in_dependency_graph
                        && self.list.waves.is_empty()
                        && (code.lang.as_deref() == Some("json")
                            || code.value.trim_start().starts_with('{')) =>
                {
                    self.waves(node, code);
                }
                // A code block under a task written as a heading, after its steps.
                Node::Code(code) => {
                    if let Some(index) = self.heading_task.as_ref().and_then(|h| h.3) {
                        let raw = self.raw(node);
                        let task = &mut self.list.tasks[index];
                        task.code_blocks.push(code_block(code));
                        task.details.push(raw);
                    }
                }
                Node::List(list) => {
                    for child in &list.children {
                        if let Node::ListItem(item) = child {
                            self.top_item(child, item);
                        }
                    }
                }
                Node::Blockquote(_) => self.blockquote(node),
                _ => {}
            }
        }
    }

    fn heading(&mut self, node: &Node, level: u8) {
        let plain = node.to_string();
        self.in_dependency_graph = plain.to_ascii_lowercase().contains("dependency graph");
        if let Some(exec) = self.exec_level {
            if level > exec {
                return;
            }
            self.exec_level = None;
        }
        let offset = start(node);
        self.heading_task =
            dialect::heading_task(&plain).map(|(id, title)| (id, title, offset, None));
        let line = self.list.source.line_col(offset).0;
        // A setext heading's text runs over several lines: look for the phrase in all of them.
        let raw = self.text()[offset..end(node).max(offset)].to_owned();
        let phrase = |(text, _): (&str, usize)| {
            let at = raw.find(text).map_or(offset, |i| offset + i);
            DepPhrase::new(text, at)
        };
        let section = match dialect::heading(&plain) {
            Heading::ExecutionStrategy => {
                self.exec_level = Some(level);
                self.current_section = None;
                return;
            }
            Heading::Track { track, name, deps } => Section {
                track: Some(track.to_owned()),
                title: name.to_owned(),
                level,
                line,
                deps: deps.map(phrase),
                agent: None,
            },
            Heading::Section { deps } => {
                // Only a track (or a section with dependencies) keeps the tasks of its
                // sub-headings; `# Tasks` does not swallow spec-kit's `## Phase N:` sections.
                let inside_current = self.current_section.is_some_and(|s| {
                    let current = &self.list.sections[s];
                    level > current.level && (current.track.is_some() || current.deps.is_some())
                });
                if deps.is_none() && inside_current {
                    return; // a sub-heading of a track keeps its tasks in the track
                }
                Section {
                    track: None,
                    title: plain.trim().to_owned(),
                    level,
                    line,
                    deps: deps.map(phrase),
                    agent: None,
                }
            }
        };
        self.list.sections.push(section);
        self.current_section = Some(self.list.sections.len() - 1);
        self.tasks_in_section = 0;
    }

    /// Kiro's waves: `{"waves": [{"id": 0, "tasks": ["1.1", "3.1"]}, …]}` and the other shapes
    /// Kiro writes (`"wave"` for `"id"`, integer task ids, waves as bare arrays, `depends_on`).
    /// A block that is not such JSON is reported, and the list keeps its document order.
    fn waves(&mut self, node: &Node, code: &markdown::mdast::Code) {
        let at = start(node);
        let parsed = serde_json::from_str::<serde_json::Value>(&code.value)
            .map_err(|e| e.to_string())
            .and_then(|v| read_waves(&v));
        match parsed {
            Ok(waves) => {
                self.list.waves = waves;
                self.list.waves_offset = at;
            }
            Err(why) => {
                let loc = self.list.location(at, self.list.source.line_end(at) - at);
                self.list.diagnostics.push(
                    Diagnostic::warning(format!("the task dependency graph is not read: {why}"))
                        .at(loc)
                        .label("not waves")
                        .help(
                            "write `{\"waves\": [{\"id\": 0, \"tasks\": [\"1.1\", \"2.1\"]}, …]}`; until then tasks run in document order",
                        ),
                );
            }
        }
    }

    fn blockquote(&mut self, node: &Node) {
        let Some(section) = self.current_section else {
            return;
        };
        if self.tasks_in_section > 0 || self.list.sections[section].track.is_none() {
            return;
        }
        let text = node.to_string();
        if let Some(agent) = text.lines().find_map(dialect::primary_agent) {
            self.list.sections[section].agent = Some(agent.to_owned());
        }
    }

    /// The first line of a list item as written, from the start of its line.
    fn item_line(&self, node: &Node) -> (usize, &str) {
        let at = start(node);
        let line_start = self.text()[..at].rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let line_end = self.list.source.line_end(at);
        (line_start, &self.text()[line_start..line_end])
    }

    /// The item's markdown after its bullet marker (and checkbox), dedented.
    fn item_content(&self, node: &Node) -> (usize, String) {
        let at = start(node);
        let stop = end(node).max(at);
        // After a tab, markdown-rs may start the item at the tab rather than at its marker.
        let raw = self.text()[at..stop].trim_start_matches([' ', '\t']);
        let marker_len = raw
            .find(|c: char| {
                !(c == '-' || c == '*' || c == '+' || c.is_ascii_digit() || c == '.' || c == ')')
            })
            .unwrap_or(raw.len());
        let after_marker = &raw[marker_len..];
        let content = after_marker.trim_start_matches([' ', '\t']);
        let content_start = stop - content.len();
        let (line_start, _) = self.item_line(node);
        let indent = columns(&self.text()[line_start..content_start]);
        let mut out = String::new();
        for (i, line) in crate::source::lines(content).enumerate() {
            if i > 0 {
                out.push('\n');
                out.push_str(strip_indent(line, indent));
            } else {
                out.push_str(line);
            }
        }
        (content_start, out.trim_end().to_owned())
    }

    /// Checkbox and id of a list item, if it has them.
    fn task_of(
        &mut self,
        node: &Node,
        item: &ListItem,
    ) -> Option<(Checkbox, bool, dialect::TaskHead, String)> {
        let (line_start, line) = self.item_line(node);
        let head = dialect::checkbox(line)?;
        let text_offset = line_start + head.state_offset;
        let checkbox = Checkbox {
            text_offset,
            byte_offset: self.list.source.byte_offset(text_offset),
            ch: head.ch,
        };
        self.list.checkbox_bytes.push(checkbox.byte_offset);
        let first = item
            .children
            .first()
            .filter(|n| matches!(n, Node::Paragraph(_)))?;
        let mut plain = first_line_plain(first);
        if item.checked.is_none() {
            // Not a GFM task item (`[-]`, `[~]`, `[ ]*`): the box is still in the text.
            if let Some(close) = plain.find(']') {
                plain = plain[close + 1..].trim_start_matches('*').to_owned();
            }
        }
        let task_head = dialect::task_head(&plain)?;
        Some((checkbox, head.optional, task_head, plain))
    }

    /// Bullets indented too deep to be a nested list (spec-kit's old template writes them six
    /// spaces in, under `- [ ] T001 …`) continue the task's first paragraph: their
    /// `Dependency: T002` and `Requirements:` lines still count.
    fn continuation_metadata(&mut self, index: usize, more: &str, paragraph: &Node) {
        let (from, to) = (start(paragraph), end(paragraph).max(start(paragraph)));
        for line in more.lines() {
            let Some(body) = line.trim_start().strip_prefix("- ") else {
                continue;
            };
            let Some(meta) = dialect::metadata(body) else {
                continue;
            };
            let value = meta.value.to_owned();
            match dialect::canonical_key(meta.key) {
                Key::Dependencies => {
                    let at = self.text()[from..to]
                        .find(body)
                        .map_or(from, |k| from + k + meta.value_offset);
                    self.list.tasks[index]
                        .dep_phrases
                        .push(DepPhrase::new(value, at));
                }
                Key::Requirements if self.list.tasks[index].requirements.is_none() => {
                    self.list.tasks[index].requirements = Some(value);
                }
                _ => {}
            }
        }
    }

    fn top_item(&mut self, node: &Node, item: &ListItem) {
        if self.exec_level.is_some() && self.group_item(node, item) {
            return;
        }
        if self.heading_task.is_some() && !self.is_task_item(node, item) {
            let (line_start, line) = self.item_line(node);
            if let Some(head) = dialect::checkbox(line) {
                self.heading_step(node, line_start + head.state_offset, head.ch);
                return;
            }
            if let Some(index) = self.heading_task.as_ref().and_then(|h| h.3) {
                self.detail_item(node, item, index);
                return;
            }
        }
        self.item(node, item, None);
    }

    /// An unnumbered checkbox under a `#### Task 1.1: Title` heading: a step of that task.
    fn heading_step(&mut self, node: &Node, text_offset: usize, ch: char) {
        let Some((id, title, offset, made)) = self.heading_task.clone() else {
            return;
        };
        let index = made.unwrap_or_else(|| {
            let (line, column) = self.list.source.line_col(offset);
            self.list.tasks.push(Task::new(
                id,
                title,
                TaskState::Done,
                (offset, line, column),
                self.current_section,
            ));
            self.tasks_in_section += 1;
            let index = self.list.tasks.len() - 1;
            if let Some(h) = &mut self.heading_task {
                h.3 = Some(index);
            }
            index
        });
        let checkbox = Checkbox {
            text_offset,
            byte_offset: self.list.source.byte_offset(text_offset),
            ch,
        };
        self.list.checkbox_bytes.push(checkbox.byte_offset);
        let (_, content) = self.item_content(node);
        self.collect_code(node, index);
        let task = &mut self.list.tasks[index];
        task.steps.push(checkbox);
        task.details.push(content);
        if TaskState::from_box(ch) != Some(TaskState::Done) {
            task.state = TaskState::Pending;
        }
    }

    /// A list item outside any task: a task, a checklist line, or a list holding tasks.
    fn item(&mut self, node: &Node, item: &ListItem, nested_in: Option<usize>) {
        if let Some((checkbox, optional, head, plain)) = self.task_of(node, item) {
            self.task(node, item, nested_in, checkbox, optional, head, &plain);
            return;
        }
        // Not a task: look for tasks in its nested lists.
        for child in &item.children {
            if let Node::List(list) = child {
                for sub in &list.children {
                    if let Node::ListItem(sub_item) = sub {
                        self.item(sub, sub_item, nested_in);
                    }
                }
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one list item, read once"
    )]
    fn task(
        &mut self,
        node: &Node,
        item: &ListItem,
        nested_in: Option<usize>,
        checkbox: Checkbox,
        optional: bool,
        head: dialect::TaskHead,
        plain: &str,
    ) {
        let state = TaskState::from_box(checkbox.ch).unwrap_or_else(|| {
            let loc = self.list.location(checkbox.text_offset, 1);
            self.list.diagnostics.push(
                Diagnostic::warning(format!("unknown checkbox state `[{}]`", checkbox.ch))
                    .at(loc)
                    .help("use `[ ]` for pending or `[x]` for done; read as pending"),
            );
            TaskState::Pending
        });
        let title = dialect::clean_title(&plain[head.rest..]);
        let (mut title_text, marked_parallel, story) = dialect::speckit_markers(&title.title);
        let offset = start(node);
        // spec-kit's `(depends on T012, T013)`: a dependency phrase, out of the title.
        let mut inline_deps = None;
        if let Some((whole, list)) = dialect::inline_depends(&title_text) {
            let phrase = title_text[list].to_owned();
            let (line_start, line_text) = self.item_line(node);
            let at = line_text.find(&phrase).map_or(offset, |i| line_start + i);
            inline_deps = Some(DepPhrase::new(phrase, at));
            title_text.replace_range(whole, "");
            title_text = title_text.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        let files = if story.is_some() || marked_parallel || deps::is_speckit_id(&head.id) {
            dialect::paths_in(&title_text)
        } else {
            Vec::new()
        };
        let (line, column) = self.list.source.line_col(offset);
        let index = self.list.tasks.len();
        self.list.tasks.push(Task {
            checkbox: Some(checkbox),
            nested_in,
            optional: optional || head.optional,
            estimate: title.estimate,
            dep_phrases: inline_deps.into_iter().collect(),
            files,
            parallel: title.parallel || marked_parallel,
            story,
            ..Task::new(
                head.id,
                title_text,
                state,
                (offset, line, column),
                self.current_section,
            )
        });
        self.tasks_in_section += 1;

        // A hard-wrapped title continues in the first paragraph.
        if let Some(first) = item.children.first() {
            let text = first.to_string();
            if let Some((_, more)) = text.split_once('\n') {
                let more = more.trim();
                if !more.is_empty() {
                    self.list.tasks[index].details.push(more.to_owned());
                    self.continuation_metadata(index, more, first);
                }
            }
        }
        for child in item.children.iter().skip(1) {
            match child {
                Node::List(list) => {
                    for sub in &list.children {
                        if let Node::ListItem(sub_item) = sub {
                            self.detail_item(sub, sub_item, index);
                        }
                    }
                }
                Node::Code(code) => {
                    self.list.tasks[index].code_blocks.push(code_block(code));
                    let raw = self.raw(child);
                    self.list.tasks[index].details.push(raw);
                }
                _ => {
                    let raw = self.raw(child);
                    if !raw.trim().is_empty() {
                        self.list.tasks[index].details.push(raw);
                    }
                }
            }
        }
    }

    fn raw(&self, node: &Node) -> String {
        let (s, e) = (start(node), end(node));
        let line_start = self.text()[..s].rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let indent = columns(&self.text()[line_start..s]);
        crate::source::lines(&self.text()[s..e.max(s)])
            .enumerate()
            .map(|(i, l)| if i == 0 { l } else { strip_indent(l, indent) })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A nested item under a task: a sub-task, a metadata line, or a detail.
    fn detail_item(&mut self, node: &Node, item: &ListItem, task: usize) {
        if let Some((checkbox, optional, head, plain)) = self.task_of(node, item) {
            self.task(node, item, Some(task), checkbox, optional, head, &plain);
            return;
        }
        let (content_start, content) = self.item_content(node);
        if let Some(prompt) = prompt_value(&content) {
            self.list.tasks[task].prompt = Some(prompt);
            return;
        }
        if let Some(rest) = files_heading(&content) {
            // `Files to create/modify:` then the paths, on the line or in nested bullets.
            let mut files = dialect::paths_in(rest);
            for line in content.lines().skip(1) {
                files.extend(dialect::paths_in(line));
            }
            let t = &mut self.list.tasks[task];
            for f in files {
                if !t.files.contains(&f) {
                    t.files.push(f);
                }
            }
            t.details.push(content);
            return;
        }
        if let Some(meta) = dialect::metadata(&content) {
            let value = meta.value.to_owned();
            let t = &mut self.list.tasks[task];
            match dialect::canonical_key(meta.key) {
                Key::Requirements => t.requirements = Some(value),
                Key::Agent => t.agent = Some(value.trim_matches('`').to_owned()),
                Key::Trigger => t.trigger = Some(value),
                Key::SpecReferences => t.spec_references = Some(value),
                Key::Estimate => t.estimate = Some(value),
                Key::Prompt => t.prompt = Some(value),
                Key::Files => {
                    let named = dialect::paths_in(&value);
                    let named = if named.is_empty() {
                        value
                            .split(',')
                            .filter_map(|w| w.split_whitespace().next())
                            .map(str::to_owned)
                            .collect()
                    } else {
                        named
                    };
                    for f in named {
                        if !t.files.contains(&f) {
                            t.files.push(f);
                        }
                    }
                    t.details.push(content.clone());
                }
                Key::Dependencies => {
                    let parsed = deps::parse(&value);
                    let offset = content_start + meta.value_offset;
                    if !parsed.is_understood() {
                        let loc = self.list.location(offset, value.len());
                        self.list.diagnostics.push(
                            Diagnostic::warning(format!(
                                "dependency phrase `{value}` names no task, track or group"
                            ))
                            .at(loc)
                            .label("not understood; ignored")
                            .help("write ids (`Tasks 1-3, CR-A`), `Track A`, or `None`"),
                        );
                    }
                    self.list.tasks[task].dep_phrases.push(DepPhrase {
                        text: value,
                        offset,
                        parsed,
                    });
                }
                Key::Boundary => {
                    for part in dialect::boundary_parts(&value) {
                        if !t.boundary.contains(&part) {
                            t.boundary.push(part);
                        }
                    }
                    t.metadata.push(MetaEntry {
                        key: meta.key.to_owned(),
                        value,
                    });
                }
                Key::Other => t.metadata.push(MetaEntry {
                    key: meta.key.to_owned(),
                    value,
                }),
            }
        } else {
            self.list.tasks[task].details.push(content);
        }
        // Code blocks and sub-tasks deeper inside the detail.
        for child in &item.children {
            match child {
                Node::Code(code) => self.list.tasks[task].code_blocks.push(code_block(code)),
                Node::List(list) => {
                    for sub in &list.children {
                        if let Node::ListItem(sub_item) = sub {
                            if self.is_task_item(sub, sub_item) {
                                self.detail_item(sub, sub_item, task);
                            } else {
                                self.collect_code(sub, task);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn is_task_item(&self, node: &Node, item: &ListItem) -> bool {
        let (_, line) = self.item_line(node);
        dialect::checkbox(line).is_some()
            && item.children.first().is_some_and(|first| {
                let mut plain = first_line_plain(first);
                if item.checked.is_none()
                    && let Some(close) = plain.find(']')
                {
                    plain = plain[close + 1..].trim_start_matches('*').to_owned();
                }
                dialect::task_head(&plain).is_some()
            })
    }

    fn collect_code(&mut self, node: &Node, task: usize) {
        if let Node::Code(code) = node {
            self.list.tasks[task].code_blocks.push(code_block(code));
        }
        if let Some(children) = node.children() {
            for child in children {
                self.collect_code(child, task);
            }
        }
    }

    /// `1. **Group 2 (After Group 1)**:` with member bullets.
    fn group_item(&mut self, node: &Node, item: &ListItem) -> bool {
        let (content_start, content) = self.item_content(node);
        let first_line = content.lines().next().unwrap_or("");
        let Some(head) = dialect::group_head(first_line) else {
            return false;
        };
        let line = self.list.source.line_col(start(node)).0;
        let mut group = Group {
            number: head.number,
            line,
            member_phrases: Vec::new(),
            members: Vec::new(),
            after: head
                .after
                .map(|(text, at)| DepPhrase::new(text, content_start + at)),
            immediate: head.immediate,
        };
        for child in &item.children {
            if let Node::List(list) = child {
                for sub in &list.children {
                    let (at, text) = self.item_content(sub);
                    let first = text.lines().next().unwrap_or("").to_owned();
                    let parsed = deps::parse(&first);
                    group.member_phrases.push(DepPhrase {
                        text: first,
                        offset: at,
                        parsed,
                    });
                }
            }
        }
        self.list.groups.push(group);
        true
    }
}

/// Which tool wrote the list, from what it holds.
fn detect_dialect(list: &TaskList) -> Dialect {
    let tasks = &list.tasks;
    let text = &list.source.text;
    // cc-sdd, Kiro-compatible, writes `_Depends:_` and `_Boundary:_` where specflow writes
    // `_Dependencies:_`; specflow's early form has its `## Implementation Phases` and reading
    // list, or tasks written as headings.
    // Its `(P)` after a task's id (or at the end of its title) is cc-sdd's too: Kiro writes none.
    let cc_sdd = ((text.contains("_Depends:") || text.contains("_Boundary:"))
        && !text.contains("_Dependencies:"))
        || tasks.iter().any(|t| {
            t.parallel && {
                let line_end = list.source.line_end(t.offset);
                list.source.text[t.offset..line_end].contains("(P)")
            }
        });
    let early_specflow = text.contains("## Implementation Phases")
        || text.contains("### Required Reading")
        || tasks.iter().any(|t| !t.steps.is_empty());
    if tasks.iter().any(|t| deps::is_speckit_id(&t.id)) {
        Dialect::SpecKit
    } else if cc_sdd {
        Dialect::CcSdd
    } else if early_specflow
        // Groups, heading or task dependencies (read before any dialect adds its own).
        || list.has_dependency_info
        || list.sections.iter().any(|s| s.track.is_some())
        || tasks.iter().any(|t| deps::is_alpha_id(&t.id))
    {
        Dialect::Specflow
    } else if tasks.iter().any(|t| {
        t.prompt.is_some()
            || !t.files.is_empty()
            || t.metadata
                .iter()
                .any(|m| m.key.eq_ignore_ascii_case("leverage"))
    }) {
        Dialect::SpecWorkflow
    } else {
        Dialect::Kiro
    }
}

/// The waves of a `{"waves": …}` value.
fn read_waves(v: &serde_json::Value) -> Result<Vec<super::model::Wave>, String> {
    use serde_json::Value;
    let id_of = |t: &Value| match t {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    };
    let waves = v
        .get("waves")
        .and_then(Value::as_array)
        .ok_or("it has no `waves` list")?;
    let mut out = Vec::with_capacity(waves.len());
    for (k, w) in waves.iter().enumerate() {
        let (tasks, id, depends_on) = match w {
            Value::Array(tasks) => (tasks, None, None),
            Value::Object(o) => (
                o.get("tasks")
                    .and_then(Value::as_array)
                    .ok_or(format!("wave {} has no `tasks` list", k + 1))?,
                o.get("id")
                    .or_else(|| o.get("wave"))
                    .and_then(Value::as_i64),
                o.get("depends_on")
                    .and_then(Value::as_array)
                    .map(|d| d.iter().filter_map(Value::as_i64).collect()),
            ),
            _ => return Err(format!("wave {} is neither a list nor an object", k + 1)),
        };
        let tasks = tasks
            .iter()
            .map(|t| {
                id_of(t).ok_or(format!(
                    "wave {} names a task by `{t}`, not by its id",
                    k + 1
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(super::model::Wave {
            id,
            tasks,
            depends_on,
        });
    }
    Ok(out)
}

/// spec-workflow's `_Prompt: …_`, which may run over several lines and hold `_Key:` text of
/// its own: everything up to the last `_`.
fn prompt_value(content: &str) -> Option<String> {
    let rest = content.trim_start().strip_prefix("_Prompt:")?;
    let end = rest.rfind('_').unwrap_or(rest.len());
    let value = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    (!value.is_empty()).then_some(value)
}

/// `Files to create/modify:` (also bold, or `Files to modify:`): the text after the colon.
fn files_heading(content: &str) -> Option<&str> {
    let first = content
        .lines()
        .next()?
        .trim()
        .trim_start_matches(['*', '_']);
    let lower = first.to_ascii_lowercase();
    if !(lower.starts_with("files to create") || lower.starts_with("files to modify")) {
        return None;
    }
    let colon = first.find(':')?;
    Some(first[colon + 1..].trim_start_matches(['*', '_']))
}

/// The width of `prefix` in columns, tabs stopping every four.
fn columns(prefix: &str) -> usize {
    prefix.chars().fold(0, |col, c| {
        if c == '\t' {
            col + 4 - col % 4
        } else {
            col + 1
        }
    })
}

/// A code block's text, with CRLF line endings made LF (the shell agent runs it).
fn code_block(code: &markdown::mdast::Code) -> CodeBlock {
    CodeBlock {
        lang: code.lang.clone(),
        code: code.value.replace("\r\n", "\n"),
    }
}

/// Removes up to `width` columns of leading spaces (a tab counts as reaching the next stop).
fn strip_indent(line: &str, width: usize) -> &str {
    let mut col = 0;
    for (i, c) in line.char_indices() {
        if col >= width {
            return &line[i..];
        }
        match c {
            ' ' => col += 1,
            '\t' => col += 4 - col % 4,
            _ => return &line[i..],
        }
    }
    ""
}
