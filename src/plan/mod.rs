//! The execution plan: a DAG of the pending tasks selected for this run, cut into dependency
//! levels ("groups"), with the critical path and the tasks that cannot run.
//!
//! Pure: it reads a validated [`TaskList`] and decides; running is someone else's job.

pub mod render;

use crate::error::{Diagnostic, Error, Result};
use crate::spec::TaskList;
use crate::spec::model::TaskState;

/// What the user selected.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--track`: only these tracks (empty = every task).
    pub tracks: Vec<String>,
    pub max_agents: usize,
    /// `--skip-optional`: leave out optional tasks (`- [ ]* 2.3`); what waits for them does not.
    pub skip_optional: bool,
}

/// Why a selected pending task cannot run in this plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// It waits for unfinished tasks outside the selected tracks.
    OutsideTracks { waits_for: Vec<usize> },
    /// Its box says `[~]`.
    NotRunnable,
    /// It waits for a task that cannot run.
    WaitsForBlocked { on: usize },
}

/// A task that will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub task: usize,
    /// Pending tasks of this plan it waits for.
    pub deps: Vec<usize>,
    /// 1-based dependency level.
    pub level: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Tasks that will run, in document order.
    pub nodes: Vec<Node>,
    /// Task indices per level (level 1 first), in document order.
    pub levels: Vec<Vec<usize>>,
    /// The longest chain of tasks, first to last.
    pub critical_path: Vec<usize>,
    /// Selected pending tasks that cannot run, with why.
    pub blocked: Vec<(usize, Blocked)>,
    /// Selected executable tasks already done.
    pub done: usize,
    /// The selected tracks (normalised), empty for all.
    pub tracks: Vec<String>,
    /// No dependency information: tasks run in document order.
    pub sequential: bool,
    pub max_agents: usize,
    /// Optional tasks left out by `--skip-optional`.
    pub left_out: Vec<usize>,
    /// Tasks that may run at the same time but declare the same file (or cc-sdd boundary).
    pub warnings: Vec<Diagnostic>,
}

impl Plan {
    pub fn pending(&self) -> usize {
        self.nodes.len() + self.blocked.len()
    }

    /// The node of `task`: `nodes` is sorted by task (see [`build`]).
    pub fn node(&self, task: usize) -> Option<&Node> {
        let i = self.nodes.binary_search_by_key(&task, |n| n.task).ok()?;
        self.nodes.get(i)
    }

    /// For a plan that is one chain of more than three tasks: a note saying so, and that
    /// `cargo spec-exec deps <feature>` can find which of them are independent.
    pub fn chain_note(&self, feature: &str) -> Option<String> {
        (self.nodes.len() > 3 && self.levels.iter().all(|l| l.len() == 1)).then(|| {
            format!(
                "the {} pending tasks run one after another (one chain), one agent at a time; \
                 `cargo spec-exec deps {feature}` asks the agent which of them depend on which, \
                 and writes its answer into tasks.md for you to review",
                self.nodes.len()
            )
        })
    }

    /// The most agents that can be busy at once: the widest level, capped by `--max-agents`.
    pub fn agents(&self) -> usize {
        let widest = self.levels.iter().map(Vec::len).max().unwrap_or(0);
        widest.min(self.max_agents)
    }
}

