//! A generated GitHub Actions workflow, executed: the workflow of a feature is written by the
//! built binary, read back as YAML, and its jobs run in a topological order of their `needs:`,
//! each job's `if:` evaluated against the results and outputs of the jobs before it, and each
//! job's run step run (as the workflow writes it, the binary standing in for `cargo spec-exec`)
//! in a fresh clone of one bare remote, with `GITHUB_OUTPUT` collected into the job's outputs
//! per its `outputs:` mapping. What the jobs leave on the remote is compared with a local run
//! of the same feature.
//!
//! The expression evaluator knows only what the generator may write (`!cancelled()`,
//! `always()`, `needs.<job>.result == '…'`, `needs.<job>.outputs.<name> == '…'`, `&&`, `||`,
//! parentheses), and fails on anything else: the generator must not write what this test does
//! not execute.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;

use support::{
    BIN, copy_dir, fixture, git_in, lint, shell_task, tasks_md, text, write, write_tiny_package,
};

// ---------------------------------------------------------------------------------------------
// A YAML reader for the subset the generator writes: block mappings and sequences (a sequence
// item may open a mapping), plain, single- and double-quoted scalars, literal blocks (`|`,
// `|-`) and comments.

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
    Str(String),
    Null,
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            Yaml::Null => &[],
            other => panic!("not a mapping: {other:?}"),
        }
    }

    fn items(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            Yaml::Null => &[],
            other => panic!("not a sequence: {other:?}"),
        }
    }
}

struct Reader {
    lines: Vec<String>,
    at: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn insignificant(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Where a comment starts in `s` (a ` #` outside quotes), or its length.
fn comment_start(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => {
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(b'"') if b == b'\\' => i += 1,
            Some(_) => {}
            None if (b == b'\'' || b == b'"') && (i == 0 || bytes[i - 1] == b' ') => {
                quote = Some(b);
            }
            None if b == b'#' && (i == 0 || bytes[i - 1] == b' ') => return i,
            None => {}
        }
        i += 1;
    }
    s.len()
}

fn scalar(raw: &str) -> Yaml {
    let s = raw[..comment_start(raw)].trim();
    if s.is_empty() {
        return Yaml::Null;
    }
    if let Some(body) = s.strip_prefix('\'') {
        let body = body
            .strip_suffix('\'')
            .unwrap_or_else(|| panic!("unterminated quotes: {s}"));
        return Yaml::Str(body.replace("''", "'"));
    }
    if let Some(body) = s.strip_prefix('"') {
        let body = body
            .strip_suffix('"')
            .unwrap_or_else(|| panic!("unterminated quotes: {s}"));
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = chars.next().unwrap();
            let hex = |n: usize, chars: &mut std::str::Chars<'_>| {
                let h: String = chars.take(n).collect();
                char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap()
            };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'x' => out.push(hex(2, &mut chars)),
                'u' => out.push(hex(4, &mut chars)),
                'U' => out.push(hex(8, &mut chars)),
                other => panic!("escape \\{other} in {s}"),
            }
        }
        return Yaml::Str(out);
    }
    assert!(
        !s.starts_with(['[', '{', '&', '*', '!', '>', '|']),
        "outside the subset this reader knows: {s}"
    );
    Yaml::Str(s.to_owned())
}

/// A mapping entry's key and the rest of the line, when `content` is one (`key:` or `key: …`).
fn entry(content: &str) -> Option<(String, &str)> {
    let end = content
        .find(": ")
        .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
    let key = &content[..end];
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .then(|| (key.to_owned(), content[end + 1..].trim_start()))
}

impl Reader {
    fn parse(text: &str) -> Yaml {
        let mut r = Reader {
            lines: text.lines().map(str::to_owned).collect(),
            at: 0,
        };
        let doc = r.block(-1);
        r.skip();
        assert!(r.at == r.lines.len(), "left over: {}", r.lines[r.at]);
        doc
    }

    fn skip(&mut self) {
        while self.at < self.lines.len() && insignificant(&self.lines[self.at]) {
            self.at += 1;
        }
    }

    fn block(&mut self, parent: isize) -> Yaml {
        self.skip();
        let Some(line) = self.lines.get(self.at) else {
            return Yaml::Null;
        };
        let n = indent_of(line);
        if n as isize <= parent {
            return Yaml::Null;
        }
        let content = &line[n..];
        if content == "-" || content.starts_with("- ") {
            self.seq(n)
        } else {
            self.map(n)
        }
    }

    fn seq(&mut self, n: usize) -> Yaml {
        let mut items = Vec::new();
        loop {
            self.skip();
            let Some(line) = self.lines.get(self.at) else {
                break;
            };
            let content = &line[n.min(line.len())..];
            if indent_of(line) != n || !(content == "-" || content.starts_with("- ")) {
                break;
            }
            let rest = content[1..].trim_start().to_owned();
            if rest.is_empty() {
                self.at += 1;
                items.push(self.block(n as isize));
            } else if entry(&rest).is_some() {
                // `- key: …` opens a mapping indented as its first key.
                self.lines[self.at] = format!("{}{rest}", " ".repeat(n + 2));
                items.push(self.map(n + 2));
            } else {
                self.at += 1;
                items.push(scalar(&rest));
            }
        }
        Yaml::Seq(items)
    }

