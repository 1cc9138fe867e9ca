//! Parse speed on a large generated specflow task list.
//!
//! `cargo bench --bench parse [-- SIZE_IN_BYTES]` (default 1 MiB) times, as the median of N runs:
//! (a) markdown-rs alone building the tree of the whole file (GFM + front matter, the baseline),
//! (p) `spec::blocks::to_mdast`, the same tree from pieces parsed in parallel (checked equal),
//! (b) `spec::parse_bytes` (the tree, the walk and the dependency resolution), and
//! (c) `spec::parse_bytes` then `plan::build`.
//!
//! Then the inputs that once took markdown-rs seconds to minutes (or made it panic), each timed
//! through `spec::parse_bytes` as the median of a few runs and shown as a ratio to (a): those
//! beyond what a task list can be are refused with an error, the others parsed.
//!
//! `--no-track-deps` writes no `(Dependencies: Track X)` headings (every track heading names one
//! task instead), to separate the parse from the resolution of whole-track dependencies.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark harness reports on the terminal"
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cargo_spec_exec::plan;
use cargo_spec_exec::spec;

const DEFAULT_SIZE: usize = 1 << 20;
/// Time budget for all the runs (N runs of each of the four measurements).
const BUDGET: Duration = Duration::from_secs(24);
const MAX_RUNS: usize = 101;
const TASKS_PER_TRACK: usize = 40;
/// Runs of each hostile input.
const HOSTILE_RUNS: usize = 3;

/// splitmix64, so that the document is the same on every run.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const AREAS: &[&str] = &[
    "Storage",
    "HTTP API",
    "Authentication",
    "Scheduler",
    "Telemetry",
    "Configuration",
    "Command Line",
    "Migrations",
];

const VERBS: &[&str] = &[
    "Implement",
    "Add",
    "Wire up",
    "Refactor",
    "Test",
    "Document",
    "Harden",
];

const THINGS: &[&str] = &[
    "the session store",
    "token refresh",
    "the retry policy",
    "rate limiting",
    "the metrics exporter",
    "schema validation",
    "the config loader",
    "graceful shutdown",
    "the job queue",
    "pagination",
];

const DETAILS: &[&str] = &[
    "Define the `SessionStore` trait with `get`, `put` and `evict`; keep it object safe",
    "Return `Error::NotFound` for a missing key instead of panicking",
    "Cover the happy path and the three error paths with unit tests",
    "Add a property test: any sequence of `put`/`evict` keeps the size under the cap",
    "Log at `debug` on every retry with the attempt number and the delay",
    "Read the limits from `[service.limits]` in the config, with the defaults from design.md",
    "Keep the public API in `src/lib.rs` small; everything else is `pub(crate)`",
    "Measure p99 latency with the load-test script before and after",
    "Update the README section on configuration with the new keys",
    "Make the operation idempotent: running it twice leaves the same state",
    "Use `tokio::time::timeout` around the network call (default 5 s)",
    "Emit a `tracing` span per request with the route and the status code",
    "Migrate the existing rows in one transaction; roll back on the first error",
    "Validate inputs at the boundary; inner functions take checked types",
];

const REQUIREMENTS: &[&str] = &[
    "1.1", "1.2", "2.1", "2.3", "3.1", "3.4", "4.2", "5.1", "6.3",
];

const CODE: &[&str] = &[
    "```rust\npub trait SessionStore: Send + Sync {\n    fn get(&self, id: &SessionId) -> Result<Option<Session>>;\n    fn put(&self, session: Session) -> Result<()>;\n    fn evict(&self, id: &SessionId) -> Result<bool>;\n}\n```",
    "```toml\n[service.limits]\nrequests-per-second = 50\nburst = 100\n```",
    "```sql\nALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;\nCREATE INDEX jobs_ready ON jobs (ready_at) WHERE done = false;\n```",
    "```bash\ncargo test -p service --features integration -- --test-threads 1\n```",
];

/// Track names: `A`…`Z`, then `AA`, `AB`, …
fn track_name(mut k: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + u8::try_from(k % 26).unwrap_or(0));
        if k < 26 {
            break;
        }
        k = k / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Dependencies of a task: a few earlier tasks, mostly recent ones of its own track.
