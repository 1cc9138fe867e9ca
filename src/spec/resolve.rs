//! From written references to edges between tasks.
//!
//! Sources are united in order of authority: the task's own `_Dependencies:_` (and those it
//! inherits from its container), then track headings, then the execution strategy's groups,
//! and, only when the file declares nothing at all, document order. An edge from a lower source
//! that would close a cycle contradicts a higher one: it is dropped with a warning. A cycle made
//! by the tasks' own dependencies is an error.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::deps::{DepRef, Requirement, Target};
use super::dialect;
use super::model::{DepPhrase, DepSource, Dialect, Edge, Task, TaskList, TaskState};
use crate::error::Diagnostic;

pub fn resolve(list: &mut TaskList) {
    settle_duplicates(list);
    insert_implied_parents(list);
    let ids = first_ids(list);
    report_duplicates(list, &ids);
    assign_parents(list, &ids);
    review_tasks_join_their_tracks(list);
    report_states(list);

    let mut numbered: BTreeMap<Vec<u64>, Vec<usize>> = BTreeMap::new();
    for (i, task) in list.tasks.iter().enumerate() {
        if let Some(c) = components(&task.id) {
            numbered.entry(c).or_default().push(i);
        }
    }
    let mut r = Resolver {
        ids,
        numbered,
        edges: vec![Vec::new(); list.tasks.len()],
    };
    r.task_dependencies(list);
    r.trigger_conditions(list);
    r.review_loops(list);
    if !r.report_cycles(list) {
        r.heading_dependencies(list);
        r.group_dependencies(list);
        if !list.waves.is_empty() {
            r.wave_dependencies(list);
        }
    }
    if list.dialect == Dialect::SpecKit {
        r.speckit_order(list);
    } else if list.dialect == Dialect::CcSdd {
        let top: Vec<usize> = (0..list.tasks.len())
            .filter(|&i| list.tasks[i].parent.is_none())
            .collect();
        r.ccsdd_siblings(list, &top, Vec::new());
    } else if !list.has_dependency_info {
        // Each pending task after the pending one before it: a done task in between satisfies
        // nothing on its own, or the tasks around it would run together.
        let mut previous = None;
        for leaf in list.leaves().collect::<Vec<_>>() {
            if list.tasks[leaf].state == TaskState::Done {
                continue;
            }
            if let Some(on) = previous {
                r.edges[leaf].push(Pending::new(
                    on,
                    Requirement::Done,
                    DepSource::DocumentOrder,
                ));
            }
            previous = Some(leaf);
        }
    }
    for (i, edges) in r.edges.into_iter().enumerate() {
        list.tasks[i].deps = dedupe(edges);
    }
}

/// An edge before deduplication, with where it was written.
#[derive(Debug, Clone)]
struct Pending {
    edge: Edge,
    /// Text offset and length of the words that made it.
    at: Option<(usize, usize)>,
}

impl Pending {
    fn new(on: usize, requirement: Requirement, source: DepSource) -> Self {
        Pending {
            edge: Edge {
                on,
                requirement,
                source,
            },
            at: None,
        }
    }
}

fn dedupe(edges: Vec<Pending>) -> Vec<Edge> {
    let mut out: Vec<Edge> = Vec::new();
    for p in edges {
        match out.iter_mut().find(|e| e.on == p.edge.on) {
            Some(existing) => {
                existing.source = existing.source.min(p.edge.source);
                existing.requirement = match (existing.requirement, p.edge.requirement) {
                    (Requirement::Failed, _) | (_, Requirement::Failed) => Requirement::Failed,
                    (Requirement::Approved, _) | (_, Requirement::Approved) => {
                        Requirement::Approved
                    }
                    _ => Requirement::Done,
                };
            }
            None => out.push(p.edge),
        }
    }
    out
}

/// Ids written twice. The same task listed again (same id and title, as agents and
/// templates do) is one task: the later copies go, and the task is done if any copy is. A
/// different task under a used id is read as `<id>@<n>` (its n-th use) with a warning, unless a dependency
/// names that id: then which one is meant is unclear, and [`report_duplicates`] says so.
fn settle_duplicates(list: &mut TaskList) {
    let mut referenced: HashSet<String> = HashSet::new();
    let phrases = list
        .tasks
        .iter()
        .flat_map(|t| t.dep_phrases.iter())
        .chain(list.sections.iter().filter_map(|s| s.deps.as_ref()))
        .chain(
            list.groups
                .iter()
                .flat_map(|g| g.member_phrases.iter().chain(g.after.iter())),
        );
    for phrase in phrases {
        for r in &phrase.parsed.refs {
            match &r.target {
                Target::Id { id } => {
                    referenced.insert(id.clone());
                }
                Target::Range { from, to } => {
                    referenced.insert(from.clone());
                    referenced.insert(to.clone());
                }
                _ => {}
            }
        }
    }
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut keep = vec![true; list.tasks.len()];
    let mut same_as: Vec<usize> = (0..list.tasks.len()).collect();
    let mut uses: HashMap<String, usize> = HashMap::new();
    let mut warnings = Vec::new();
    for i in 0..list.tasks.len() {
        let id = list.tasks[i].id.clone();
        let Some(&f) = first.get(&id) else {
            first.insert(id, i);
            continue;
        };
        let (line, first_line) = (list.tasks[i].line, list.tasks[f].line);
        let id_at = list.id_offset(i);
        if list.tasks[i].title == list.tasks[f].title {
            keep[i] = false;
            same_as[i] = f;
            if list.tasks[i].state == TaskState::Done {
                list.tasks[f].state = TaskState::Done;
            }
            warnings.push(
                Diagnostic::warning(format!(
                    "task {id} is listed twice (lines {first_line} and {line})"
                ))
                .at(list.location(id_at, id.len()))
                .label("read as the same task as the first")
                .help("remove one of the copies"),
            );
        } else if !referenced.contains(&id) {
            // Numbered by use, not by line: the name (and its branch) must survive lines
            // added above it, such as the approval's front matter.
            let uses = uses.entry(id.clone()).or_insert(1);
            *uses += 1;
            let new_id = format!("{id}@{uses}");
            warnings.push(
                Diagnostic::warning(format!(
                    "task id `{id}` is used again (first at line {first_line}); this task is read as `{new_id}`"
                ))
                .at(list.location(id_at, id.len()))
                .label("used again here")
                .help("give every task its own id"),
            );
            // Its sub-tasks written after it (`4.1` under the second `4`) go with it.
            let prefix = format!("{id}.");
            for j in i + 1..list.tasks.len() {
                let Some(rest) = list.tasks[j].id.strip_prefix(&prefix) else {
                    break;
                };
                // One a dependency names keeps its id: renaming it would break the reference
                // (and, written twice, it is reported as ambiguous).
                if referenced.contains(&list.tasks[j].id) {
                    continue;
                }
                list.tasks[j].id = format!("{new_id}.{rest}");
            }
            list.tasks[i].id = new_id;
        }
    }
    if keep.iter().any(|k| !k) {
        let mut remap = Vec::with_capacity(keep.len());
        let mut kept = 0;
        for &k in &keep {
            remap.push(kept);
            kept += usize::from(k);
        }
        for i in 0..remap.len() {
            remap[i] = remap[same_as[i]];
        }
        let mut k = 0;
        list.tasks.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        for t in &mut list.tasks {
            t.nested_in = t.nested_in.map(|n| remap[n]);
        }
    }
    list.diagnostics.extend(warnings);
}

/// Id → index of its first definition.
fn first_ids(list: &TaskList) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for (i, t) in list.tasks.iter().enumerate() {
        ids.entry(t.id.clone()).or_insert(i);
    }
    ids
}

fn report_duplicates(list: &mut TaskList, ids: &HashMap<String, usize>) {
    for i in 0..list.tasks.len() {
        let first = ids[&list.tasks[i].id];
        if first != i && !list.tasks[i].is_implied() {
            let t = &list.tasks[i];
            let len = t.id.len();
            let at = t.checkbox.map_or(t.offset, |c| c.text_offset);
            let id_at = list.source.text[at..]
                .find(t.id.as_str())
                .map_or(t.offset, |k| at + k);
            let d = Diagnostic::error(format!(
                "duplicate task id `{}`, which a dependency names: which task is meant is unclear",
                t.id
            ))
            .at(list.location(id_at, len))
            .label("defined again here")
            .note(format!(
                "`{}` is first defined at line {}",
                t.id, list.tasks[first].line
            ))
            .help("give every task its own id, then update the dependencies that name it");
            list.diagnostics.push(d);
        }
    }
}