    fn map(&mut self, n: usize) -> Yaml {
        let mut entries = Vec::new();
        loop {
            self.skip();
            let Some(line) = self.lines.get(self.at).cloned() else {
                break;
            };
            if indent_of(&line) != n || line[n..].starts_with("- ") {
                assert!(
                    indent_of(&line) <= n,
                    "a line indented where no block opens: {line}"
                );
                break;
            }
            let (key, rest) =
                entry(&line[n..]).unwrap_or_else(|| panic!("not a mapping entry: {line}"));
            assert!(!entries.iter().any(|(k, _)| *k == key), "key `{key}` twice");
            self.at += 1;
            let rest = rest[..comment_start(rest)].trim();
            let value = match rest {
                "" => {
                    self.skip();
                    match self.lines.get(self.at) {
                        Some(next) if indent_of(next) == n && next[n..].starts_with("- ") => {
                            self.seq(n)
                        }
                        _ => self.block(n as isize),
                    }
                }
                "|" | "|-" => {
                    let mut body: Vec<String> = Vec::new();
                    let mut at = None;
                    while let Some(l) = self.lines.get(self.at) {
                        if !l.trim().is_empty() && indent_of(l) <= n {
                            break;
                        }
                        let i = *at.get_or_insert(indent_of(l));
                        body.push(l.get(i..).unwrap_or("").to_owned());
                        self.at += 1;
                    }
                    while body.last().is_some_and(|l| l.is_empty()) {
                        body.pop();
                    }
                    let mut s = body.join("\n");
                    if rest == "|" {
                        s.push('\n');
                    }
                    Yaml::Str(s)
                }
                _ => scalar(rest),
            };
            entries.push((key, value));
        }
        Yaml::Map(entries)
    }
}

#[test]
fn the_yaml_reader_reads_what_the_generator_writes() {
    let doc = Reader::parse(
        "# c\nname: 'a ''b'': c'\non:\n  workflow_dispatch:\njobs:\n  x-1:\n    needs:\n      - a\n      - b # only to come after it\n    steps:\n      - name: \"q\\n\\u00e9\"\n        run: |\n          one\n          two\n      - uses: y@v4\n        with:\n          fetch-depth: 0\n",
    );
    assert_eq!(doc.get("name").unwrap().str(), "a 'b': c");
    assert_eq!(doc.get("on").unwrap().entries()[0].0, "workflow_dispatch");
    let job = doc.get("jobs").unwrap().get("x-1").unwrap();
    let needs: Vec<&str> = job
        .get("needs")
        .unwrap()
        .items()
        .iter()
        .map(Yaml::str)
        .collect();
    assert_eq!(needs, ["a", "b"]);
    let steps = job.get("steps").unwrap().items();
    assert_eq!(steps[0].get("name").unwrap().str(), "q\né");
    assert_eq!(steps[0].get("run").unwrap().str(), "one\ntwo\n");
    assert_eq!(
        steps[1]
            .get("with")
            .unwrap()
            .get("fetch-depth")
            .unwrap()
            .str(),
        "0"
    );
}

// ---------------------------------------------------------------------------------------------
// The expressions of `if:` and `outputs:`.

/// What a job that ran, or did not, left for the jobs after it.
#[derive(Debug, Clone)]
struct Outcome {
    /// `success`, `failure` or `skipped`.
    result: &'static str,
    outputs: BTreeMap<String, String>,
    /// A failed step's output, shown by the assertions' `{:#?}`.
    #[allow(dead_code, reason = "read through Debug")]
    log: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    Str(String),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Str(s) => !s.is_empty(),
        }
    }
}

/// The inside of `${{ … }}`: the whole value must be one expression.
fn inside(value: &str) -> &str {
    let v = value.trim();
    v.strip_prefix("${{")
        .and_then(|v| v.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("not one expression: {value}"))
        .trim()
}

struct Expr<'a> {
    tokens: Vec<String>,
    at: usize,
    needs: &'a [String],
    done: &'a BTreeMap<String, Outcome>,
    text: &'a str,
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            i += 1;
        } else if c == '\'' {
            let mut lit = String::from("'");
            i += 1;
            loop {
                let c = *chars
                    .get(i)
                    .unwrap_or_else(|| panic!("unterminated in {s}"));
                i += 1;
                if c == '\'' {
                    if chars.get(i) == Some(&'\'') {
                        lit.push('\'');
                        i += 1;
                        continue;
                    }
                    break;
                }
                lit.push(c);
            }
            out.push(lit);
        } else if ["&&", "||", "==", "!="]
            .iter()
            .any(|op| chars[i..].starts_with(&op.chars().collect::<Vec<_>>()))
        {
            out.push(chars[i..i + 2].iter().collect());
            i += 2;
        } else if "()!".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_-.".contains(chars[i]))
            {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            panic!("`{c}` in `{s}`: outside the expressions this test knows");
        }
    }
    out
}