fn dep_phrase(rng: &mut Rng, track_first: usize, id: usize) -> String {
    if id == track_first || rng.chance(15) {
        return "None".to_owned();
    }
    let mut parts = Vec::new();
    let recent = id - 1;
    if rng.chance(30) && recent > track_first {
        let from = track_first.max(recent.saturating_sub(1 + rng.below(3)));
        parts.push(format!("{from}-{recent}"));
    } else {
        parts.push(recent.to_string());
    }
    for _ in 0..rng.below(3) {
        let earlier = 1 + rng.below(id - 1);
        if !parts.contains(&earlier.to_string()) {
            parts.push(earlier.to_string());
        }
    }
    let word = if parts.len() == 1 && !parts[0].contains('-') {
        "Task"
    } else {
        "Tasks"
    };
    format!("{word} {}", parts.join(", "))
}

fn details(rng: &mut Rng, out: &mut String, indent: &str, count: usize) {
    for _ in 0..count {
        let _ = writeln!(out, "{indent}- {}", rng.pick(DETAILS));
    }
}

fn requirements(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    let mut picked: Vec<&str> = (0..n).map(|_| rng.pick(REQUIREMENTS)).collect();
    picked.sort_unstable();
    picked.dedup();
    picked.join(", ")
}

/// A specflow task list of at least `size` bytes. Every third track heading depends on the whole
/// previous track (`Track B`) unless `track_deps` is off; the others name one task.
fn generate(size: usize, track_deps: bool) -> String {
    let mut rng = Rng(0x5eed);
    let mut out = String::with_capacity(size + 64 * 1024);
    out.push_str("---\nfeature: large-service\nstatus: approved\n---\n\n");
    out.push_str("# Implementation Plan: Large Service\n\n## Overview\n\n");
    out.push_str(
        "This plan splits the service into tracks that can run in parallel. Each track ends \
         with a code review. Tasks name the tasks they wait for.\n\n## Tasks\n",
    );
    let mut id = 0;
    let mut track = 0;
    while out.len() < size {
        let name = track_name(track);
        let track_first = id + 1;
        let heading_deps = match track {
            0 => "None".to_owned(),
            _ if track_deps && track % 3 == 0 => format!("Track {}", track_name(track - 1)),
            _ => format!("Task {}", id),
        };
        let _ = write!(
            out,
            "\n### Track {name}: {} (Dependencies: {heading_deps})\n\n> Primary Agent: rust-developer\n\n",
            rng.pick(AREAS)
        );
        for _ in 0..TASKS_PER_TRACK {
            if out.len() >= size {
                break;
            }
            id += 1;
            // The first third of the work is done.
            let mark = if out.len() < size / 3 { 'x' } else { ' ' };
            let _ = writeln!(
                out,
                "- [{mark}] {id}. **{} {}**",
                rng.pick(VERBS),
                rng.pick(THINGS)
            );
            let count = 4 + rng.below(5);
            details(&mut rng, &mut out, "  ", count);
            let _ = writeln!(out, "  - _Requirements: {}_", requirements(&mut rng));
            let _ = writeln!(
                out,
                "  - _Dependencies: {}_",
                dep_phrase(&mut rng, track_first, id)
            );
            if rng.chance(15) {
                let code = rng.pick(CODE).replace('\n', "\n  ");
                let _ = writeln!(out, "\n  {code}\n");
            }
            if rng.chance(20) {
                for sub in 1..=2 + rng.below(2) {
                    let _ = writeln!(
                        out,
                        "  - [{mark}] {id}.{sub} {} {}",
                        rng.pick(VERBS),
                        rng.pick(THINGS)
                    );
                    let count = 2 + rng.below(2);
                    details(&mut rng, &mut out, "    ", count);
                    if sub > 1 {
                        let _ = writeln!(out, "    - _Dependencies: Task {id}.{}_", sub - 1);
                    }
                }
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "- [ ] CR-{name}. **Code review of Track {name}**\n  - Review every change of the track against design.md\n  - _Dependencies: Tasks {track_first}-{id}_\n\n"
        );
        track += 1;
    }
    out
}

fn plan_options() -> plan::Options {
    plan::Options {
        tracks: vec![],
        max_agents: 6,
        skip_optional: false,
        ..plan::Options::default()
    }
}

/// (a): the markdown tree alone.
fn baseline(text: &str) -> bool {
    markdown::to_mdast(text, &spec::markdown_options()).is_ok()
}

/// (p): the same tree, pieces in parallel.
fn pieces(text: &str) -> bool {
    spec::blocks::to_mdast(text, spec::markdown_options).is_ok()
}

/// (b): the whole spec parse.
fn parse(bytes: Vec<u8>) -> spec::TaskList {
    spec::parse_bytes("tasks.md", bytes)
}

/// (c): parse, then plan.
fn parse_and_plan(bytes: Vec<u8>) -> (spec::TaskList, Option<plan::Plan>) {
    let list = parse(bytes);
    let plan = plan::build(&list, &plan_options()).ok();
    (list, plan)
}

/// Wall time of `f(input)`; dropping the output is not timed.
fn time<I, O>(input: I, f: impl FnOnce(I) -> O) -> (Duration, O) {
    let input = black_box(input);
    let start = Instant::now();
    let out = black_box(f(input));
    (start.elapsed(), out)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn usage() -> ! {
    eprintln!("usage: cargo bench --bench parse [-- [SIZE_IN_BYTES] [--no-track-deps]]");
    std::process::exit(2);
}

/// The inputs that once took markdown-rs seconds to minutes, or made it panic: (name, text).
fn hostile() -> Vec<(&'static str, String)> {
    let nested = |levels: usize| -> String {
        (0..levels)
            .map(|i| format!("{}- [ ] {}. x\n", "  ".repeat(i), i + 1))
            .collect()
    };
    let until = |size: usize, unit: &str| unit.repeat(size / unit.len() + 1);
    let task = "- [ ] 1. Do it\n\n";
    vec![
        (
            "`*_` x 16,000 on one line (32 KB)",
            format!("{task}{}\n", "*_".repeat(16_000)),
        ),
        (
            "`*_` x 100,000 on one line (200 KB)",
            format!("{task}{}\n", "*_".repeat(100_000)),
        ),
        (
            "paragraphs of 128 `*_`, 2 MB",
            format!("{task}{}", until(2_000_000, &("*_".repeat(128) + "\n\n"))),
        ),
        (
            "paragraphs of 256 `*a`, 2 MB",
            format!("{task}{}", until(2_000_000, &("*a".repeat(256) + "\n\n"))),
        ),
        ("500 nested list levels", nested(500)),
        ("1,000 nested list levels", nested(1_000)),
        (
            "32 nested levels, again and again, 2 MB",
            until(2_000_000, &nested(32)),
        ),
        (
            "one 10 MB line",
            format!("{task}{}\n", "word ".repeat(2_000_000)),
        ),
        (
            "a 10 MB fenced code block",
            format!("{task}```\n{}\n```\n", "code ".repeat(2_000_000)),
        ),
        (
            "200,000 flat tasks",
            (1..=200_000)
                .map(|i| format!("- [ ] {i}. Task {i}\n"))
                .collect(),
        ),
        (
            "49,999 flat tasks",
            (1..50_000)
                .map(|i| format!("- [ ] {i}. Task number {i} with a longer title\n"))
                .collect(),
        ),
        (
            "2 MB of plain bullets",
            format!("{task}{}", until(2_000_000, "- an item\n")),
        ),
        ("the generated list, 10 MB", generate(10_000_000, true)),
        (
            "the markdown-rs panic",
            "- [ ] 1. Build it\n\n1. ```sh\n*".to_owned(),
        ),
    ]
}

/// Times [`parse`] on each of [`hostile`], against `baseline` (the median of (a)).
fn hostile_inputs(baseline: Duration) {
    println!("hostile inputs, spec::parse_bytes, median of {HOSTILE_RUNS} runs, ratio to (a):");
    for (name, text) in hostile() {
        let bytes = text.into_bytes();
        let size = bytes.len();
        let mut times = Vec::new();
        let mut answer = String::new();
        for _ in 0..HOSTILE_RUNS {
            let (d, list) = time(bytes.clone(), parse);
            times.push(d);
            answer = list.errors().next().map_or_else(
                || format!("parsed, {} tasks", list.tasks.len()),
                |e| {
                    let e = e.to_string();
                    let cut: String = e.chars().take(60).collect();
                    format!("refused: {cut}")
                },
            );
        }
        let d = median(times);
        println!(
            "  {name:<40} {size:>9} B {:>9.2} ms  x{:>6.2}  {answer}",
            ms(d),
            d.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a number is the size.
    let mut size = DEFAULT_SIZE;
    let mut track_deps = true;
    for arg in std::env::args().skip(1) {
        if arg == "--no-track-deps" {
            track_deps = false;
        } else if arg.starts_with('-') {
            // `--bench` and other harness flags.
        } else {
            match arg.replace('_', "").parse::<usize>() {
                Ok(n) if n > 0 => size = n,
                _ => usage(),
            }
        }
    }

    let text = generate(size, track_deps);
    let bytes = text.as_bytes().to_vec();

    // One run of each, kept as the first sample: it checks the document and sizes N.
    let (a0, ok) = time(text.as_str(), baseline);
    if spec::blocks::to_mdast(&text, spec::markdown_options).ok()
        != markdown::to_mdast(&text, &spec::markdown_options()).ok()
    {
        eprintln!("the tree parsed in pieces differs from the whole-file tree");
        std::process::exit(1);
    }
    let (p0, _) = time(text.as_str(), pieces);
    let (b0, _) = time(bytes.clone(), parse);
    let (c0, (list, the_plan)) = time(bytes.clone(), parse_and_plan);
    if !ok || list.has_errors() {
        for d in list.errors() {
            eprintln!("{d:?}");
        }
        eprintln!("the generated task list has errors");
        std::process::exit(1);
    }
    let Some(the_plan) = the_plan else {
        eprintln!("the plan of the generated task list failed");
        std::process::exit(1);
    };
    let once = (a0 + p0 + b0 + c0).max(Duration::from_micros(1));
    let mut runs = usize::try_from(BUDGET.as_nanos() / once.as_nanos())
        .unwrap_or(MAX_RUNS)
        .clamp(1, MAX_RUNS);
    if runs % 2 == 0 {
        runs -= 1;
    }
    let (mut a, mut p, mut b, mut c) = (vec![a0], vec![p0], vec![b0], vec![c0]);
    for _ in 1..runs {
        a.push(time(text.as_str(), baseline).0);
        p.push(time(text.as_str(), pieces).0);
        b.push(time(bytes.clone(), parse).0);
        c.push(time(bytes.clone(), parse_and_plan).0);
    }
    let (a, p, b, c) = (median(a), median(p), median(b), median(c));

    let leaves = list.leaves().count();
    let tracks = list.sections.iter().filter(|s| s.track.is_some()).count();
    let edges: usize = list.tasks.iter().map(|t| t.deps.len()).sum();
    let mb = text.len() as f64 / 1e6;
    println!(
        "tasks.md: {} bytes ({mb:.2} MB), {} tasks ({leaves} leaves, {} done), {tracks} tracks{}, {edges} dependency edges",
        text.len(),
        list.tasks.len(),
        list.progress().0,
        if track_deps {
            ""
        } else {
            " (no `Track X` heading dependencies)"
        },
    );
    println!(
        "plan: {} pending tasks in {} levels, critical path {} tasks",
        the_plan.nodes.len(),
        the_plan.levels.len(),
        the_plan.critical_path.len()
    );
    println!("median of {runs} run(s) each (MB = 10^6 bytes):");
    for (name, d) in [
        ("(a) markdown::to_mdast (baseline)", a),
        ("(p) spec::blocks::to_mdast", p),
        ("(b) spec::parse_bytes", b),
        ("(c) spec::parse_bytes + plan::build", c),
    ] {
        println!(
            "  {name:<38} {:>9.2} ms  {:>7.2} MB/s",
            ms(d),
            mb / d.as_secs_f64()
        );
    }
    println!(
        "ratios: (p)/(a) = {:.2}, (b)/(a) = {:.2}, (c)/(a) = {:.2}",
        p.as_secs_f64() / a.as_secs_f64(),
        b.as_secs_f64() / a.as_secs_f64(),
        c.as_secs_f64() / a.as_secs_f64()
    );
    hostile_inputs(a);
}