fn numeric_parent(id: &str) -> Option<&str> {
    // `4@2.1`: a sub-task of a task whose id was used twice (see `settle_duplicates`).
    let plain: String = match id.split_once('@') {
        Some((head, tail)) => {
            let tail = tail.split_once('.').map_or("", |(_, rest)| rest);
            if tail.is_empty() {
                head.to_owned()
            } else {
                format!("{head}.{tail}")
            }
        }
        None => id.to_owned(),
    };
    if !super::deps::is_numeric_id(&plain) {
        return None;
    }
    id.rfind('.').map(|i| &id[..i])
}

/// `2.1` with no `2` implies a container `2`, placed right before its first sub-task.
fn insert_implied_parents(list: &mut TaskList) {
    let mut known: HashSet<String> = list.tasks.iter().map(|t| t.id.clone()).collect();
    let old = std::mem::take(&mut list.tasks);
    let mut remap = Vec::with_capacity(old.len());
    let mut tasks = Vec::with_capacity(old.len());
    for task in old {
        let mut missing = Vec::new();
        let mut id = task.id.as_str();
        while let Some(parent) = numeric_parent(id) {
            if !known.contains(parent) {
                missing.push(parent.to_owned());
            }
            id = parent;
        }
        for parent in missing.into_iter().rev() {
            known.insert(parent.clone());
            tasks.push(Task::new(
                parent,
                String::new(),
                TaskState::Pending,
                (task.offset, task.line, task.column),
                task.section,
            ));
        }
        remap.push(tasks.len());
        tasks.push(task);
    }
    for t in &mut tasks {
        t.nested_in = t.nested_in.map(|n| remap[n]);
    }
    list.tasks = tasks;
}

/// Numbering decides the parent (`2.1` belongs to `2` even when written flat); otherwise the
/// task it is nested in.
fn assign_parents(list: &mut TaskList, ids: &HashMap<String, usize>) {
    for i in 0..list.tasks.len() {
        let parent = numeric_parent(&list.tasks[i].id)
            .and_then(|p| ids.get(p).copied())
            .or(list.tasks[i].nested_in)
            .filter(|&p| p != i);
        // Never make a loop of parents (duplicate ids could).
        let mut p = parent;
        let mut looped = false;
        while let Some(a) = p {
            if a == i {
                looped = true;
                break;
            }
            p = list.tasks[a].parent;
        }
        if !looped && let Some(p) = parent {
            list.tasks[i].parent = Some(p);
            list.tasks[p].children.push(i);
        }
    }
}

/// specflow sometimes lists a track's reviews under the next track's heading; `CR-B` still
/// reviews track B, and takes that track's heading dependencies, not the other's.
fn review_tasks_join_their_tracks(list: &mut TaskList) {
    for t in &mut list.tasks {
        let Some(letter) = dialect::review_track(&t.id) else {
            continue;
        };
        if let Some(s) = list
            .sections
            .iter()
            .position(|s| s.track.as_deref() == Some(letter))
        {
            t.section = Some(s);
        }
    }
}

fn report_states(list: &mut TaskList) {
    let mut diagnostics = Vec::new();
    for t in &list.tasks {
        if t.is_container() || t.is_implied() {
            continue;
        }
        let Some(checkbox) = t.checkbox else { continue };
        let loc = || list.location(checkbox.text_offset.saturating_sub(1), 3);
        match t.state {
            TaskState::InProgress => diagnostics.push(
                Diagnostic::warning(format!("task {} is marked in progress (`[-]`)", t.id))
                    .at(loc())
                    .label("planned as pending")
                    .help("if another run is working on it, wait for that run; otherwise leave it, it will run again"),
            ),
            TaskState::Blocked => diagnostics.push(
                Diagnostic::warning(format!("task {} is marked not runnable (`[~]`)", t.id))
                    .at(loc())
                    .label("not runnable")
                    .help("change the box to `[ ]` when the task can run; tasks that depend on it wait"),
            ),
            _ => {}
        }
    }
    list.diagnostics.extend(diagnostics);
}

struct Resolver {
    ids: HashMap<String, usize>,
    /// The tasks with numeric ids, by their components (`2.10` → [2, 10]), for ranges.
    numbered: BTreeMap<Vec<u64>, Vec<usize>>,
    edges: Vec<Vec<Pending>>,
}

/// Parses the numeric components of an id (`2.10` → [2, 10]).
fn components(id: &str) -> Option<Vec<u64>> {
    id.split('.').map(|p| p.parse().ok()).collect()
}

/// Splits `T012` → ("T", 12) and `PR-C` → ("PR-", "C").
fn prefixed(id: &str) -> Option<(&str, &str)> {
    if let Some(dash) = id.rfind('-') {
        return Some((&id[..=dash], &id[dash + 1..]));
    }
    let digits = id.find(|c: char| c.is_ascii_digit())?;
    Some((&id[..digits], &id[digits..]))
}

