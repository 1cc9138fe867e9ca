//! The execution plan: a DAG of the pending tasks selected for this run, cut into dependency
//! levels ("groups"), with the critical path and the tasks that cannot run.
//!
//! Pure: it reads a validated [`TaskList`] and decides; running is someone else's job.

pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::error::{Diagnostic, Error, Result};
use crate::spec::TaskList;
use crate::spec::deps::Requirement;
use crate::spec::model::{DepSource, Edge, TaskState};

/// What the user selected.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--track`: only these tracks (empty = every task).
    pub tracks: Vec<String>,
    pub max_agents: usize,
    /// `--skip-optional`: leave out optional tasks (`- [ ]* 2.3`); what waits for them does not.
    pub skip_optional: bool,
    /// `--overlap`: what to do about tasks that may run together but declare the same file.
    pub overlap: Overlap,
}

/// What the plan does about two tasks that may run at the same time (neither waits for the
/// other) and declare the same file: `--overlap`, `overlap` in the configuration. `Warn` warns
/// at the later task and lets them run together; `Serialize` orders them: the later task in the
/// document waits for the earlier one and builds on its branch.
// (No doc comments on the variants: clap would show them, in the long help layout.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Overlap {
    #[default]
    Warn,
    Serialize,
}

impl Overlap {
    /// The names as the command line and the configuration write them.
    pub const NAMES: [&'static str; 2] = ["warn", "serialize"];

    pub fn from_name(name: &str) -> Option<Overlap> {
        match name {
            "warn" => Some(Overlap::Warn),
            "serialize" => Some(Overlap::Serialize),
            _ => None,
        }
    }
}

/// An order `--overlap serialize` added: `task` waits for `after`, since both declare `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    /// The later task in the document.
    pub task: usize,
    /// The earlier one.
    pub after: usize,
    /// The files both declare.
    pub files: Vec<String>,
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
    /// With `--overlap serialize`, the orders added between such tasks instead of warnings
    /// (already in the nodes' `deps`; [`Plan::add_orderings`] puts them in the list too).
    pub orderings: Vec<Ordering>,
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
    /// `cargo spec-exec deps <feature>` can find which of them are independent. Not when
    /// `--overlap serialize` made it one: the tasks were asked to wait for each other.
    pub fn chain_note(&self, feature: &str) -> Option<String> {
        (self.nodes.len() > 3
            && self.orderings.is_empty()
            && self.levels.iter().all(|l| l.len() == 1))
        .then(|| {
            format!(
                "the {} pending tasks run one after another (one chain), one agent at a time; \
                 `cargo spec-exec deps {feature}` asks the agent which of them depend on which, \
                 and writes its answer into tasks.md for you to review",
                self.nodes.len()
            )
        })
    }

    /// The orders `--overlap serialize` added, as the list's dependencies of their own
    /// ([`DepSource::Overlap`]): the run builds each such task on the branch of the task it
    /// now waits for, and the JSON plan shows them with the task's other dependencies.
    pub fn add_orderings(&self, list: &mut TaskList) {
        for o in &self.orderings {
            let deps = &mut list.tasks[o.task].deps;
            if !deps.iter().any(|e| e.on == o.after) {
                let at = deps.partition_point(|e| e.on < o.after);
                deps.insert(
                    at,
                    Edge {
                        on: o.after,
                        requirement: Requirement::Done,
                        source: DepSource::Overlap,
                    },
                );
            }
        }
    }

    /// For `--overlap serialize`, what it ordered: `1 ordering added … : 2 after 1 (src/lib.rs)`.
    pub fn orderings_note(&self, list: &TaskList) -> Option<String> {
        if self.orderings.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .orderings
            .iter()
            .map(|o| {
                format!(
                    "{} after {} ({})",
                    list.tasks[o.task].id,
                    list.tasks[o.after].id,
                    o.files.join(", ")
                )
            })
            .collect();
        let n = each.len();
        Some(format!(
            "{n} {} added for tasks that declare the same files (overlap: serialize): {}",
            if n == 1 { "ordering" } else { "orderings" },
            each.join("; ")
        ))
    }