/// Builds the plan. The list must have no errors.
pub fn build(list: &TaskList, options: &Options) -> Result<Plan> {
    debug_assert!(!list.has_errors(), "plan built from a list with errors");
    let tracks = select_tracks(list, &options.tracks)?;
    let selected = |i: usize| {
        tracks.is_empty()
            || list
                .track_of(i)
                .is_some_and(|t| tracks.iter().any(|s| s == t))
    };
    let n = list.tasks.len();
    let mut done = 0;
    let mut pending = Vec::new();
    let mut left_out = Vec::new();
    for i in list.leaves() {
        if !selected(i) {
            continue;
        }
        if list.tasks[i].state == TaskState::Done {
            done += 1;
        } else if options.skip_optional && list.tasks[i].optional {
            left_out.push(i);
        } else {
            pending.push(i);
        }
    }

    // Decide what is blocked, in dependency order so that blocking spreads.
    let order = topological(list, &pending);
    let mut blocked: Vec<Option<Blocked>> = vec![None; n];
    let mut is_pending = vec![false; n];
    for &i in &pending {
        is_pending[i] = true;
    }
    let mut is_left_out = vec![false; n];
    for &i in &left_out {
        is_left_out[i] = true;
    }
    for &i in &order {
        let task = &list.tasks[i];
        if task.state == TaskState::Blocked {
            blocked[i] = Some(Blocked::NotRunnable);
            continue;
        }
        let outside: Vec<usize> = task
            .deps
            .iter()
            .map(|e| e.on)
            .filter(|&on| list.tasks[on].state != TaskState::Done && !selected(on))
            .collect();
        if !outside.is_empty() {
            blocked[i] = Some(Blocked::OutsideTracks { waits_for: outside });
            continue;
        }
        if let Some(on) = task
            .deps
            .iter()
            .map(|e| e.on)
            .find(|&on| is_pending[on] && blocked[on].is_some())
        {
            blocked[i] = Some(Blocked::WaitsForBlocked { on });
        }
    }

    // Levels and the critical path over what can run.
    let mut level = vec![0usize; n];
    let mut chain = vec![0usize; n];
    let mut best_dep: Vec<Option<usize>> = vec![None; n];
    let mut nodes = Vec::new();
    for &i in &order {
        if blocked[i].is_some() {
            continue;
        }
        // A left-out optional task passes on what it waited for: with 2.2 left out, 2.3
        // still runs after 2.1.
        let mut deps: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = list.tasks[i].deps.iter().map(|e| e.on).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(on) = stack.pop() {
            if !seen.insert(on) {
                continue;
            }
            if is_left_out[on] {
                stack.extend(list.tasks[on].deps.iter().map(|e| e.on));
            } else if is_pending[on] {
                deps.push(on);
            }
        }
        deps.sort_unstable();
        level[i] = 1 + deps.iter().map(|&d| level[d]).max().unwrap_or(0);
        if let Some(&d) = deps
            .iter()
            .max_by_key(|&&d| (chain[d], std::cmp::Reverse(d)))
        {
            chain[i] = chain[d] + 1;
            best_dep[i] = Some(d);
        } else {
            chain[i] = 1;
        }
        nodes.push(Node {
            task: i,
            deps,
            level: level[i],
        });
    }
    nodes.sort_by_key(|node| node.task);
    let depth = nodes.iter().map(|node| node.level).max().unwrap_or(0);
    let mut levels = vec![Vec::new(); depth];
    for node in &nodes {
        levels[node.level - 1].push(node.task);
    }
    let mut critical_path = Vec::new();
    let mut at = nodes
        .iter()
        .map(|node| node.task)
        .max_by_key(|&t| (chain[t], std::cmp::Reverse(t)));
    while let Some(t) = at {
        critical_path.push(t);
        at = best_dep[t];
    }
    critical_path.reverse();

    let mut blocked_list: Vec<(usize, Blocked)> = pending
        .iter()
        .filter_map(|&i| blocked[i].clone().map(|b| (i, b)))
        .collect();
    blocked_list.sort_by_key(|(i, _)| *i);
    let mut plan = Plan {
        nodes,
        levels,
        critical_path,
        blocked: blocked_list,
        done,
        tracks,
        sequential: !list.has_dependency_info,
        max_agents: options.max_agents,
        left_out,
        warnings: Vec::new(),
    };
    plan.warnings = file_overlaps(list, &plan);
    Ok(plan)
}