impl Resolver {
    /// The tasks a reference names (containers included), or the diagnostic saying why not.
    #[expect(
        clippy::result_large_err,
        reason = "cold path; the diagnostic is the result"
    )]
    fn lookup(
        &self,
        list: &TaskList,
        owner: Option<usize>,
        r: &DepRef,
        phrase: &DepPhrase,
    ) -> Result<Vec<usize>, Diagnostic> {
        let at = phrase.offset + r.span.0;
        let len = r.span.1 - r.span.0;
        let unknown = |id: &str| {
            let mut known: Vec<&str> = list
                .tasks
                .iter()
                .filter(|t| !t.is_implied())
                .map(|t| t.id.as_str())
                .collect();
            known.dedup();
            let shown = known
                .iter()
                .take(16)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let more = if known.len() > 16 { ", …" } else { "" };
            Diagnostic::error(format!("dependency on unknown task `{id}`"))
                .at(list.location(at, len))
                .label("no task has this id")
                .help(format!(
                    "use an id defined in this file ({shown}{more}), or remove the reference"
                ))
        };
        match &r.target {
            Target::Id { id } => self
                .ids
                .get(id)
                .map(|&i| vec![i])
                .ok_or_else(|| unknown(id)),
            Target::Range { from, to } => {
                let found = self.range(list, from, to);
                match found {
                    Ok(v) if !v.is_empty() => Ok(v),
                    Ok(_) => Err(Diagnostic::error(format!(
                        "dependency range `{from}`-`{to}` matches no task"
                    ))
                    .at(list.location(at, len))
                    .label("no task has an id in this range")
                    .help("check the ends of the range against the ids in this file")),
                    Err(id) => Err(unknown(&id)),
                }
            }
            Target::Track { track } => {
                let members: Vec<usize> = (0..list.tasks.len())
                    .filter(|&i| list.track_of(i) == Some(track.as_str()))
                    .collect();
                if members.is_empty() {
                    let tracks: Vec<&str> = list
                        .sections
                        .iter()
                        .filter_map(|s| s.track.as_deref())
                        .collect();
                    let help = if tracks.is_empty() {
                        "this file has no `### Track X: …` headings; name tasks instead".to_owned()
                    } else {
                        format!("tracks with tasks in this file: {}", tracks.join(", "))
                    };
                    Err(
                        Diagnostic::error(format!("dependency on unknown track `{track}`"))
                            .at(list.location(at, len))
                            .label("no task is in this track")
                            .help(help),
                    )
                } else {
                    Ok(members)
                }
            }
            Target::Group { group } => Ok(list
                .groups
                .iter()
                .filter(|g| g.number == *group)
                .flat_map(|g| g.members.iter().copied())
                .collect()),
            Target::AllPrevious { classes } => {
                let before = owner.map_or(usize::MAX, |o| list.tasks[o].offset);
                Ok((0..list.tasks.len())
                    .filter(|&i| list.tasks[i].offset < before)
                    .filter(|&i| {
                        classes.is_empty()
                            || classes
                                .iter()
                                .any(|c| dialect::id_class(&list.tasks[i].id) == c)
                    })
                    .collect())
            }
            Target::AllTracks => {
                let own = owner.and_then(|o| list.track_of(o));
                Ok((0..list.tasks.len())
                    .filter(|&i| list.track_of(i).is_some_and(|t| Some(t) != own))
                    .collect())
            }
        }
    }

    /// Tasks whose ids lie between `from` and `to`: numerically for numeric ids (`4-6` is 4, 5
    /// and 6 wherever they are written), by letter or number after a shared prefix (`PR-A`
    /// through `PR-F`, `T003`-`T008`), otherwise in document order. `Err` names a missing end
    /// when document order is needed.
    fn range(&self, list: &TaskList, from: &str, to: &str) -> Result<Vec<usize>, String> {
        if let (Some(a), Some(b)) = (components(from), components(to))
            && a.len() == b.len()
        {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let mut found: Vec<usize> = self
                .numbered
                .range(lo.clone()..=hi)
                .filter(|(c, _)| c.len() == lo.len())
                .flat_map(|(_, tasks)| tasks.iter().copied())
                .collect();
            found.sort_unstable();
            return Ok(found);
        }
        // Letter-prefixed ids (`PR-A`…`PR-F`, `T003`…`T008`); plain numbers of different
        // depths (`1.1-2`) fall through to document order.
        if let (Some((pa, sa)), Some((pb, sb))) = (prefixed(from), prefixed(to))
            && pa == pb
            && !pa.is_empty()
            && !sa.is_empty()
            && !sb.is_empty()
        {
            let numeric =
                sa.bytes().all(|b| b.is_ascii_digit()) && sb.bytes().all(|b| b.is_ascii_digit());
            let key = |s: &str| -> (usize, String) {
                if numeric {
                    (0, format!("{:0>20}", s))
                } else {
                    (s.len(), s.to_owned())
                }
            };
            let (lo, hi) = {
                let (ka, kb) = (key(sa), key(sb));
                if ka <= kb { (ka, kb) } else { (kb, ka) }
            };
            return Ok((0..list.tasks.len())
                .filter(|&i| {
                    let id = &list.tasks[i].id;
                    prefixed(id).is_some_and(|(p, s)| {
                        p == pa
                            && (!numeric || s.bytes().all(|b| b.is_ascii_digit()))
                            && (key(s) >= lo && key(s) <= hi)
                    })
                })
                .collect());
        }
        let a = *self.ids.get(from).ok_or_else(|| from.to_owned())?;
        let b = *self.ids.get(to).ok_or_else(|| to.to_owned())?;
        let (lo, hi) = (a.min(b), a.max(b));
        Ok((lo..=hi).collect())
    }

    /// Resolves a phrase into leaf edges, reporting unknown references as `severity`.
    fn phrase_edges(
        &self,
        list: &TaskList,
        owner: Option<usize>,
        phrase: &DepPhrase,
        source: DepSource,
        problems: &mut Vec<Diagnostic>,
    ) -> Vec<Pending> {
        let mut out = Vec::new();
        for r in &phrase.parsed.refs {
            match self.lookup(list, owner, r, phrase) {
                Ok(tasks) => {
                    for t in tasks {
                        for leaf in list.leaves_of(t) {
                            out.push(Pending {
                                edge: Edge {
                                    on: leaf,
                                    requirement: r.requirement,
                                    source,
                                },
                                at: Some((phrase.offset + r.span.0, r.span.1 - r.span.0)),
                            });
                        }
                    }
                }
                Err(d) => problems.push(d),
            }
        }
        out
    }

    fn task_dependencies(&mut self, list: &mut TaskList) {
        let mut problems = Vec::new();
        for i in 0..list.tasks.len() {
            if list.tasks[i].dep_phrases.is_empty() {
                continue;
            }
            let mut edges = Vec::new();
            let mut unknown = Vec::new();
            for phrase in &list.tasks[i].dep_phrases {
                edges.extend(self.phrase_edges(
                    list,
                    Some(i),
                    phrase,
                    DepSource::Task,
                    &mut unknown,
                ));
            }
            // A done task's references are history: one that names nothing any more cannot
            // change the plan, so it is a warning (every task under it done, for a container).
            let done = list
                .leaves_of(i)
                .iter()
                .all(|&l| list.tasks[l].state == TaskState::Done);
            problems.extend(unknown.into_iter().map(|mut d| {
                if done {
                    d.severity = crate::error::Severity::Warning;
                    d.label = Some(format!(
                        "no task has this id; task {} is done, so this is ignored",
                        list.tasks[i].id
                    ));
                }
                d
            }));
            let own = list.leaves_of(i);
            let source = if list.tasks[i].is_container() {
                DepSource::Parent
            } else {
                DepSource::Task
            };
            for &leaf in &own {
                for p in &edges {
                    if p.edge.on == leaf && !list.tasks[i].is_container() {
                        problems.push(
                            Diagnostic::error(format!(
                                "task {} depends on itself",
                                list.tasks[i].id
                            ))
                            .at_opt(p.at.map(|(a, l)| list.location(a, l)))
                            .label("this names the task itself")
                            .help("remove this reference"),
                        );
                        continue;
                    }
                    if own.contains(&p.edge.on) {
                        continue; // a container's sub-tasks do not wait for each other
                    }
                    let mut p = p.clone();
                    p.edge.source = source;
                    self.edges[leaf].push(p);
                }
            }
        }
        list.diagnostics.extend(problems);
    }

    /// `_Trigger: Only if CR-A or PR-A status is "Requires changes"_` on a task with no
    /// `(failed)` dependency: the reviews it names are its condition, as if it said
    /// `_Dependencies: CR-A and/or PR-A (failed)_`.
    fn trigger_conditions(&mut self, list: &TaskList) {
        for i in list.leaves().collect::<Vec<_>>() {
            let task = &list.tasks[i];
            let Some(trigger) = &task.trigger else {
                continue;
            };
            if self.edges[i]
                .iter()
                .any(|e| e.edge.requirement == Requirement::Failed)
            {
                continue;
            }
            // Only the wording of a review asking for changes, not negated ("with no changes
            // requested"), and only review ids (`CR-A`, `PR-B`, `CR1`).
            let lower = trigger.to_ascii_lowercase();
            let asks = [
                "requires changes",
                "require changes",
                "changes requested",
                "request changes",
                "rejected",
            ]
            .iter()
            .any(|w| lower.contains(w));
            let negated = ["no changes", "not require", "without changes"]
                .iter()
                .any(|w| lower.contains(w));
            if !asks || negated {
                continue;
            }
            for word in
                trigger.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            {
                let word = word.trim_end_matches('.');
                if !super::deps::is_alpha_id(word)
                    || !(word.starts_with("CR") || word.starts_with("PR"))
                {
                    continue;
                }
                if let Some(&on) = self.ids.get(word)
                    && on != i
                    && !self.edges[i].iter().any(|e| e.edge.on == on)
                {
                    let at = list.source.text[task.offset..]
                        .find(word)
                        .map(|k| (task.offset + k, word.len()));
                    let mut p = Pending::new(on, Requirement::Failed, DepSource::Task);
                    p.at = at;
                    self.edges[i].push(p);
                }
            }
        }
    }

    /// specflow's review loop: a rework task runs only if a review asks for changes, and the
    /// review runs again after it. A review that lists its own rework as a dependency
    /// (`CR-B` after `RW-B`, where `RW-B` waits for `CR-B (failed)`) describes that loop, not an
    /// order: the edge is dropped with a warning, and the loop is left to the review gate.
    fn review_loops(&mut self, list: &mut TaskList) {
        let mut warnings = Vec::new();
        for t in 0..self.edges.len() {
            let mut k = 0;
            while k < self.edges[t].len() {
                let rework = self.edges[t][k].edge.on;
                let triggers: Vec<usize> = self.edges[rework]
                    .iter()
                    .filter(|e| e.edge.requirement == Requirement::Failed)
                    .map(|e| e.edge.on)
                    .collect();
                let is_loop = self.edges[t][k].edge.requirement != Requirement::Failed
                    && triggers.iter().any(|&g| g == t || self.reaches(g, t));
                if !is_loop {
                    k += 1;
                    continue;
                }
                let p = self.edges[t].remove(k);
                let (gate, rw) = (&list.tasks[t].id, &list.tasks[rework].id);
                warnings.push(
                    Diagnostic::warning(format!(
                        "{gate} waits for {rw}, but {rw} runs only when {gate} (or a review after it) asks for changes"
                    ))
                    .at_opt(p.at.map(|(a, l)| list.location(a, l)))
                    .label("read as the review loop; this dependency is ignored")
                    .help(format!(
                        "remove `{rw}` from {gate}'s dependencies: a review runs again after its rework by itself"
                    )),
                );
            }
        }
        list.diagnostics.extend(warnings);
    }

    /// Reports every cycle of the tasks' own dependencies; true when there was one.
    fn report_cycles(&self, list: &mut TaskList) -> bool {
        let n = list.tasks.len();
        // 0 = unvisited, 1 = on stack, 2 = done
        let mut color = vec![0u8; n];
        let mut found: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        for root in 0..n {
            if color[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            let mut path: Vec<usize> = vec![root];
            color[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(p) = self.edges[node].get(*next) {
                    *next += 1;
                    let on = p.edge.on;
                    match color[on] {
                        0 => {
                            color[on] = 1;
                            stack.push((on, 0));
                            path.push(on);
                        }
                        1 => {
                            let start = path.iter().position(|&x| x == on).unwrap_or(0);
                            let mut cycle: Vec<usize> = path[start..].to_vec();
                            let min = cycle
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, v)| **v)
                                .map_or(0, |(k, _)| k);
                            cycle.rotate_left(min);
                            if seen.insert(cycle.clone()) {
                                found.push(cycle);
                            }
                        }
                        _ => {}
                    }
                } else {
                    color[node] = 2;
                    stack.pop();
                    path.pop();
                }
            }
        }
        for cycle in &found {
            let names: Vec<&str> = cycle.iter().map(|&i| list.tasks[i].id.as_str()).collect();
            let first = cycle[0];
            let second = cycle[(1) % cycle.len()];
            // The edge `first waits for second`, where it was written.
            let at = self.edges[first]
                .iter()
                .find(|p| p.edge.on == second)
                .and_then(|p| p.at);
            let mut d = Diagnostic::error(format!(
                "dependency cycle: {} → {}",
                names.join(" → "),
                names[0]
            ))
            .at_opt(at.map(|(a, l)| list.location(a, l)))
            .label("this dependency closes the cycle")
            .help("remove one of these dependencies so that the tasks can run in some order");
            for (k, &t) in cycle.iter().enumerate() {
                let on = cycle[(k + 1) % cycle.len()];
                let line = self.edges[t]
                    .iter()
                    .find(|p| p.edge.on == on)
                    .and_then(|p| p.at)
                    .map_or(list.tasks[t].line, |(a, _)| list.source.line_col(a).0);
                d = d.note(format!(
                    "{} waits for {} (line {line})",
                    list.tasks[t].id, list.tasks[on].id
                ));
            }
            list.diagnostics.push(d);
        }
        !found.is_empty()
    }

    /// Whether `from` already waits, directly or not, for `to`.
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                stack.extend(self.edges[n].iter().map(|p| p.edge.on));
            }
        }
        false
    }

    /// Adds lower-authority edges, `edges` for every one of `members`, where they do not
    /// contradict what is already there; returns the (task, dependency) pairs dropped.
    ///
    /// One walk finds every task that already waits for a member; an edge to any other task
    /// cannot close a cycle, whatever else is added, so only edges to those few need the walk
    /// of [`Self::reaches`]. A track heading over hundreds of tasks stays linear.
    fn add_filling(&mut self, members: &[usize], edges: &[Pending]) -> Vec<(usize, usize)> {
        let waiting = self.waiting_for(members);
        let mut dropped = Vec::new();
        for &task in members {
            let mut present: HashSet<usize> = self.edges[task].iter().map(|e| e.edge.on).collect();
            for p in edges {
                let on = p.edge.on;
                if on == task || present.contains(&on) {
                    continue;
                }
                if waiting[on] && self.reaches(on, task) {
                    dropped.push((task, on));
                    continue;
                }
                present.insert(on);
                self.edges[task].push(p.clone());
            }
        }
        dropped
    }

    /// The tasks that wait, directly or not, for one of `targets` (the targets included).
    fn waiting_for(&self, targets: &[usize]) -> Vec<bool> {
        let n = self.edges.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (t, edges) in self.edges.iter().enumerate() {
            for e in edges {
                dependents[e.edge.on].push(t);
            }
        }
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(t) = stack.pop() {
            if !std::mem::replace(&mut seen[t], true) {
                stack.extend(dependents[t].iter().copied());
            }
        }
        seen
    }

    /// The section's `T012 depends on T010` facts (each side with its offset), as edges.
    fn section_task_edges(&mut self, list: &TaskList, facts: &[TaskFact]) {
        for ((who, who_at), (on, on_at)) in facts {
            let speckit_only = |phrase: DepPhrase| {
                let mut phrase = phrase;
                phrase.parsed.refs.retain(|r| match &r.target {
                    Target::Id { id } => super::deps::is_speckit_id(id),
                    Target::Range { from, to } => {
                        super::deps::is_speckit_id(from) && super::deps::is_speckit_id(to)
                    }
                    _ => false,
                });
                phrase
            };
            let who = speckit_only(DepPhrase::new(who.clone(), *who_at));
            let on = speckit_only(DepPhrase::new(on.clone(), *on_at));
            let mut ignored = Vec::new();
            let waiting: Vec<usize> = self
                .phrase_edges(list, None, &who, DepSource::Phase, &mut ignored)
                .into_iter()
                .map(|p| p.edge.on)
                .collect();
            let edges = self.phrase_edges(list, None, &on, DepSource::Phase, &mut ignored);
            let waiting: Vec<usize> = waiting
                .into_iter()
                .filter(|&t| list.tasks[t].state != TaskState::Done)
                .collect();
            self.add_filling(&waiting, &edges);
        }
    }

    /// spec-kit: a phase starts after the phase before it; inside a phase a task waits for
    /// the tasks before it, except that `[P]` tasks next to each other run together. When the
    /// file says user stories may run in parallel, the user-story phases all start after the
    /// phase before the first of them, and the phase after them waits for all of them. Inline
    /// `(depends on …)` comes first; this order only fills in.
    fn speckit_order(&mut self, list: &TaskList) {
        let phases = speckit_phases(list);
        let is_story = |s: Option<usize>| {
            s.is_some_and(|s| {
                list.sections[s]
                    .title
                    .to_ascii_lowercase()
                    .contains("user story")
            })
        };
        let phase_words_of: Vec<Vec<PhaseWord>> =
            phases.iter().map(|(s, _)| phase_names(list, *s)).collect();
        let names: Vec<String> = phase_words_of
            .iter()
            .flatten()
            .filter_map(|w| match w {
                PhaseWord::Name(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let facts = section_facts(&list.source.text, &names);
        let stories_parallel = facts.stories_parallel;
        // `T012 depends on T010` in the section: edges before the order's.
        self.section_task_edges(list, &facts.task_facts);
        // The phases a phase waits for, where the section says so (earlier ones only).
        let phase_index = |word: &PhaseWord, before: usize| -> Vec<usize> {
            (0..before)
                .filter(|&k| match word {
                    PhaseWord::AllStories => is_story(phases[k].0),
                    w => phase_words_of[k].contains(w),
                })
                .collect()
        };
        let mut ends_of: Vec<Vec<usize>> = Vec::with_capacity(phases.len());
        let mut entry: Vec<usize> = Vec::new();
        let mut story_entry: Option<Vec<usize>> = None;
        let mut story_ends: Vec<usize> = Vec::new();
        for (k, (section, members)) in phases.iter().enumerate() {
            let story = stories_parallel && is_story(*section);
            if story {
                let start = story_entry.get_or_insert_with(|| entry.clone()).clone();
                entry = start;
            } else if story_entry.take().is_some() {
                entry = std::mem::take(&mut story_ends);
            }
            // `Phase 4 depends on Phase 2`: the phases named, instead of the one before.
            let named: Vec<usize> = facts
                .phase_deps
                .iter()
                .filter(|(subject, _)| phase_words_of[k].contains(subject))
                .flat_map(|(_, on)| on.iter().flat_map(|w| phase_index(w, k)))
                .collect();
            if !named.is_empty() {
                entry = named.iter().flat_map(|&p| ends_of[p].clone()).collect();
            }
            // `User Story 2: Depends on User Story 1`: also after that story.
            if story {
                for word in &phase_words_of[k] {
                    let PhaseWord::Story(n) = word else { continue };
                    for m in facts.story_deps.get(n).into_iter().flatten() {
                        for p in phase_index(&PhaseWord::Story(*m), k) {
                            entry.extend(ends_of[p].iter().copied());
                        }
                    }
                }
            }
            entry.sort_unstable();
            entry.dedup();
            // What another of them already waits for need not be waited for again.
            let reached: Vec<usize> = entry
                .iter()
                .copied()
                .filter(|&x| entry.iter().any(|&y| y != x && self.reaches(y, x)))
                .collect();
            entry.retain(|x| !reached.contains(x));
            let mut before = entry.clone();
            let mut run: Vec<usize> = Vec::new();
            let mut run_base: Vec<usize> = Vec::new();
            for &t in members {
                // A done task holds nothing up, but a done task without `[P]` still ends the
                // `[P]` run before it: what follows waits for that run.
                if list.tasks[t].state == TaskState::Done {
                    if !list.tasks[t].parallel && !run.is_empty() {
                        before = std::mem::take(&mut run);
                    }
                    continue;
                }
                let waits = if list.tasks[t].parallel {
                    if run.is_empty() {
                        run_base = before.clone();
                    }
                    run.push(t);
                    run_base.clone()
                } else {
                    if !run.is_empty() {
                        before = std::mem::take(&mut run);
                    }
                    std::mem::replace(&mut before, vec![t])
                };
                let edges: Vec<Pending> = waits
                    .into_iter()
                    .map(|on| Pending::new(on, Requirement::Done, DepSource::Phase))
                    .collect();
                self.add_filling(&[t], &edges);
            }
            let end = if run.is_empty() { before } else { run };
            ends_of.push(end.clone());
            if story {
                story_ends.extend(end);
            } else {
                entry = end;
            }
        }
    }

    /// cc-sdd: "order implies dependency", and `(P)` marks a task that does not wait for its
    /// parallel siblings. Among `siblings` (the sub-tasks of one task, or the top-level tasks),
    /// each task waits for the one before it; a run of consecutive `(P)` siblings all wait for
    /// what came before the run, and the sibling after the run waits for all of it. A task with
    /// sub-tasks passes this on to them. `entry` is what the first sibling waits for; returns
    /// the pending tasks the next one must wait for. `_Depends:_` comes first; this only fills in.
    fn ccsdd_siblings(
        &mut self,
        list: &TaskList,
        siblings: &[usize],
        entry: Vec<usize>,
    ) -> Vec<usize> {
        let mut before = entry;
        let mut run: Option<(Vec<usize>, Vec<usize>)> = None; // (what it waits for, its ends)
        for &t in siblings {
            if list.tasks[t].parallel {
                let base = run
                    .get_or_insert_with(|| (before.clone(), Vec::new()))
                    .0
                    .clone();
                let ends = self.ccsdd_task(list, t, base);
                if let Some((_, run_ends)) = run.as_mut() {
                    run_ends.extend(ends);
                }
                continue;
            }
            if let Some((_, ends)) = run.take()
                && !ends.is_empty()
            {
                before = ends;
            }
            let ends = self.ccsdd_task(list, t, before.clone());
            // A done task holds nothing up: what follows waits for the pending ones before it.
            if !ends.is_empty() {
                before = ends;
            }
        }
        match run {
            Some((_, ends)) if !ends.is_empty() => ends,
            _ => before,
        }
    }

    /// One task of [`Self::ccsdd_siblings`]: `waits` are its order's dependencies.
    fn ccsdd_task(&mut self, list: &TaskList, t: usize, waits: Vec<usize>) -> Vec<usize> {
        if list.tasks[t].is_container() {
            let children = list.tasks[t].children.clone();
            return self.ccsdd_siblings(list, &children, waits);
        }
        if list.tasks[t].state == TaskState::Done {
            return Vec::new();
        }
        let edges: Vec<Pending> = waits
            .into_iter()
            .map(|on| Pending::new(on, Requirement::Done, DepSource::Order))
            .collect();
        self.add_filling(&[t], &edges);
        vec![t]
    }

    fn heading_dependencies(&mut self, list: &mut TaskList) {
        let mut problems = Vec::new();
        for s in 0..list.sections.len() {
            let Some(phrase) = list.sections[s].deps.clone() else {
                continue;
            };
            let members: Vec<usize> = list
                .leaves()
                .filter(|&i| list.tasks[i].section == Some(s))
                .collect();
            let edges = self.phrase_edges(
                list,
                members.first().copied(),
                &phrase,
                DepSource::Heading,
                &mut problems,
            );
            let dropped = self.add_filling(&members, &edges);
            if let Some(&(m, on)) = dropped.first() {
                problems.push(contradiction(
                    list,
                    &phrase,
                    "heading",
                    m,
                    on,
                    dropped.len(),
                ));
            }
        }
        list.diagnostics.extend(problems);
    }

    /// Kiro's waves: a wave's tasks wait for the wave before it (or, with `depends_on`, the
    /// waves it names). A wave may name a parent (all its sub-tasks) or sub-tasks. A task no
    /// wave names (Kiro leaves out checkpoints and optional tasks) waits for every task before
    /// it in the file, and nothing waits for it. Task ids that name no task are warned about.
    fn wave_dependencies(&mut self, list: &mut TaskList) {
        let mut problems = Vec::new();
        let at = list.waves_offset;
        let mut members: Vec<Vec<usize>> = Vec::with_capacity(list.waves.len());
        let mut listed = vec![false; list.tasks.len()];
        for (k, wave) in list.waves.iter().enumerate() {
            let mut leaves = Vec::new();
            for id in &wave.tasks {
                match self.ids.get(id.trim_end_matches('.')) {
                    Some(&t) => {
                        for leaf in list.leaves_of(t) {
                            listed[leaf] = true;
                            leaves.push(leaf);
                        }
                    }
                    None => problems.push(
                        Diagnostic::warning(format!(
                            "wave {} of the task dependency graph names task `{id}`, which is not in the list",
                            wave.id.map_or(k as i64 + 1, |i| i)
                        ))
                        .at(list.location(at, list.source.line_end(at) - at))
                        .label("ignored")
                        .help("name the tasks by the ids written in the list (`1.1`, `3`)"),
                    ),
                }
            }
            members.push(leaves);
        }
        for (k, wave) in list.waves.iter().enumerate() {
            let waits: Vec<usize> = match &wave.depends_on {
                Some(on) => list
                    .waves
                    .iter()
                    .enumerate()
                    .filter(|(j, w)| *j != k && w.id.is_some_and(|id| on.contains(&id)))
                    .flat_map(|(j, _)| members[j].iter().copied())
                    .collect(),
                None if k > 0 => members[k - 1].clone(),
                None => Vec::new(),
            };
            let edges: Vec<Pending> = waits
                .into_iter()
                .map(|on| Pending::new(on, Requirement::Done, DepSource::Group))
                .collect();
            let mine = members[k].clone();
            self.add_filling(&mine, &edges);
        }
        let mut before: Vec<usize> = Vec::new();
        for leaf in list.leaves().collect::<Vec<_>>() {
            if !listed[leaf] && list.tasks[leaf].state != TaskState::Done {
                let edges: Vec<Pending> = before
                    .iter()
                    .map(|&on| Pending::new(on, Requirement::Done, DepSource::Group))
                    .collect();
                self.add_filling(&[leaf], &edges);
            }
            if list.tasks[leaf].state != TaskState::Done {
                before.push(leaf);
            }
        }
        list.diagnostics.extend(problems);
    }

    fn group_dependencies(&mut self, list: &mut TaskList) {
        let mut problems = Vec::new();
        // Members first: a group condition may name another group.
        for g in 0..list.groups.len() {
            let mut members = Vec::new();
            for phrase in list.groups[g].member_phrases.clone() {
                let explicit = phrase
                    .parsed
                    .refs
                    .iter()
                    .any(|r| matches!(r.target, Target::Id { .. } | Target::Range { .. }));
                let mut p = phrase.clone();
                p.parsed.refs.retain(|r| {
                    !explicit || matches!(r.target, Target::Id { .. } | Target::Range { .. })
                });
                let mut unknown = Vec::new();
                for e in self.phrase_edges(list, None, &p, DepSource::Group, &mut unknown) {
                    members.push(e.edge.on);
                }
                problems.extend(unknown.into_iter().map(as_group_warning));
            }
            members.dedup();
            list.groups[g].members = members;
        }
        for g in 0..list.groups.len() {
            let group = &list.groups[g];
            let waits: Vec<Pending> = if group.immediate {
                Vec::new()
            } else if let Some(phrase) = group.after.clone() {
                let mut unknown = Vec::new();
                let edges = self.phrase_edges(list, None, &phrase, DepSource::Group, &mut unknown);
                problems.extend(unknown.into_iter().map(as_group_warning));
                edges
            } else if g > 0 {
                list.groups[g - 1]
                    .members
                    .iter()
                    .map(|&on| Pending::new(on, Requirement::Done, DepSource::Group))
                    .collect()
            } else {
                Vec::new()
            };
            // A group waits only for work of earlier groups: `After Track D Development` does
            // not make the reviews of group 7 wait for each other.
            let this_or_later: HashSet<usize> = list.groups[g..]
                .iter()
                .flat_map(|grp| grp.members.iter().copied())
                .collect();
            let waits: Vec<Pending> = waits
                .into_iter()
                .filter(|p| !this_or_later.contains(&p.edge.on))
                .collect();
            let members = list.groups[g].members.clone();
            let dropped = self.add_filling(&members, &waits);
            // Only a condition the user wrote can contradict; the implied "after the previous
            // group" order simply yields.
            if let (Some(&(m, on)), Some(_)) = (dropped.first(), &list.groups[g].after) {
                let line = list.groups[g].line;
                let (from, to) = (&list.tasks[m].id, &list.tasks[on].id);
                let more = if dropped.len() > 1 {
                    format!(" (and {} more)", dropped.len() - 1)
                } else {
                    String::new()
                };
                let offset = list
                    .source
                    .text
                    .match_indices('\n')
                    .nth(line.saturating_sub(2))
                    .map_or(0, |(i, _)| i + 1);
                problems.push(
                    Diagnostic::warning(format!(
                        "execution group {} says task {from} waits for {to}, but {to} already waits for {from}{more}",
                        list.groups[g].number
                    ))
                    .at(list.location(offset, 1))
                    .label("ignored where it contradicts the tasks' own dependencies")
                    .help("make the parallel groups agree with the tasks' `_Dependencies:_`"),
                );
            }
        }
        list.diagnostics.extend(problems);
    }
}

/// One of the section's task facts: the phrase that waits and the phrase waited for, each
/// with its offset in the text.
type TaskFact = ((String, usize), (String, usize));

/// What a spec-kit list's "Dependencies & Execution Order" section (or `## Dependencies`) states
/// in words a parser can trust.
#[derive(Debug, Default, PartialEq, Eq)]
struct SectionFacts {
    /// User stories may run side by side: the section says they may proceed in parallel, or
    /// that a story is independent of the others.
    stories_parallel: bool,
    /// `User Story 2 (P2): Depends on User Story 1`: story → the stories it waits for.
    story_deps: HashMap<u32, Vec<u32>>,
    /// `Phase 4 depends on Phase 2`, `Foundational (Phase 2): Depends on Setup`: a phase (by
    /// its subject as written) → what it waits for.
    phase_deps: Vec<(PhaseWord, Vec<PhaseWord>)>,
    /// `T012 depends on T010`, `T016 blocks T017–T018`, `T031 follows T030`: the phrase that
    /// waits, the phrase waited for, with their offsets in the text.
    task_facts: Vec<TaskFact>,
}

/// How the section names a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PhaseWord {
    /// `Phase 3`, `Phase 3.2`
    Number(String),
    /// `Setup`, `Foundational`, `Polish`: the first word of a phase's name.
    Name(String),
    /// `User Story 2`, `US2`
    Story(u32),
    /// `all user stories`
    AllStories,
}

/// The lines of the dependencies section, with their offsets.
fn dependency_section(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        let line = line.trim_end_matches(['\n', '\r']);
        let l = line.trim().to_ascii_lowercase();
        if l.starts_with("## ") {
            in_section = l.contains("dependencies") || l.contains("execution order");
            continue;
        }
        if in_section {
            out.push((at, line));
        }
    }
    out
}