impl Expr<'_> {
    fn eval(text: &str, needs: &[String], done: &BTreeMap<String, Outcome>) -> bool {
        let mut e = Expr {
            tokens: tokens(text),
            at: 0,
            needs,
            done,
            text,
        };
        let v = e.or();
        assert!(
            e.at == e.tokens.len(),
            "`{}` left over in `{text}`",
            e.tokens[e.at..].join(" ")
        );
        v.truthy()
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> String {
        let t = self
            .tokens
            .get(self.at)
            .unwrap_or_else(|| panic!("`{}` ends too soon", self.text))
            .clone();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Value {
        let mut v = self.and();
        while self.peek() == Some("||") {
            self.at += 1;
            let r = self.and();
            v = Value::Bool(v.truthy() || r.truthy());
        }
        v
    }

    fn and(&mut self) -> Value {
        let mut v = self.cmp();
        while self.peek() == Some("&&") {
            self.at += 1;
            let r = self.cmp();
            v = Value::Bool(v.truthy() && r.truthy());
        }
        v
    }

    fn cmp(&mut self) -> Value {
        let left = self.unary();
        if self.peek() != Some("==") {
            return left;
        }
        self.at += 1;
        let lit = self.next();
        let lit = lit
            .strip_prefix('\'')
            .unwrap_or_else(|| panic!("`== {lit}` in `{}`: compare with a string", self.text));
        let Value::Str(left) = left else {
            panic!("a comparison of a condition in `{}`", self.text)
        };
        Value::Bool(left == lit)
    }

    fn unary(&mut self) -> Value {
        match self.next().as_str() {
            "!" => {
                let v = self.unary();
                Value::Bool(!v.truthy())
            }
            "(" => {
                let v = self.or();
                assert_eq!(self.next(), ")", "in `{}`", self.text);
                v
            }
            f @ ("cancelled" | "always") => {
                assert_eq!(self.next(), "(", "in `{}`", self.text);
                assert_eq!(self.next(), ")", "in `{}`", self.text);
                // Nothing is ever cancelled here.
                Value::Bool(f == "always")
            }
            path if path.starts_with("needs.") => {
                let parts: Vec<&str> = path.split('.').collect();
                let job = parts[1];
                assert!(
                    self.needs.iter().any(|n| n == job),
                    "`{path}` in `{}`: the job does not need `{job}`, so GitHub shows it nothing of it",
                    self.text
                );
                let outcome = &self.done[job];
                match parts[2..] {
                    ["result"] => Value::Str(outcome.result.to_owned()),
                    ["outputs", name] => {
                        Value::Str(outcome.outputs.get(name).cloned().unwrap_or_default())
                    }
                    _ => panic!("`{path}` in `{}`", self.text),
                }
            }
            other => panic!(
                "`{other}` in `{}`: outside the expressions this test knows",
                self.text
            ),
        }
    }
}

/// A job output's value: `steps.<step>.outputs.<name>` or `steps.<step>.outputs['<name>']`.
fn step_output(value: &str, step: &str, written: &BTreeMap<String, String>) -> String {
    let e = inside(value);
    let rest = e
        .strip_prefix(&format!("steps.{step}.outputs"))
        .unwrap_or_else(|| panic!("`{value}`: not an output of the step `{step}`"));
    let name = if let Some(n) = rest.strip_prefix('.') {
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{value}"
        );
        n
    } else {
        rest.strip_prefix("['")
            .and_then(|r| r.strip_suffix("']"))
            .unwrap_or_else(|| panic!("`{value}`"))
    };
    written.get(name).cloned().unwrap_or_default()
}

/// The `name=value` lines (and `name<<DELIM` blocks) of a `GITHUB_OUTPUT` file.
fn read_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        } else {
            panic!("not an output line: {line}");
        }
    }
    out
}

#[test]
fn the_expressions_the_generator_writes_evaluate_as_github_would() {
    let outcome = |result: &'static str, verdict: &str| Outcome {
        result,
        outputs: [("verdict".to_owned(), verdict.to_owned())].into(),
        log: String::new(),
    };
    let done: BTreeMap<String, Outcome> = [
        ("a".to_owned(), outcome("success", "changes")),
        ("b-2".to_owned(), outcome("skipped", "")),
    ]
    .into();
    let needs = ["a".to_owned(), "b-2".to_owned()];
    let eval = |e: &str| Expr::eval(e, &needs, &done);
    assert!(eval("!cancelled() && needs.a.outputs.verdict == 'changes'"));
    assert!(!eval("!cancelled() && needs.b-2.result == 'success'"));
    assert!(eval(
        "!cancelled() && ((needs.a.result == 'success' && needs.a.outputs.verdict == 'approved') || needs.b-2.result == 'skipped')"
    ));
    assert!(eval("always()"));
}

#[test]
#[should_panic(expected = "outside the expressions this test knows")]
fn an_expression_outside_the_subset_fails_the_test() {
    Expr::eval("success() && true", &[], &BTreeMap::new());
}

#[test]
#[should_panic(expected = "the job does not need `c`")]
fn a_job_reading_one_it_does_not_need_fails_the_test() {
    Expr::eval("needs.c.result == 'success'", &[], &BTreeMap::new());
}

// ---------------------------------------------------------------------------------------------
// The runner.

struct Bench {
    tmp: tempfile::TempDir,
}

impl Bench {
    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A global git configuration of its own, which the workflow's `git config --global` writes.
    fn gitconfig(&self) -> PathBuf {
        self.path().join("gitconfig")
    }

    fn remote(&self) -> PathBuf {
        self.path().join("remote.git")
    }

    /// A name for a new directory: `name`, or `name-2`, `name-3`… when it is taken.
    fn fresh(&self, name: &str) -> String {
        let mut n = 1;
        let mut fresh = name.to_owned();
        while self.path().join(&fresh).exists() {
            n += 1;
            fresh = format!("{name}-{n}");
        }
        fresh
    }

    fn clone(&self, name: &str) -> PathBuf {
        git_in(
            self.path(),
            &["clone", "-q", self.remote().to_str().unwrap(), name],
        );
        self.path().join(name)
    }