/// Two tasks of the plan that may run at the same time (neither waits for the other) and
/// declare the same file: a warning each pair, at the later task.
fn file_overlaps(list: &TaskList, plan: &Plan) -> Vec<Diagnostic> {
    let touches: std::collections::HashMap<usize, Vec<String>> = plan
        .nodes
        .iter()
        .map(|n| (n.task, list.tasks[n.task].touches()))
        .filter(|(_, files)| !files.is_empty())
        .collect();
    let mut with_files: Vec<usize> = touches.keys().copied().collect();
    with_files.sort_unstable();
    if with_files.len() < 2 {
        return Vec::new();
    }
    // What each of them waits for, directly or not, within the plan.
    let index: std::collections::HashMap<usize, usize> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| (n.task, k))
        .collect();
    let ancestors = |t: usize| {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            if let Some(&k) = index.get(&x) {
                for &d in &plan.nodes[k].deps {
                    if seen.insert(d) {
                        stack.push(d);
                    }
                }
            }
        }
        seen
    };
    let waits: Vec<std::collections::HashSet<usize>> =
        with_files.iter().map(|&t| ancestors(t)).collect();
    let mut out = Vec::new();
    for (j, &b) in with_files.iter().enumerate() {
        for (i, &a) in with_files[..j].iter().enumerate() {
            if waits[j].contains(&a) || waits[i].contains(&b) {
                continue;
            }
            let shared: Vec<&str> = touches[&a]
                .iter()
                .filter(|f| touches[&b].contains(f))
                .map(String::as_str)
                .collect();
            if shared.is_empty() {
                continue;
            }
            let (ia, ib) = (&list.tasks[a].id, &list.tasks[b].id);
            let task = &list.tasks[b];
            let at = list.id_offset(b);
            out.push(
                Diagnostic::warning(format!(
                    "tasks {ia} and {ib} both modify {} and may run together; add a dependency",
                    shared.join(", ")
                ))
                .at(list.location(at, task.id.len().max(1)))
                .help(format!(
                    "make {ib} wait for {ia} (or the other way round), so that their changes do not conflict"
                )),
            );
        }
    }
    out
}

/// Matches `--track` values to the file's tracks (`A`, `a`, `Track A`).
fn select_tracks(list: &TaskList, wanted: &[String]) -> Result<Vec<String>> {
    // Track headings, and spec-kit's story labels (`[US1]`).
    let mut known: Vec<&str> = list
        .sections
        .iter()
        .filter_map(|s| s.track.as_deref())
        .chain(list.tasks.iter().filter_map(|t| t.story.as_deref()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    known.retain(|k| seen.insert(*k));
    let mut out = Vec::new();
    for w in wanted {
        let name = w.trim();
        let name = name
            .strip_prefix("Track ")
            .or_else(|| name.strip_prefix("track "))
            .unwrap_or(name)
            .trim();
        match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(k) => {
                if !out.iter().any(|o: &String| o == k) {
                    out.push((*k).to_owned());
                }
            }
            None => {
                let help = if known.is_empty() {
                    "this task list has no `### Track X: …` headings or `[US1]` story labels; run without --track"
                        .to_owned()
                } else {
                    format!("tracks in this task list: {}", known.join(", "))
                };
                return Err(Error::user_with_help(
                    format!("no track `{w}` in this task list"),
                    help,
                ));
            }
        }
    }
    Ok(out)
}

/// `pending` in an order where every task comes after the pending tasks it waits for
/// (document order among equals). The list has no cycles.
fn topological(list: &TaskList, pending: &[usize]) -> Vec<usize> {
    let n = list.tasks.len();
    let mut in_set = vec![false; n];
    for &i in pending {
        in_set[i] = true;
    }
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &i in pending {
        for e in &list.tasks[i].deps {
            if in_set[e.on] {
                indegree[i] += 1;
                dependents[e.on].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = pending
        .iter()
        .copied()
        .filter(|&i| indegree[i] == 0)
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    debug_assert_eq!(out.len(), pending.len(), "cycle in a validated list");
    out
}