    /// The plan of `--task`: only the nodes of `keep`, each waiting only for the others of
    /// `keep` (what else it waits for was done before), and nothing blocked.
    pub fn only(&self, keep: &BTreeSet<usize>) -> Plan {
        let mut nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| keep.contains(&n.task))
            .map(|n| Node {
                task: n.task,
                deps: n
                    .deps
                    .iter()
                    .copied()
                    .filter(|d| keep.contains(d))
                    .collect(),
                level: n.level,
            })
            .collect();
        // The levels again, over what is kept: the old levels are a topological order.
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| nodes[i].level);
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        for i in order {
            let l = 1 + nodes[i]
                .deps
                .iter()
                .filter_map(|d| level.get(d))
                .max()
                .copied()
                .unwrap_or(0);
            level.insert(nodes[i].task, l);
            nodes[i].level = l;
        }
        let depth = nodes.iter().map(|n| n.level).max().unwrap_or(0);
        let mut levels = vec![Vec::new(); depth];
        for n in &nodes {
            levels[n.level - 1].push(n.task);
        }
        Plan {
            nodes,
            levels,
            critical_path: self
                .critical_path
                .iter()
                .copied()
                .filter(|t| keep.contains(t))
                .collect(),
            blocked: Vec::new(),
            orderings: Vec::new(),
            warnings: Vec::new(),
            left_out: Vec::new(),
            ..self.clone()
        }
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

    // What each task that can run waits for, within the plan.
    let mut deps_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        if blocked[i].is_some() {
            continue;
        }
        // A left-out optional task passes on what it waited for: with 2.2 left out, 2.3
        // still runs after 2.1.
        let mut deps: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = list.tasks[i].deps.iter().map(|e| e.on).collect();
        let mut seen = HashSet::new();
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
        deps_of.insert(i, deps);
    }
    let (warnings, orderings) = file_overlaps(list, &mut deps_of, options.overlap);

    // Levels and the critical path over what can run.
    let mut level = vec![0usize; n];
    let mut chain = vec![0usize; n];
    let mut best_dep: Vec<Option<usize>> = vec![None; n];
    let mut nodes = Vec::new();
    for i in runnable_order(&deps_of) {
        let deps = deps_of.remove(&i).unwrap_or_default();
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
    Ok(Plan {
        nodes,
        levels,
        critical_path,
        blocked: blocked_list,
        done,
        tracks,
        sequential: !list.has_dependency_info,
        max_agents: options.max_agents,
        left_out,
        warnings,
        orderings,
    })
}

/// The tasks of `deps` (task → what it waits for) in an order where each comes after what it
/// waits for, document order among equals.
fn runnable_order(deps: &BTreeMap<usize, Vec<usize>>) -> Vec<usize> {
    let mut waiting: BTreeMap<usize, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&t, on) in deps {
        waiting.insert(t, on.len());
        for &d in on {
            dependents.entry(d).or_default().push(t);
        }
    }
    let mut ready: BTreeSet<usize> = waiting
        .iter()
        .filter(|&(_, &w)| w == 0)
        .map(|(&t, _)| t)
        .collect();
    let mut out = Vec::with_capacity(deps.len());
    while let Some(t) = ready.pop_first() {
        out.push(t);
        for d in dependents.get(&t).into_iter().flatten() {
            if let Some(w) = waiting.get_mut(d) {
                *w -= 1;
                if *w == 0 {
                    ready.insert(*d);
                }
            }
        }
    }
    debug_assert_eq!(out.len(), deps.len(), "cycle in a plan");
    out
}