    /// A command in `dir` as a runner's step runs it: bash, `GITHUB_ACTIONS=true`, a shared
    /// build cache, the test's own global git configuration.
    fn command(&self, dir: &Path, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.gitconfig())
            .env("GITHUB_ACTIONS", "true")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null());
        cmd
    }

    /// The binary as `cargo spec-exec` runs it.
    fn spec_exec(&self, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["spec-exec"];
        all.extend_from_slice(args);
        let out = self.command(dir, BIN, &all).output().unwrap();
        assert!(
            out.status.success(),
            "cargo spec-exec {args:?} in {}: exit {:?}\n{}{}",
            dir.display(),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// A repository that `make` fills in `origin` (committed, and approved for `feature`), and a
/// bare remote cloned from it.
fn bench(feature: &str, make: impl FnOnce(&Path)) -> Bench {
    let b = Bench {
        tmp: tempfile::tempdir().unwrap(),
    };
    write(
        &b.gitconfig(),
        "[user]\n\tname = Example\n\temail = example@localhost\n",
    );
    let origin = b.path().join("origin");
    make(&origin);
    let git = |args: &[&str]| {
        let out = b.command(&origin, "git", args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "The feature"]);
    b.spec_exec(&origin, &["approve", feature]);
    git(&["commit", "-qam", "Approve"]);
    git_in(b.path(), &["clone", "-q", "--bare", "origin", "remote.git"]);
    b
}

/// A job of the workflow, as read from its YAML.
#[derive(Debug)]
struct Job {
    id: String,
    needs: Vec<String>,
    condition: Option<String>,
    outputs: Vec<(String, String)>,
    steps: Vec<Yaml>,
}

fn jobs_of(workflow: &Yaml) -> Vec<Job> {
    workflow
        .get("jobs")
        .expect("jobs")
        .entries()
        .iter()
        .map(|(id, job)| {
            for (key, _) in job.entries() {
                assert!(
                    [
                        "name",
                        "needs",
                        "if",
                        "runs-on",
                        "timeout-minutes",
                        "permissions",
                        "outputs",
                        "steps"
                    ]
                    .contains(&key.as_str()),
                    "job `{id}` has `{key}`, which this test does not execute"
                );
            }
            Job {
                id: id.clone(),
                needs: job
                    .get("needs")
                    .map(|n| n.items().iter().map(|s| s.str().to_owned()).collect())
                    .unwrap_or_default(),
                condition: job.get("if").map(|c| c.str().to_owned()),
                outputs: job
                    .get("outputs")
                    .map(|o| {
                        o.entries()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.str().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
                steps: job.get("steps").expect("steps").items().to_vec(),
            }
        })
        .collect()
}

/// The jobs in a topological order of their needs (among those ready, the file's order).
fn topological(jobs: &[Job]) -> Vec<usize> {
    let mut placed: Vec<usize> = Vec::new();
    let mut left: Vec<usize> = (0..jobs.len()).collect();
    while !left.is_empty() {
        let pos = left
            .iter()
            .position(|&j| {
                jobs[j].needs.iter().all(|n| {
                    let p = jobs.iter().position(|x| x.id == *n);
                    let p = p.unwrap_or_else(|| panic!("`{}` needs unknown `{n}`", jobs[j].id));
                    placed.contains(&p)
                })
            })
            .unwrap_or_else(|| panic!("the needs of {left:?} form a cycle"));
        placed.push(left.remove(pos));
    }
    placed
}

/// A step's `run:` script with the binary for `cargo spec-exec`, and lines `drop` names left
/// out.
fn script_of(run: &str, drop: &[&str]) -> String {
    let bin = shlex::try_quote(BIN).unwrap().into_owned();
    run.lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
        .map(|l| {
            l.strip_prefix("cargo spec-exec ")
                .map_or_else(|| l.to_owned(), |rest| format!("{bin} spec-exec {rest}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the workflow: each job in a fresh clone of the remote, or skipped by its condition.
/// `drop` leaves lines out of the run step's script (`cargo spec-exec pr`, which needs `gh`
/// and GitHub). Returns every job's outcome and the clone of each job that ran.
fn execute(
    b: &Bench,
    workflow: &Yaml,
    drop: &[&str],
) -> (BTreeMap<String, Outcome>, BTreeMap<String, PathBuf>) {
    let jobs = jobs_of(workflow);
    let mut done: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut clones = BTreeMap::new();
    for j in topological(&jobs) {
        let job = &jobs[j];
        // GitHub's default, `success()`: every job it needs succeeded. A condition without a
        // status function (`always()`, `cancelled()`) is read after that default.
        let needs_succeeded = job.needs.iter().all(|n| done[n].result == "success");
        let runs = match &job.condition {
            Some(c) => {
                let e = inside(c);
                let own_status = e.contains("always()") || e.contains("cancelled()");
                (own_status || needs_succeeded) && Expr::eval(e, &job.needs, &done)
            }
            None => needs_succeeded,
        };
        if !runs {
            done.insert(
                job.id.clone(),
                Outcome {
                    result: "skipped",
                    outputs: BTreeMap::new(),
                    log: String::new(),
                },
            );
            continue;
        }
        let dir = b.clone(&b.fresh(&format!("job-{}", job.id)));
        let output_file = dir.with_extension("output");
        fs::write(&output_file, "").unwrap();
        let mut result = "success";
        let mut log = String::new();
        let mut run_step = None;
        for step in &job.steps {
            let name = step.get("name").map_or("", Yaml::str);
            if let Some(uses) = step.get("uses") {
                let uses = uses.str();
                assert!(
                    uses.starts_with("actions/checkout@")
                        || uses.starts_with("actions/setup-node@")
                        || uses.starts_with("actions/setup-python@"),
                    "job `{}` uses `{uses}`",
                    job.id
                );
                // The checkout is the fresh clone; nothing else is needed by the shell agent.
                continue;
            }
            let run = step
                .get("run")
                .unwrap_or_else(|| panic!("a step of `{}` neither uses nor runs", job.id))
                .str();
            if name == "Install cargo-spec-exec" {
                assert!(
                    run.starts_with("cargo install --locked cargo-spec-exec"),
                    "{run}"
                );
                continue;
            }
            let script = script_of(run, drop);
            let mut cmd = b.command(
                &dir,
                "bash",
                &["--noprofile", "--norc", "-eo", "pipefail", "-c", &script],
            );
            cmd.env("GITHUB_OUTPUT", &output_file);
            for (key, value) in step.get("env").map_or(&[][..], Yaml::entries) {
                let e = inside(value.str());
                assert!(
                    e == "github.token" || e.starts_with("secrets."),
                    "`{key}: {}` in `{}`",
                    value.str(),
                    job.id
                );
                cmd.env(key, "unused here");
            }
            let out = cmd.output().unwrap();
            // A failed step's outputs count too.
            if let Some(id) = step.get("id") {
                assert!(run_step.is_none(), "two steps with ids in `{}`", job.id);
                run_step = Some(id.str().to_owned());
            }
            if !out.status.success() {
                log = format!(
                    "step `{name}` failed (exit {:?}):\n{}{}",
                    out.status.code(),
                    text(&out.stdout),
                    text(&out.stderr)
                );
                result = "failure";
                break;
            }
        }
        let written = read_outputs(&fs::read_to_string(&output_file).unwrap());
        let outputs = job
            .outputs
            .iter()
            .map(|(name, value)| {
                let step = run_step
                    .as_deref()
                    .unwrap_or_else(|| panic!("`{}`'s outputs name a step it lacks", job.id));
                (name.clone(), step_output(value, step, &written))
            })
            .collect();
        done.insert(
            job.id.clone(),
            Outcome {
                result,
                outputs,
                log,
            },
        );
        clones.insert(job.id.clone(), dir);
    }
    (done, clones)
}

/// The tree of every `spec/<feature>/…` branch in `dir` but the integration branch.
fn task_trees(dir: &Path, feature: &str) -> BTreeMap<String, String> {
    git_in(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            &format!("refs/heads/spec/{feature}/"),
        ],
    )
    .lines()
    .map(|l| l.split_once(' ').unwrap().0.to_owned())
    .filter(|b| !b.ends_with("/integration"))
    .map(|b| {
        let tree = git_in(dir, &["rev-parse", &format!("{b}^{{tree}}")])
            .trim()
            .to_owned();
        (b, tree)
    })
    .collect()
}

fn tasks_md_of(dir: &Path, feature: &str) -> Vec<u8> {
    fs::read(
        dir.join("documentation/features")
            .join(feature)
            .join("tasks.md"),
    )
    .unwrap()
}

/// A fresh clone in which `feature` has run locally with the `shell` agent.
fn local_run(b: &Bench, feature: &str) -> PathBuf {
    let local = b.clone("local");
    b.spec_exec(&local, &[feature, "--agent", "shell"]);
    local
}

/// The task branches on the remote and the tasks.md of the integration job's clone are what a
/// local run of `feature` leaves.
#[track_caller]
fn assert_as_a_local_run(b: &Bench, clones: &BTreeMap<String, PathBuf>, feature: &str, note: &str) {
    let local = local_run(b, feature);
    assert_eq!(
        task_trees(&b.remote(), feature),
        task_trees(&local, feature),
        "{note}"
    );
    assert_eq!(
        text(&tasks_md_of(&clones["integrate"], feature)),
        text(&tasks_md_of(&local, feature)),
        "{note}"
    );
}

fn workflow_of(b: &Bench, feature: &str) -> Yaml {
    parse_linted(b, &workflow_yaml(b, feature, &[]))
}

/// The workflow of `feature` with the `shell` agent and `extra` options, as the binary writes
/// it to standard output in a fresh clone.
fn workflow_yaml(b: &Bench, feature: &str, extra: &[&str]) -> String {
    let dir = b.clone("generate");
    let mut args = vec!["ci", "github", feature, "--agent", "shell"];
    args.extend_from_slice(extra);
    args.extend(["-o", "-"]);
    b.spec_exec(&dir, &args)
}

/// A bench whose remote holds the bundled example.
fn example_bench() -> Bench {
    bench("user-auth", |origin| copy_dir(&fixture("example"), origin))
}

/// The workflow `yaml`, linted with actionlint (when it is installed) and read.
fn parse_linted(b: &Bench, yaml: &str) -> Yaml {
    let path = b.path().join(b.fresh("workflow.yml"));
    fs::write(&path, yaml).unwrap();
    lint(&[&path]);
    Reader::parse(yaml)
}

fn ran(done: &BTreeMap<String, Outcome>, result: &str) -> BTreeSet<String> {
    done.iter()
        .filter(|(_, o)| o.result == result)
        .map(|(id, _)| id.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// The "done when": the example feature's workflow, executed job by job, leaves the
/// task branches of a local run on the remote, and `sync` ticks tasks.md as the local run did.
#[test]
fn the_example_features_workflow_executed_leaves_what_a_local_run_leaves() {
    let b = example_bench();
    let workflow = workflow_of(&b, "user-auth");
    let (done, clones) = execute(&b, &workflow, &["cargo spec-exec pr "]);

    // Every task job and the integration ran; the rework and the later rounds of the final
    // review (which approves in its first round) did not.
    assert_eq!(
        ran(&done, "success"),
        set(&[
            "task-1",
            "task-2",
            "CR-A",
            "task-3",
            "task-4",
            "task-5_1",
            "task-5_2",
            "CR-FINAL",
            "integrate"
        ]),
        "{done:#?}"
    );
    assert_eq!(
        ran(&done, "skipped"),
        set(&[
            "RW-FINAL",
            "CR-FINAL-round-2",
            "RW-FINAL-round-2",
            "CR-FINAL-round-3"
        ]),
        "{done:#?}"
    );
    assert_eq!(done["CR-A"].outputs["verdict"], "approved");
    assert_eq!(done["task-5_1"].outputs["status"], "done");

    // A local run of the same feature, in another clone.
    let local = local_run(&b, "user-auth");
    let ours = task_trees(&local, "user-auth");
    assert_eq!(ours.len(), 8, "{ours:?}");
    assert_eq!(task_trees(&b.remote(), "user-auth"), ours);

    // The integration job's sync ticked tasks.md as the local run did and committed it, and
    // its land built the same integration branch on that commit: the pull request carries the
    // ticks, and nothing else differs from the local run's integration.
    let integrate = &clones["integrate"];
    assert_eq!(
        text(&tasks_md_of(integrate, "user-auth")),
        text(&tasks_md_of(&local, "user-auth"))
    );
    assert_eq!(git_in(integrate, &["status", "--porcelain"]), "");
    let integration = "spec/user-auth/integration";
    let tasks_path = "documentation/features/user-auth/tasks.md";
    assert_eq!(
        git_in(integrate, &["show", &format!("{integration}:{tasks_path}")]).into_bytes(),
        tasks_md_of(&local, "user-auth")
    );
    git_in(
        integrate,
        &[
            "fetch",
            "-q",
            local.to_str().unwrap(),
            &format!("{integration}:refs/local-integration"),
        ],
    );
    assert_eq!(
        git_in(
            integrate,
            &["diff", "--name-only", "refs/local-integration", integration]
        )
        .trim(),
        tasks_path
    );

    // And so does sync in another clone.
    let synced = b.clone("synced");
    b.spec_exec(&synced, &["sync", "user-auth"]);
    assert_eq!(
        tasks_md_of(&synced, "user-auth"),
        tasks_md_of(&local, "user-auth")
    );
}

/// A review that approves in round `approve_in` (asks for changes before), by the branch it
/// runs on.
fn review(approve_in: u32) -> String {
    review_as("CR-A", approve_in)
}

/// [`review`] of the review `id`.
fn review_as(id: &str, approve_in: u32) -> String {
    // Round 1 runs on the task's branch, round N on `<branch>.round-N`.
    let approving = if approve_in == 1 {
        format!("*/{id}")
    } else {
        format!("*.round-{approve_in}")
    };
    format!(
        "mkdir -p code_review && case \"$SPEC_EXEC_BRANCH\" in {approving}) v=APPROVED;; *) v='REQUIRES CHANGES';; esac && printf 'Status: %s\\n' \"$v\" > code_review/{id}.md"
    )
}

/// Feature `gate`: task 1, review CR-A of it (approving in round `approve_in`), its rework
/// RW-A, and task 2 after the review; `config` goes into the package's spec-exec metadata.
fn gate(approve_in: u32, config: &str) -> Bench {
    gate_with(approve_in, config, "echo fixed >> fix.txt")
}

/// [`gate`] with the rework's script.
fn gate_with(approve_in: u32, config: &str, rework: &str) -> Bench {
    gate_after(approve_in, config, rework, "CR-A")
}

/// [`gate_with`], task 2 depending on `after`.
fn gate_after(approve_in: u32, config: &str, rework: &str, after: &str) -> Bench {
    package(
        "gate",
        &tasks_md(&[
            shell_task("1", "Build", "", "echo one > one.txt"),
            shell_task("CR-A", "Code review", "Task 1", &review(approve_in)),
            shell_task("RW-A", "Rework", "CR-A (failed)", rework),
            shell_task(
                "2",
                "After the review",
                after,
                "cat fix.txt > two.txt 2>/dev/null || echo none > two.txt",
            ),
        ]),
        config,
    )
}

/// A package with feature `feature` and its `tasks`, verifying nothing; `config` goes into
/// its spec-exec metadata.
fn package(feature: &str, tasks: &str, config: &str) -> Bench {
    bench(feature, |origin| {
        write_tiny_package(
            origin,
            feature,
            tasks,
            &format!("\n[workspace.metadata.spec-exec]\nverify = []\n{config}"),
        );
    })
}

/// A review gate through the workflow: round 1 asks for changes, the rework runs, round 2
/// approves, the later jobs of the gate are skipped and the task after the gate runs.
#[test]
fn a_review_gate_executed_job_by_job_reworks_once_and_goes_on() {
    let b = gate(2, "");
    let workflow = workflow_of(&b, "gate");
    let (done, clones) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&done, "success"),
        set(&[
            "task-1",
            "CR-A",
            "RW-A",
            "CR-A-round-2",
            "task-2",
            "integrate"
        ]),
        "{done:#?}"
    );
    assert_eq!(
        ran(&done, "skipped"),
        set(&["RW-A-round-2", "CR-A-round-3"]),
        "{done:#?}"
    );
    assert_eq!(done["CR-A"].outputs["verdict"], "changes");
    assert_eq!(done["CR-A-round-2"].outputs["verdict"], "approved");
    assert_eq!(done["RW-A"].outputs["status"], "done");

    let local = local_run(&b, "gate");
    let ours = task_trees(&local, "gate");
    assert_eq!(
        ours.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[
            "spec/gate/1",
            "spec/gate/2",
            "spec/gate/CR-A",
            "spec/gate/CR-A.round-2",
            "spec/gate/RW-A"
        ])
    );
    assert_eq!(task_trees(&b.remote(), "gate"), ours);
    assert_eq!(
        git_in(&b.remote(), &["show", "spec/gate/2:two.txt"]),
        "fixed\n"
    );
    assert_eq!(
        text(&tasks_md_of(&clones["integrate"], "gate")),
        text(&tasks_md_of(&local, "gate"))
    );
    let synced = b.clone("synced");
    b.spec_exec(&synced, &["sync", "gate"]);
    assert_eq!(tasks_md_of(&synced, "gate"), tasks_md_of(&local, "gate"));

    // The workflow run again ("Re-run all jobs"): every job finds its work done, the gate
    // approved in its first job, and nothing moves on the remote.
    let (again, clones) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&again, "success"),
        set(&["task-1", "CR-A", "task-2", "integrate"]),
        "{again:#?}"
    );
    assert_eq!(again["CR-A"].outputs["verdict"], "approved");
    assert_eq!(task_trees(&b.remote(), "gate"), ours);
    assert_eq!(
        text(&tasks_md_of(&clones["integrate"], "gate")),
        text(&tasks_md_of(&local, "gate"))
    );
}

/// `ci github --max-review-rounds 4` unrolls four rounds, and its jobs may run all four.
#[test]
fn the_rounds_a_workflow_unrolls_are_the_rounds_its_jobs_may_run() {
    let b = gate(4, "");
    let yaml = workflow_yaml(&b, "gate", &["--max-review-rounds", "4"]);
    let (done, _) = execute(&b, &parse_linted(&b, &yaml), &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&done, "success"),
        set(&[
            "task-1",
            "CR-A",
            "RW-A",
            "CR-A-round-2",
            "RW-A-round-2",
            "CR-A-round-3",
            "RW-A-round-3",
            "CR-A-round-4",
            "task-2",
            "integrate"
        ]),
        "{done:#?}"
    );
    assert_eq!(done["CR-A-round-4"].outputs["verdict"], "approved");
}

/// A gate whose last round still asks for changes fails, as a run's gate fails: what waits for
/// it and the integration do not run.
#[test]
fn a_gate_that_never_approves_fails_its_last_round_and_skips_what_follows() {
    let b = gate(9, "max-review-rounds = 2\n");
    let (done, _) = execute(&b, &workflow_of(&b, "gate"), &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&done, "success"),
        set(&["task-1", "CR-A", "RW-A"]),
        "{done:#?}"
    );
    assert_eq!(ran(&done, "failure"), set(&["CR-A-round-2"]), "{done:#?}");
    assert_eq!(
        ran(&done, "skipped"),
        set(&["task-2", "integrate"]),
        "{done:#?}"
    );
    // A failed job's verdict is not given: a rework's condition reads only the verdict.
    assert_eq!(done["CR-A-round-2"].outputs["status"], "failed");
    assert_eq!(done["CR-A-round-2"].outputs["verdict"], "");
}

/// A rework of two reviews: both ask for changes in round 1 and approve in round 2, the second
/// review after the first's gate. The jobs leave the branches and the ticks of a local run.
#[test]
fn a_rework_of_two_reviews_executed_job_by_job_matches_a_local_run() {
    let b = package(
        "two",
        &tasks_md(&[
            shell_task("1", "Build", "", "echo one > one.txt"),
            shell_task("CR-A", "Code review", "Task 1", &review_as("CR-A", 2)),
            // After the code review's gate: a local run serves the two gates in the order they
            // end, which two reviews side by side would leave to chance.
            shell_task("PR-A", "Product review", "CR-A", &review_as("PR-A", 2)),
            shell_task(
                "RW-A",
                "Rework",
                "CR-A and/or PR-A (failed)",
                "echo fixed >> fix.txt",
            ),
            shell_task("2", "After the rework", "RW-A", "cat fix.txt > two.txt"),
        ]),
        "",
    );
    let (done, clones) = execute(&b, &workflow_of(&b, "two"), &["cargo spec-exec pr "]);
    let local = local_run(&b, "two");
    let ours = task_trees(&local, "two");
    assert_eq!(task_trees(&b.remote(), "two"), ours, "{done:#?}");
    assert_eq!(
        ran(&done, "success"),
        set(&[
            "task-1",
            "CR-A",
            "PR-A",
            "RW-A-CR-A",
            "CR-A-round-2",
            "RW-A-PR-A",
            "PR-A-round-2",
            "task-2",
            "integrate"
        ]),
        "{done:#?}"
    );
    assert_eq!(
        text(&tasks_md_of(&clones["integrate"], "two")),
        text(&tasks_md_of(&local, "two"))
    );
}

/// A rework that fails stops its gate; the whole workflow run again picks the gate up where it
/// stopped: the first review job finds the round that asked for changes (without running a
/// new one), the rework runs, and the review's second round approves.
#[test]
fn a_workflow_run_again_after_a_failed_rework_goes_on_from_the_round_it_stopped_at() {
    let marker = tempfile::tempdir().unwrap();
    let ready = marker.path().join("ready");
    let b = gate_with(
        2,
        "",
        &format!(
            "test -e {} && echo fixed >> fix.txt",
            shlex::try_quote(ready.to_str().unwrap()).unwrap()
        ),
    );
    let workflow = workflow_of(&b, "gate");
    let (first, _) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&first, "success"),
        set(&["task-1", "CR-A"]),
        "{first:#?}"
    );
    assert_eq!(ran(&first, "failure"), set(&["RW-A"]), "{first:#?}");

    fs::write(&ready, "").unwrap();
    let (again, clones) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&again, "success"),
        set(&[
            "task-1",
            "CR-A",
            "RW-A",
            "CR-A-round-2",
            "task-2",
            "integrate"
        ]),
        "{again:#?}"
    );
    assert_eq!(again["CR-A"].outputs["verdict"], "changes");
    assert_eq!(again["CR-A-round-2"].outputs["verdict"], "approved");
    assert!(
        !task_trees(&b.remote(), "gate").contains_key("spec/gate/CR-A.round-3"),
        "no round was run twice"
    );

    // As a local run that went through the gate at once.
    assert_as_a_local_run(&b, &clones, "gate", "");
}