/// `user story 2` / `us2` at `at` in a lowercased text: the story number.
fn story_number(lower: &str) -> Option<u32> {
    let rest = lower
        .strip_prefix("user story ")
        .or_else(|| lower.strip_prefix("us"))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// Every phase a (lowercased) phrase names, in order.
fn phase_words(phrase: &str, names: &[String]) -> Vec<PhaseWord> {
    let mut out = Vec::new();
    let words: Vec<(usize, &str)> = phrase
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '+'))
        .scan(0usize, |pos, w| {
            let at = phrase[*pos..].find(w).map_or(*pos, |k| *pos + k);
            *pos = at + w.len();
            Some((at, w))
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    for (k, &(at, w)) in words.iter().enumerate() {
        let w = w.trim_end_matches('.');
        let next = words.get(k + 1).map(|(_, n)| n.trim_end_matches('.'));
        let word = if w == "phase" {
            // `Phase 3+` names many phases: not one to wait for.
            next.filter(|n| {
                !n.ends_with('+')
                    && n.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|n| PhaseWord::Number(n.to_owned()))
        } else if w == "user" || (w.starts_with("us") && w.len() > 2) {
            story_number(&phrase[at..])
                .map(PhaseWord::Story)
                .or_else(|| {
                    phrase[at..]
                        .starts_with("user stories")
                        .then_some(PhaseWord::AllStories)
                })
        } else if names.iter().any(|n| n == w) {
            Some(PhaseWord::Name(w.to_owned()))
        } else {
            None
        };
        if let Some(word) = word
            && !out.contains(&word)
        {
            out.push(word);
        }
    }
    out
}

/// Reads the section's facts; `names` are the first words of the phases' names (`setup`).
fn section_facts(text: &str, names: &[String]) -> SectionFacts {
    let mut facts = SectionFacts::default();
    for (at, line) in dependency_section(text) {
        let l = line.to_ascii_lowercase();
        let body = l.trim_start().trim_start_matches(['-', '*', ' ']);
        let mentions_stories = l.contains("stor");
        if mentions_stories
            && (l.contains("parallel")
                || l.contains("independent")
                || l.contains("no other story")
                || l.contains("on other stories")
                || l.contains("on other user stories"))
        {
            facts.stories_parallel = true;
        }
        // Task facts, clause by clause: `T016 blocks T017–T018; T018 blocks T019–T021`.
        let mut clause_at = 0;
        for clause in line.split(';') {
            let c_at = at + clause_at;
            clause_at += clause.len() + 1;
            let lower = clause.to_ascii_lowercase();
            for (key, reversed) in [
                (" depends on ", false),
                (" depend on ", false),
                (" follows ", false),
                (" blocks ", true),
            ] {
                let Some(k) = lower.find(key) else { continue };
                let subject = &clause[..k];
                // The subject is the last few words before the verb: `Admin endpoints (T020)`.
                let subject_from = subject.rfind([':', ',']).map_or(0, |i| i + 1);
                // The objects end where the prose goes on: `T001 before T002 – the directory`.
                let tail = &clause[k + key.len()..];
                let object_to = [" – ", " — ", ". "]
                    .iter()
                    .filter_map(|sep| tail.find(sep))
                    .min()
                    .map_or(clause.len(), |e| k + key.len() + e);
                let who = (subject[subject_from..].to_owned(), c_at + subject_from);
                let on = (
                    clause[k + key.len()..object_to].to_owned(),
                    c_at + k + key.len(),
                );
                facts
                    .task_facts
                    .push(if reversed { (on, who) } else { (who, on) });
                break;
            }
        }
        // Phase and story facts: `<subject>: Depends on <objects>`.
        let Some(k) = body.find("depend") else {
            continue;
        };
        let (subject, rest) = body.split_at(k);
        if subject.contains("independent") {
            continue;
        }
        let rest = rest
            .trim_start_matches("depends")
            .trim_start_matches("depend")
            .trim_start();
        let Some(objects) = rest.strip_prefix("on ") else {
            continue;
        };
        let objects = objects
            .split(['–', '—', ';'])
            .next()
            .unwrap_or("")
            .split(" - ")
            .next()
            .unwrap_or("");
        let subjects = phase_words(subject, names);
        let objects = phase_words(objects, names);
        if objects.is_empty() {
            continue;
        }
        match subjects.as_slice() {
            [PhaseWord::Story(n), ..] => {
                let on: Vec<u32> = objects
                    .iter()
                    .filter_map(|o| match o {
                        PhaseWord::Story(m) if m != n => Some(*m),
                        _ => None,
                    })
                    .collect();
                if !on.is_empty() {
                    facts.story_deps.entry(*n).or_default().extend(on);
                }
            }
            // `Foundational (Phase 2)`: the number names it best.
            [first, ..] => {
                let subject = subjects
                    .iter()
                    .find(|w| matches!(w, PhaseWord::Number(_)))
                    .unwrap_or(first)
                    .clone();
                if !matches!(subject, PhaseWord::AllStories) {
                    facts.phase_deps.push((subject, objects));
                }
            }
            [] => {}
        }
    }
    facts
}

fn as_group_warning(mut d: Diagnostic) -> Diagnostic {
    d.severity = crate::error::Severity::Warning;
    d.label = Some("ignored in the execution strategy".to_owned());
    d
}

fn contradiction(
    list: &TaskList,
    phrase: &DepPhrase,
    what: &str,
    task: usize,
    on: usize,
    count: usize,
) -> Diagnostic {
    let (from, to) = (&list.tasks[task].id, &list.tasks[on].id);
    let more = if count > 1 {
        format!(" (and {} more)", count - 1)
    } else {
        String::new()
    };
    Diagnostic::warning(format!(
        "the {what} says task {from} waits for {to}, but {to} already waits for {from}{more}"
    ))
    .at(list.location(phrase.offset, phrase.text.len()))
    .label("ignored where it contradicts the tasks' own dependencies")
    .help("move the task under the right heading, or make the dependencies agree")
}

/// spec-kit's phases: the plan's leaves by phase, in document order, each with the `## Phase N:`
/// section that holds it (a phase holds the sections under it, `### Tests for User Story 1`).
fn speckit_phases(list: &TaskList) -> Vec<(Option<usize>, Vec<usize>)> {
    let phase_of = phase_sections(list);
    let mut phases: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for t in list.leaves() {
        // A section under no phase groups its own tasks.
        let section = list.tasks[t].section.map(|s| phase_of[s].unwrap_or(s));
        match phases.last_mut() {
            Some((s, members)) if *s == section => members.push(t),
            _ => phases.push((section, vec![t])),
        }
    }
    phases
}

/// The `## Phase N:` section each section is, or is under (`### Tests for User Story 1`);
/// `None` for a section under no phase. Indexed by section.
pub(super) fn phase_sections(list: &TaskList) -> Vec<Option<usize>> {
    let mut phase_of: Vec<Option<usize>> = Vec::with_capacity(list.sections.len());
    let mut current: Option<usize> = None;
    for (k, section) in list.sections.iter().enumerate() {
        let is_phase = section.title.to_ascii_lowercase().starts_with("phase");
        match current {
            Some(p) if !is_phase && section.level > list.sections[p].level => {
                phase_of.push(Some(p));
            }
            _ => {
                current = is_phase.then_some(k);
                phase_of.push(current);
            }
        }
    }
    phase_of
}

/// How the dependencies section may name phase section `s`: `Phase 3`, `Setup`, `User Story 1`.
fn phase_names(list: &TaskList, s: Option<usize>) -> Vec<PhaseWord> {
    let Some(s) = s else { return Vec::new() };
    let title = list.sections[s].title.to_ascii_lowercase();
    let mut words = Vec::new();
    if let Some(rest) = title.strip_prefix("phase ") {
        let (number, name) = rest.split_once(':').unwrap_or((rest, ""));
        words.push(PhaseWord::Number(number.trim().to_owned()));
        let name = name.trim();
        if let Some(n) = name
            .find("user story ")
            .and_then(|at| story_number(&name[at..]))
        {
            words.push(PhaseWord::Story(n));
        } else if let Some(first) = name.split(|c: char| !c.is_ascii_alphanumeric()).next()
            && !first.is_empty()
        {
            words.push(PhaseWord::Name(first.to_owned()));
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use crate::spec::model::DepSource;
    use crate::spec::parse_bytes;

    fn messages(text: &str) -> Vec<(bool, String)> {
        parse_bytes("tasks.md", text.as_bytes().to_vec())
            .diagnostics
            .iter()
            .map(|d| (d.is_error(), d.message.clone()))
            .collect()
    }

    /// The pending tasks each task waits for, by id.
    fn waits(text: &str) -> Vec<(String, Vec<String>)> {
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        assert!(!list.has_errors(), "{:?}", list.diagnostics);
        list.tasks
            .iter()
            .map(|t| {
                let on = t.deps.iter().map(|e| list.tasks[e.on].id.clone()).collect();
                (t.id.clone(), on)
            })
            .collect()
    }

    #[test]
    fn spec_kit_phases_keep_their_order_around_done_tasks() {
        let text = "## Phase 1: Setup\n- [ ] T001 A\n- [x] T002 B\n\n## Phase 2: Foundational\n\
                    - [ ] T003 C\n- [x] T004 D\n\n## Phase 3: Polish\n- [ ] T005 E\n";
        let w = waits(text);
        let on = |id: &str| {
            w.iter()
                .find(|(t, _)| t == id)
                .map(|(_, o)| o.clone())
                .unwrap()
        };
        assert_eq!(on("T001"), Vec::<String>::new());
        assert_eq!(on("T003"), ["T001"]);
        assert_eq!(on("T005"), ["T003"]);
    }

    #[test]
    fn deep_dependency_bullets_of_the_old_spec_kit_template_count() {
        let text = "## Phase 3.1: Setup\n- [ ] T001 Structure\n      - Dependency: none\n\
                    - [ ] T002 [P] Docs\n- [ ] T003 [P] Lint\n      - Dependency: T001\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        let t3 = &list.tasks[list.find("T003").unwrap()];
        let own: Vec<&str> = t3
            .deps
            .iter()
            .filter(|e| e.source == DepSource::Task)
            .map(|e| list.tasks[e.on].id.as_str())
            .collect();
        assert_eq!(own, ["T001"]);
    }

    #[test]
    fn a_range_over_ids_of_different_depths_runs_in_document_order() {
        let text = "- [ ] 1. A\n- [ ] 1.1 A1\n- [ ] 1.2 A2\n- [ ] 2. B\n- [ ] 3. C\n  - _Dependencies: Tasks 1.1-2_\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        assert!(!list.has_errors(), "{:?}", list.diagnostics);
        let three = &list.tasks[list.find("3").unwrap()];
        let on: Vec<&str> = three
            .deps
            .iter()
            .map(|e| list.tasks[e.on].id.as_str())
            .collect();
        assert_eq!(on, ["1.1", "1.2", "2"]);
    }

    #[test]
    fn a_done_barrier_keeps_two_p_runs_apart() {
        let text = "## Phase 1: Setup\n- [ ] T001 [P] A\n- [ ] T002 [P] B\n- [x] T003 C\n\
                    - [ ] T004 [P] D\n- [ ] T005 [P] E\n";
        let w = waits(text);
        let on = |id: &str| {
            w.iter()
                .find(|(t, _)| t == id)
                .map(|(_, o)| o.clone())
                .unwrap()
        };
        assert_eq!(on("T004"), ["T001", "T002"]);
        assert_eq!(on("T005"), ["T001", "T002"]);
    }

    #[test]
    fn user_stories_run_together_only_when_the_dependencies_section_says_so() {
        let stories = "## Phase 1: Foundational\n- [ ] T001 Base\n\n\
            ## Phase 2: User Story 1 - A\n- [ ] T002 [US1] Warm the cache in parallel with startup\n\n\
            ## Phase 3: User Story 2 - B\n- [ ] T003 [US2] Two\n\n## Dependencies & Execution Order\n\n";
        let on = |text: &str, id: &str| {
            waits(text)
                .into_iter()
                .find(|(t, _)| t == id)
                .map(|(_, o)| o)
                .unwrap()
        };
        // A task's words do not count; only the section does.
        assert_eq!(on(stories, "T003"), ["T002"]);
        let parallel = format!("{stories}- User stories can then proceed in parallel\n");
        assert_eq!(on(&parallel, "T003"), ["T001"]);
        let depends = format!("{parallel}- User Story 2 (P2): Depends on User Story 1\n");
        assert_eq!(on(&depends, "T003"), ["T002"]);
    }

    #[test]
    fn task_facts_of_the_dependencies_section_are_edges() {
        let text = "## Phase 1: Setup\n- [ ] T001 [P] A\n- [ ] T002 [P] B\n- [ ] T003 [P] C\n\
                    - [ ] T004 [P] D\n- [ ] T005 [P] E\n\n## Dependencies\n\
                    - T001 blocks T003–T004; T005 follows T002\n\
                    - Admin endpoints (T002) depend on domain services (T001) – see plan.md\n";
        let w = waits(text);
        let on = |id: &str| {
            let mut o = w
                .iter()
                .find(|(t, _)| t == id)
                .map(|(_, o)| o.clone())
                .unwrap();
            o.sort();
            o
        };
        assert_eq!(on("T001"), Vec::<String>::new());
        assert_eq!(on("T002"), ["T001"]);
        assert_eq!(on("T003"), ["T001"]);
        assert_eq!(on("T004"), ["T001"]);
        assert_eq!(on("T005"), ["T002"]);
    }

    #[test]
    fn a_renamed_duplicate_keeps_its_own_sub_tasks() {
        let text =
            "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 2. Again\n- [ ] 2.1 Its part\n- [ ] 3. Three\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        let shape: Vec<(&str, Option<&str>)> = list
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.parent.map(|p| list.tasks[p].id.as_str())))
            .collect();
        assert_eq!(
            shape,
            [
                ("1", None),
                ("2", None),
                ("2@2", None),
                ("2@2.1", Some("2@2")),
                ("3", None)
            ]
        );
    }

    #[test]
    fn a_trigger_alone_makes_a_conditional_task() {
        let text = "- [ ] 1. Build\n- [ ] CR-A. Review\n  - _Dependencies: Task 1_\n\
                    - [ ] RW-A. Rework\n  - _Trigger: Only if CR-A status is \"Requires changes\"_\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        let rw = &list.tasks[list.find("RW-A").unwrap()];
        let condition: Vec<&str> = rw.condition().map(|c| list.tasks[c].id.as_str()).collect();
        assert_eq!(condition, ["CR-A"]);
    }

    #[test]
    fn a_leading_rule_is_not_front_matter() {
        let list = parse_bytes(
            "tasks.md",
            b"---\n\n# Tasks\n\n- [ ] 1. A\n\n---\n\n- [ ] 2. B\n".to_vec(),
        );
        assert_eq!(list.front_matter, None);
        assert_eq!(list.leaves().count(), 2);
        for fm in [
            "---\ntitle: x\n---\n",
            "---\n\"title\": x\n$schema: y\nfeature.name: z\nsteps:\n  - [build, test]\n---\n",
            "---\n---\n",
            "---\n# only a comment\n---\n",
            "+++\ntitle = \"x\"\n+++\n",
        ] {
            let with = parse_bytes("tasks.md", format!("{fm}- [ ] 1. A\n").into_bytes());
            assert!(with.front_matter.is_some(), "{fm}");
        }
        let prose = parse_bytes(
            "tasks.md",
            b"---\n**Goal**: add login\nScope: backend\n---\n- [ ] 1. A\n".to_vec(),
        );
        assert_eq!(prose.front_matter, None);
    }

    #[test]
    fn a_heading_task_keeps_its_code_blocks() {
        let text = "#### Task 1.1: Build\n- [ ] Compile\n  ```sh\n  make\n  ```\n- [ ] Test\n\n```sh\nmake test\n```\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        let task = &list.tasks[list.find("1.1").unwrap()];
        let code: Vec<&str> = task.code_blocks.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(code, ["make", "make test"]);
        assert_eq!(task.steps.len(), 2);
    }

    #[test]
    fn dialects_are_told_apart() {
        use crate::spec::model::Dialect;
        let dialect = |text: &str| parse_bytes("tasks.md", text.as_bytes().to_vec()).dialect;
        assert_eq!(
            dialect("- [ ] 1. A\n  - _Requirements: 1.1_\n"),
            Dialect::Kiro
        );
        assert_eq!(dialect("- [ ] T001 [P] A\n"), Dialect::SpecKit);
        assert_eq!(
            dialect("- [ ] 1. A\n  - File: src/a.rs\n  - _Leverage: src/b.rs_\n"),
            Dialect::SpecWorkflow
        );
        assert_eq!(
            dialect("### Track A: X (No Dependencies)\n- [ ] 1. A\n"),
            Dialect::Specflow
        );
        assert_eq!(
            dialect("- [ ] 1. A\n  - _Depends: 2_\n- [ ] 2. B\n"),
            Dialect::CcSdd
        );
        assert_eq!(
            dialect("## 1. Setup\n\n- [ ] 1.1 (P) A\n- [ ] 1.2 (P) B\n"),
            Dialect::CcSdd
        );
        assert_eq!(dialect("- [ ] 1. A [P]\n- [ ] 2. B\n"), Dialect::Kiro);
        // Without `(P)` or `_Depends:_`, a cc-sdd list runs in document order, and says so.
        let plain = parse_bytes(
            "tasks.md",
            b"- [ ] 1. A\n  - _Boundary: src/a.rs_\n- [ ] 2. B\n".to_vec(),
        );
        assert_eq!(plain.dialect, Dialect::CcSdd);
        assert!(!plain.has_dependency_info);
        assert_eq!(
            dialect("## Implementation Phases\n\n- [ ] 1.1: A\n"),
            Dialect::Specflow
        );
    }

    #[test]
    fn a_trigger_about_other_things_adds_no_condition() {
        let text = "- [ ] DB-1. Migrate\n- [ ] 3. Restore\n  - _Trigger: Only if the migration in DB-1 fails_\n\
                    - [ ] CR-A. Review\n- [ ] 2. Publish\n  - _Trigger: After CR-A approves, with no changes requested_\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        for id in ["3", "2"] {
            let t = &list.tasks[list.find(id).unwrap()];
            assert_eq!(t.condition().count(), 0, "{id}");
        }
    }

    #[test]
    fn a_referenced_sub_task_of_a_renamed_duplicate_keeps_its_id() {
        let text = "- [ ] 1. One\n- [ ] 2. Two\n- [ ] 2. Again\n  - [ ] 2.1 Part\n- [ ] 3. Three\n  - _Dependencies: 2.1_\n";
        let list = parse_bytes("tasks.md", text.as_bytes().to_vec());
        assert!(!list.has_errors(), "{:?}", list.diagnostics);
        let three = &list.tasks[list.find("3").unwrap()];
        assert_eq!(list.tasks[three.deps[0].on].id, "2.1");
    }

    #[test]
    fn an_unknown_dependency_of_a_done_task_is_only_a_warning() {
        let done = "- [x] 1. A\n  - _Dependencies: CR2_\n- [ ] 2. B\n  - _Dependencies: Task 1_\n";
        assert_eq!(
            messages(done),
            [(false, "dependency on unknown task `CR2`".to_owned())]
        );
        let pending = done.replace("[x]", "[ ]");
        assert_eq!(
            messages(&pending),
            [(true, "dependency on unknown task `CR2`".to_owned())]
        );
    }
}