/// Two tasks of the plan that may run at the same time (neither waits for the other, directly
/// or not) and declare the same file. With [`Overlap::Warn`], a warning each pair, at the later
/// task. With [`Overlap::Serialize`], the later task waits for the earlier one instead (added to
/// `deps`): each task in document order, with the tasks before it from the nearest back, so
/// that three tasks on one file make one chain. A pair is ordered only while neither waits for
/// the other, which is also why an added order never closes a cycle; a pair an earlier order
/// already put one after the other gets none.
fn file_overlaps(
    list: &TaskList,
    deps: &mut BTreeMap<usize, Vec<usize>>,
    mode: Overlap,
) -> (Vec<Diagnostic>, Vec<Ordering>) {
    let touches: BTreeMap<usize, Vec<String>> = deps
        .keys()
        .map(|&t| (t, list.tasks[t].touches()))
        .filter(|(_, files)| !files.is_empty())
        .collect();
    if touches.len() < 2 {
        return (Vec::new(), Vec::new());
    }
    // What each of them waits for, directly or not, within the plan: kept whole as orders
    // are added.
    let mut waits: BTreeMap<usize, HashSet<usize>> = touches
        .keys()
        .map(|&t| {
            let mut seen = HashSet::new();
            let mut stack = vec![t];
            while let Some(x) = stack.pop() {
                for &d in deps.get(&x).into_iter().flatten() {
                    if seen.insert(d) {
                        stack.push(d);
                    }
                }
            }
            (t, seen)
        })
        .collect();
    let with_files: Vec<usize> = touches.keys().copied().collect();
    let mut warnings = Vec::new();
    let mut orderings = Vec::new();
    for (j, &b) in with_files.iter().enumerate() {
        for &a in with_files[..j].iter().rev() {
            if waits[&b].contains(&a) || waits[&a].contains(&b) {
                continue;
            }
            let shared: Vec<String> = touches[&a]
                .iter()
                .filter(|f| touches[&b].contains(f))
                .cloned()
                .collect();
            if shared.is_empty() {
                continue;
            }
            match mode {
                Overlap::Serialize => {
                    if let Some(d) = deps.get_mut(&b) {
                        let at = d.partition_point(|&x| x < a);
                        d.insert(at, a);
                    }
                    // Whatever waits for `b` (and `b` itself) now waits for `a` and all `a`
                    // waits for.
                    let mut gained = waits[&a].clone();
                    gained.insert(a);
                    for (&t, w) in &mut waits {
                        if t == b || w.contains(&b) {
                            w.extend(gained.iter().copied());
                        }
                    }
                    orderings.push(Ordering {
                        task: b,
                        after: a,
                        files: shared,
                    });
                }
                Overlap::Warn => {
                    let (ia, ib) = (&list.tasks[a].id, &list.tasks[b].id);
                    let task = &list.tasks[b];
                    let at = list.id_offset(b);
                    warnings.push((
                        (b, a),
                        Diagnostic::warning(format!(
                            "tasks {ia} and {ib} both modify {} and may run together; add a dependency",
                            shared.join(", ")
                        ))
                        .at(list.location(at, task.id.len().max(1)))
                        .help(format!(
                            "make {ib} wait for {ia} (or the other way round), so that their changes do not conflict, or have such tasks ordered with `--overlap serialize` (`overlap = \"serialize\"` in the configuration)"
                        )),
                    ));
                }
            }
        }
    }
    // By the later task, then the earlier.
    warnings.sort_by_key(|(pair, _)| *pair);
    (warnings.into_iter().map(|(_, d)| d).collect(), orderings)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_of_some_tasks_waits_only_within_them_and_is_levelled_again() {
        let md = "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n- [ ] 2. Two\n  - _Dependencies: Task 1_\n- [ ] 3. Three\n  - _Dependencies: Task 2_\n- [ ] 4. Four\n  - _Dependencies: Task 3_\n";
        let list = crate::spec::parse_bytes("tasks.md", md.as_bytes().to_vec());
        let plan = build(
            &list,
            &Options {
                max_agents: 4,
                ..Options::default()
            },
        )
        .unwrap();
        let at = |id: &str| list.find(id).unwrap();
        let only = plan.only(&[at("2"), at("4")].into_iter().collect());
        let nodes: Vec<(usize, Vec<usize>, usize)> = only
            .nodes
            .iter()
            .map(|n| (n.task, n.deps.clone(), n.level))
            .collect();
        assert_eq!(nodes, [(at("2"), vec![], 1), (at("4"), vec![], 1)]);
        assert_eq!(only.levels, [vec![at("2"), at("4")]]);
        let only = plan.only(&[at("2"), at("3")].into_iter().collect());
        assert_eq!(only.levels, [vec![at("2")], vec![at("3")]]);
        assert!(only.blocked.is_empty());
    }
}