/// A task that depends on the rework waits for the gate's approval: after the rework when
/// the review asked for changes, at once when it approved in its first round (the rework is not
/// needed). Both as a local run does.
#[test]
fn a_task_after_a_rework_runs_once_the_gate_approves_as_in_a_local_run() {
    for approve_in in [1, 2] {
        let b = gate_after(approve_in, "", "echo fixed >> fix.txt", "RW-A");
        let (done, clones) = execute(&b, &workflow_of(&b, "gate"), &["cargo spec-exec pr "]);
        assert_eq!(done["task-2"].result, "success", "{done:#?}");
        assert_eq!(done["integrate"].result, "success", "{done:#?}");
        assert_as_a_local_run(
            &b,
            &clones,
            "gate",
            &format!("approved in round {approve_in}"),
        );
    }
}

/// `--max-agents 1` orders every job after another; executed, the example still leaves what a
/// local run leaves.
#[test]
fn jobs_ordered_to_keep_to_max_agents_leave_the_same_branches() {
    let b = example_bench();
    let yaml = workflow_yaml(&b, "user-auth", &["--max-agents", "1"]);
    assert!(yaml.contains("only to come after it"), "{yaml}");
    let (done, _) = execute(&b, &parse_linted(&b, &yaml), &["cargo spec-exec pr "]);
    assert_eq!(done["integrate"].result, "success", "{done:#?}");
    let local = local_run(&b, "user-auth");
    assert_eq!(
        task_trees(&b.remote(), "user-auth"),
        task_trees(&local, "user-auth")
    );
}

/// A failed task skips what depends on it and the integration; a job ordered after it only to
/// keep to `--max-agents` still runs. The feature is named like a command, which its jobs run
/// as `run <feature>`.
#[test]
fn a_failed_job_skips_its_dependents_but_not_the_jobs_only_ordered_after_it() {
    let b = package(
        "list",
        &tasks_md(&[
            shell_task("1", "Fails", "", "echo broken && exit 1"),
            shell_task("2", "Alone", "", "echo two > two.txt"),
            shell_task("3", "After 1", "Task 1", "echo three > three.txt"),
        ]),
        "",
    );
    let yaml = workflow_yaml(&b, "list", &["--max-agents", "1"]);
    assert!(
        yaml.contains("cargo spec-exec run list --task 2 --remote origin --push"),
        "{yaml}"
    );
    let workflow = parse_linted(&b, &yaml);
    let jobs = jobs_of(&workflow);
    let needs_of = |id: &str| jobs.iter().find(|j| j.id == id).unwrap().needs.clone();
    assert!(
        needs_of("task-2").contains(&"task-1".to_owned()),
        "task 2 comes after task 1 to keep to one at a time: {yaml}"
    );
    let (done, _) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(ran(&done, "failure"), set(&["task-1"]), "{done:#?}");
    assert_eq!(ran(&done, "success"), set(&["task-2"]), "{done:#?}");
    assert_eq!(
        ran(&done, "skipped"),
        set(&["task-3", "integrate"]),
        "{done:#?}"
    );
    assert_eq!(done["task-1"].outputs["status"], "failed");
    assert_eq!(
        task_trees(&b.remote(), "list")
            .into_keys()
            .collect::<Vec<_>>(),
        ["spec/list/2"]
    );
}

/// A review with no rework that asks for changes fails its gate, as in a local run: its job
/// fails, and what waits for it does not run.
#[test]
fn a_review_without_a_rework_that_asks_for_changes_fails_its_job() {
    let b = package(
        "norework",
        &tasks_md(&[
            shell_task("1", "Build", "", "echo one > one.txt"),
            shell_task("CR-A", "Code review", "Task 1", &review(9)),
            shell_task("2", "After the review", "CR-A", "echo two > two.txt"),
        ]),
        "",
    );
    let (done, _) = execute(&b, &workflow_of(&b, "norework"), &["cargo spec-exec pr "]);
    let local = b.clone("local");
    let out = b
        .command(&local, BIN, &["spec-exec", "norework", "--agent", "shell"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(ran(&done, "success"), set(&["task-1"]), "{done:#?}");
    assert_eq!(ran(&done, "failure"), set(&["CR-A"]), "{done:#?}");
    assert_eq!(
        ran(&done, "skipped"),
        set(&["task-2", "integrate"]),
        "{done:#?}"
    );
}

/// A review round that fails (its agent, not its verdict) after the rework: the workflow run
/// again runs that round in the review's first job, and the gate's later jobs are skipped.
#[test]
fn a_workflow_run_again_after_a_failed_round_runs_that_round_in_the_first_review_job() {
    let marker = tempfile::tempdir().unwrap();
    let ready = marker.path().join("ready");
    let ready = shlex::try_quote(ready.to_str().unwrap())
        .unwrap()
        .into_owned();
    let review = format!(
        "mkdir -p code_review && case \"$SPEC_EXEC_BRANCH\" in *.round-2) test -e {ready} && v=APPROVED;; *) v='REQUIRES CHANGES';; esac && printf 'Status: %s\\n' \"$v\" > code_review/CR-A.md"
    );
    let b = package(
        "gate",
        &tasks_md(&[
            shell_task("1", "Build", "", "echo one > one.txt"),
            shell_task("CR-A", "Code review", "Task 1", &review),
            shell_task("RW-A", "Rework", "CR-A (failed)", "echo fixed >> fix.txt"),
            shell_task("2", "After the review", "CR-A", "cat fix.txt > two.txt"),
        ]),
        "",
    );
    let workflow = workflow_of(&b, "gate");
    let (first, _) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&first, "success"),
        set(&["task-1", "CR-A", "RW-A"]),
        "{first:#?}"
    );
    assert_eq!(ran(&first, "failure"), set(&["CR-A-round-2"]), "{first:#?}");

    fs::write(marker.path().join("ready"), "").unwrap();
    let (again, clones) = execute(&b, &workflow, &["cargo spec-exec pr "]);
    assert_eq!(
        ran(&again, "success"),
        set(&["task-1", "CR-A", "task-2", "integrate"]),
        "{again:#?}"
    );
    assert_eq!(again["CR-A"].outputs["verdict"], "approved");

    assert_as_a_local_run(&b, &clones, "gate", "");
}
