//! A project's repository: commits, branches, tags and releases, generated on first use and kept
//! as rendered JSON next to what the list filters look at.
//!
//! The history is made from the project's other records, so the objects agree with each other:
//! the default branch is a sequence of direct commits and merge request merges (a merged merge
//! request's head commit `sha` and its merge commit, or its squash commit, at its `merged_at`);
//! every open merge request's source branch exists with `sha` as its head; `develop` and
//! `release/2.x` exist when merge requests target them; tags sit on default-branch commits and
//! releases on tags. Git dates are written in the author's or committer's time zone, to the
//! second, as GitLab shows them (`2012-09-20T09:06:12.000+03:00`).
//!
//! Which commits a ref reaches is kept as a [`Reach`]: the default branch's commits up to a
//! position, plus a branch's own commits up to a sequence number. That answers `ref_name`
//! (branch, tag or sha), `all` and `first_parent` without walking a graph.
//!
//! Endpoints (the `Ctx` handlers at the bottom): `GET /projects/:id/repository/commits` (offset
//! pagination without counts, as GitLab; 404 `Repository Not Found` for an empty repository),
//! `/repository/branches`, `/repository/tags` and `/releases`.

use std::borrow::Cow;

use rand::Rng;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::content::{MergeRequestMeta, MrState, ProjectRecords};
use crate::pagination::{Counting, PageRequest, offset_page, offset_page_mapped};
use crate::query::Query;
use crate::records::{MilestoneRef, UserRef, to_bytes};
use crate::reply::{ApiError, Reply};
use crate::routes::Ctx;
use crate::text;
use crate::time::{DateTime, GitTime, MS_PER_DAY, Millis, ymd_ms};
use crate::world::{Project, User, World, instant, rng_for};

const MINUTE: Millis = 60_000;

/// A commit's contents, kept to render it inside branches, tags, releases and jobs too.
pub(crate) struct CommitData {
    pub sha: Box<str>,
    pub parents: Vec<Box<str>>,
    pub message: String,
    pub trailers: Vec<(&'static str, String)>,
    pub author_name: Box<str>,
    pub author_email: Box<str>,
    pub authored: GitTime,
    pub committer_name: Box<str>,
    pub committer_email: Box<str>,
    pub committed: GitTime,
    pub web_url: String,
}

impl CommitData {
    /// `API::Entities::Commit`; `trailers` fills `trailers` and `extended_trailers` (GitLab
    /// parses them only when asked to).
    pub fn record(&self, trailers: bool) -> CommitRecord<'_> {
        let title = self.message.lines().next().unwrap_or("");
        let parsed: &[(&str, String)] = if trailers { &self.trailers } else { &[] };
        CommitRecord {
            id: &self.sha,
            short_id: &self.sha[..8],
            created_at: self.committed,
            parent_ids: &self.parents,
            title,
            message: &self.message,
            author_name: &self.author_name,
            author_email: &self.author_email,
            authored_date: self.authored,
            committer_name: &self.committer_name,
            committer_email: &self.committer_email,
            committed_date: self.committed,
            trailers: Trailers { pairs: parsed, extended: false },
            extended_trailers: Trailers { pairs: parsed, extended: true },
            web_url: &self.web_url,
        }
    }
}

/// `API::Entities::Commit`.
#[derive(Serialize)]
pub(crate) struct CommitRecord<'a> {
    id: &'a str,
    short_id: &'a str,
    created_at: GitTime,
    parent_ids: &'a [Box<str>],
    title: &'a str,
    message: &'a str,
    author_name: &'a str,
    author_email: &'a str,
    authored_date: GitTime,
    committer_name: &'a str,
    committer_email: &'a str,
    committed_date: GitTime,
    trailers: Trailers<'a>,
    extended_trailers: Trailers<'a>,
    web_url: &'a str,
}

/// Git trailers as GitLab shows them: `{"Key": "value"}`, or `{"Key": ["value", ...]}` extended.
struct Trailers<'a> {
    pairs: &'a [(&'static str, String)],
    extended: bool,
}

impl Serialize for Trailers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.pairs.len()))?;
        for (key, value) in self.pairs {
            if self.extended {
                map.serialize_entry(key, &[value])?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Which commits a ref reaches: the default branch's commits at positions `..= default_pos`, and
/// the own commits of branch `branch.0` with sequence numbers `..= branch.1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    pub default_pos: Option<u32>,
    pub branch: Option<(u16, u32)>,
}

impl Reach {
    fn everything_on_default() -> Self {
        Reach { default_pos: Some(u32::MAX), branch: None }
    }

    fn reaches(&self, c: &Commit) -> bool {
        let on_default = matches!((self.default_pos, c.default_pos), (Some(bound), Some(pos)) if pos <= bound);
        let on_branch =
            matches!((self.branch, c.branch), (Some((b, bound)), Some((cb, seq))) if b == cb && seq <= bound);
        on_default || on_branch
    }
}

/// Lines added and removed by a commit (`with_stats=true`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub additions: u32,
    pub deletions: u32,
}

/// One commit and what the commits list filters on.
pub(crate) struct Commit {
    pub data: CommitData,
    pub committed_at: Millis,
    /// Position in the default branch's history (oldest 0), when the default branch has it.
    pub default_pos: Option<u32>,
    /// The branch whose own commit this is, and its sequence number there.
    pub branch: Option<(u16, u32)>,
    /// Reached only as a merge's second parent (`first_parent=true` hides it).
    pub second_parent: bool,
    /// Bits into [`text::FILES`]: the files the commit touches.
    pub files: u16,
    pub stats: Stats,
    /// Lowercase author name and email, for `author`.
    pub author_text: Box<str>,
    pub json: Box<[u8]>,
    /// The JSON with `trailers` parsed, when the commit has trailers.
    pub json_with_trailers: Option<Box<[u8]>>,
}

impl Commit {
    /// The position of the commit in topological order (higher is newer).
    fn topo_key(&self) -> (u32, u32) {
        match (self.default_pos, self.branch) {
            (Some(pos), _) => (pos, 0),
            (None, Some((_, seq))) => (0, seq + 1),
            (None, None) => (0, 0),
        }
    }
}

/// A branch.
pub(crate) struct Branch {
    pub name: Box<str>,
    pub reach: Reach,
    /// When its head was committed (`sort=updated_*`).
    pub updated: Millis,
    pub json: Box<[u8]>,
}

/// A tag.
pub(crate) struct Tag {
    pub name: Box<str>,
    /// Index into the commits.
    pub commit: usize,
    /// When its commit was committed (`order_by=updated`).
    pub updated: Millis,
    /// `(major, minor, patch, is a final release, pre-release number)`, for `order_by=version`.
    pub version: (u64, u64, u64, u64, u64),
    pub json: Box<[u8]>,
}

/// A release.
pub(crate) struct Release {
    pub created_at: Millis,
    pub released_at: Millis,
    pub json: Box<[u8]>,
    /// The JSON with `description_html` (`include_html_description=true`).
    pub json_with_html: Box<[u8]>,
}

/// A project's repository. Empty for an empty repository.
#[derive(Default)]
pub(crate) struct Repository {
    /// Newest first (by committed date), the order `GET .../commits` lists them in.
    pub commits: Vec<Commit>,
    /// Indexes into `commits`, newest first in topological order (`order=topo`).
    pub topo: Vec<u32>,
    /// By name.
    pub branches: Vec<Branch>,
    /// Newest first (by commit date).
    pub tags: Vec<Tag>,
    /// Newest first (by release date).
    pub releases: Vec<Release>,
    /// Index of the default branch in `branches`.
    pub default_branch: usize,
}

/// A commit being generated (before the list is put in date order).
struct Draft {
    data: CommitData,
    committed_at: Millis,
    default_pos: Option<u32>,
    branch: Option<(u16, u32)>,
    second_parent: bool,
    files: u16,
    stats: Stats,
}

/// A branch being generated.
struct BranchDraft {
    name: String,
    reach: Reach,
    /// Index of its head commit into the drafts.
    head: usize,
    merged: bool,
}

/// What a commit is made of.
struct CommitSpec<'u> {
    sha: String,
    parents: Vec<Box<str>>,
    message: text::CommitMessage,
    author: &'u User,
    committer: &'u User,
    authored_at: Millis,
    committed_at: Millis,
}

struct Builder<'a> {
    world: &'a World,
    project: &'a Project,
    drafts: Vec<Draft>,
}

impl<'a> Builder<'a> {
    fn user(&self, id: u64) -> &'a User {
        self.world.user(id).unwrap_or(self.world.current_user())
    }

    /// A user id, skewed towards the first users (as issue authors are).
    fn person(&self, rng: &mut impl Rng) -> u64 {
        let n = self.world.users().len() as u64;
        rng.random_range(1..=n).min(rng.random_range(1..=n))
    }

    fn add(
        &mut self,
        rng: &mut impl Rng,
        spec: CommitSpec<'_>,
        default_pos: Option<u32>,
        branch: Option<(u16, u32)>,
    ) -> usize {
        let CommitSpec { sha, parents, message, author, committer, authored_at, committed_at } = spec;
        // Git keeps seconds.
        let committed_at = committed_at - committed_at.rem_euclid(1000);
        let files = if parents.is_empty() { 0b1111 } else { 1u16 << rng.random_range(0..text::FILES.len()) };
        let files = if rng.random_ratio(1, 3) { files | 1u16 << rng.random_range(0..text::FILES.len()) } else { files };
        let stats = Stats { additions: rng.random_range(1..=240), deletions: rng.random_range(0..=90) };
        let data = CommitData {
            web_url: format!("{}/-/commit/{sha}", self.project.web_url),
            sha: sha.into(),
            parents,
            message: message.text,
            trailers: message.trailers,
            author_name: author.name.as_str().into(),
            author_email: author.email().into(),
            authored: GitTime::at(authored_at, author.utc_offset),
            committer_name: committer.name.as_str().into(),
            committer_email: committer.email().into(),
            committed: GitTime::at(committed_at, committer.utc_offset),
        };
        self.drafts.push(Draft { data, committed_at, default_pos, branch, second_parent: false, files, stats });
        self.drafts.len() - 1
    }

    fn sha_of(&self, index: usize) -> Box<str> {
        self.drafts[index].data.sha.clone()
    }

    /// A commit made directly by a person at `at`.
    fn direct(&self, rng: &mut impl Rng, at: Millis, parent: Option<Box<str>>) -> CommitSpec<'a> {
        let author = self.user(self.person(rng));
        let committer = if rng.random_ratio(1, 7) { self.user(self.person(rng)) } else { author };
        let co_author = rng.random_ratio(1, 12).then(|| self.user(self.person(rng)));
        let signature = format!("{} <{}>", author.name, author.email());
        let co = co_author.map(|u| format!("{} <{}>", u.name, u.email()));
        let message = if parent.is_none() {
            text::CommitMessage { text: "Initial commit\n".to_owned(), trailers: Vec::new() }
        } else {
            text::commit_message(rng, &signature, co.as_deref())
        };
        let authored_at = if rng.random_ratio(1, 4) { at - rng.random_range(1..=3 * 24 * 60) * MINUTE } else { at };
        CommitSpec {
            sha: text::sha(rng),
            parents: parent.into_iter().collect(),
            message,
            author,
            committer,
            authored_at,
            committed_at: at,
        }
    }
}

/// A merged merge request, as the repository needs it.
struct Merge<'m> {
    iid: u64,
    title: &'m str,
    author: u64,
    merger: u64,
    created_at: Millis,
    merged_at: Millis,
    source: &'m str,
    target: &'m str,
    sha: &'m str,
    merge_commit: &'m str,
    squash: bool,
}

/// The merge requests a repository is made from: the merged ones, and those whose source branch
/// may still exist (open, locked, closed).
struct MergeRequests<'m> {
    merged: Vec<Merge<'m>>,
    unmerged: Vec<&'m MergeRequestMeta>,
}

impl<'m> MergeRequests<'m> {
    fn of(records: &'m ProjectRecords) -> Self {
        let mut merged = Vec::new();
        let mut unmerged = Vec::new();
        for item in &records.merge_requests.items {
            let m = &item.meta;
            match (m.state, m.merged_at, &m.merge_commit) {
                (MrState::Merged, Some(merged_at), Some(merge_commit)) => merged.push(Merge {
                    iid: m.common.iid,
                    title: &m.common.title,
                    author: m.common.author,
                    merger: m.finished_by.unwrap_or(m.common.author),
                    created_at: m.common.created_at,
                    merged_at,
                    source: &m.source_branch,
                    target: &m.target_branch,
                    sha: &m.sha,
                    merge_commit,
                    squash: m.squash,
                }),
                (MrState::Opened | MrState::Locked | MrState::Closed, _, _) => unmerged.push(m),
                _ => {}
            }
        }
        Self { merged, unmerged }
    }
}

/// The default branch's first-parent commits as `(committed at, position, draft index)`, oldest
/// first: where other branches fork and tags sit.
struct Mainline {
    commits: Vec<(Millis, u32, usize)>,
}

impl Mainline {
    /// The newest first-parent commit at `at`: its position and draft index.
    fn fork_at(&self, at: Millis) -> (u32, usize) {
        let i = self.commits.partition_point(|(t, _, _)| *t <= at).max(1) - 1;
        (self.commits[i].1, self.commits[i].2)
    }

    fn tip(&self) -> usize {
        self.commits.last().map_or(0, |c| c.2)
    }
}

/// When a project's history runs: from just after its creation to the end of generated time.
#[derive(Clone, Copy)]
struct Span {
    start: Millis,
    end: Millis,
}

impl<'a> Builder<'a> {
    /// The default branch: an initial commit, then `direct` commits and the merges into it, in
    /// time order.
    fn default_branch(&mut self, rng: &mut impl Rng, merges: &[Merge<'_>], span: Span, direct: usize) -> Mainline {
        enum Event {
            Direct,
            Merge(usize),
        }
        let default_branch = self.project.default_branch.as_str();
        let mut events: Vec<(Millis, Event)> =
            (1..direct).map(|_| (instant(rng, span.start, span.end), Event::Direct)).collect();
        events.extend(
            merges
                .iter()
                .enumerate()
                .filter(|(_, m)| m.target == default_branch)
                .map(|(i, m)| (m.merged_at, Event::Merge(i))),
        );
        events.sort_by_key(|(at, _)| *at);
        let initial = self.direct(rng, span.start, None);
        let mut tip = self.add(rng, initial, Some(0), None);
        let mut pos = 1u32;
        let mut mainline = Mainline { commits: vec![(span.start, 0, tip)] };
        for (at, event) in events {
            let at = at.max(self.drafts[tip].committed_at + MINUTE);
            tip = match event {
                Event::Direct => {
                    let spec = self.direct(rng, at, Some(self.sha_of(tip)));
                    self.add(rng, spec, Some(pos), None)
                }
                Event::Merge(i) => self.merge(rng, &merges[i], tip, at, &mut pos),
            };
            mainline.commits.push((self.drafts[tip].committed_at, pos, tip));
            pos += 1;
        }
        mainline
    }

    /// A merge request merged into the default branch at `at` on top of `tip`: its squash commit,
    /// or its head commit (reached as the second parent) and a merge commit. Returns the new tip.
    fn merge(&mut self, rng: &mut impl Rng, m: &Merge<'_>, tip: usize, at: Millis, pos: &mut u32) -> usize {
        let path = &self.project.path_with_namespace;
        let (author, merger) = (self.user(m.author), self.user(m.merger));
        if m.squash {
            let text = format!("{}\n\nSee merge request {path}!{}\n", m.title, m.iid);
            let spec = CommitSpec {
                sha: m.merge_commit.to_owned(),
                parents: vec![self.sha_of(tip)],
                message: text::CommitMessage { text, trailers: Vec::new() },
                author,
                committer: merger,
                authored_at: instant(rng, m.created_at, at),
                committed_at: at,
            };
            return self.add(rng, spec, Some(*pos), None);
        }
        let head_at = instant(rng, m.created_at.min(at - MINUTE), at - MINUTE);
        let signature = format!("{} <{}>", author.name, author.email());
        let head = CommitSpec {
            sha: m.sha.to_owned(),
            parents: vec![self.sha_of(tip)],
            message: text::commit_message(rng, &signature, None),
            author,
            committer: author,
            authored_at: head_at,
            committed_at: head_at,
        };
        let head = self.add(rng, head, Some(*pos), None);
        self.drafts[head].second_parent = true;
        *pos += 1;
        let text = format!(
            "Merge branch '{}' into '{}'\n\n{}\n\nSee merge request {path}!{}\n",
            m.source, self.project.default_branch, m.title, m.iid
        );
        let spec = CommitSpec {
            sha: m.merge_commit.to_owned(),
            parents: vec![self.sha_of(tip), self.sha_of(head)],
            message: text::CommitMessage { text, trailers: Vec::new() },
            author: merger,
            committer: merger,
            authored_at: at,
            committed_at: at,
        };
        self.add(rng, spec, Some(*pos), None)
    }

    /// `develop` and `release/2.x`, when merge requests target them: forked from the default
    /// branch, their own commits are the merges into them.
    fn long_lived_branches(
        &mut self,
        rng: &mut impl Rng,
        mrs: &MergeRequests<'_>,
        mainline: &Mainline,
        span: Span,
        branches: &mut Vec<BranchDraft>,
    ) {
        for target in ["develop", "release/2.x"] {
            let into: Vec<&Merge<'_>> = mrs.merged.iter().filter(|m| m.target == target).collect();
            let targeted = into.len() + mrs.unmerged.iter().filter(|m| &*m.target_branch == target).count();
            if targeted == 0 {
                continue;
            }
            let branch = branches.len() as u16;
            let (fork_pos, fork) = mainline.fork_at(span.start + (span.end - span.start) / 3);
            let mut head = fork;
            let mut seq = 0;
            for m in into {
                let (author, merger) = (self.user(m.author), self.user(m.merger));
                let text = format!("{}\n\nSee merge request {}!{}\n", m.title, self.project.path_with_namespace, m.iid);
                let at = m.merged_at.max(self.drafts[head].committed_at + MINUTE);
                let spec = CommitSpec {
                    sha: m.merge_commit.to_owned(),
                    parents: vec![self.sha_of(head)],
                    message: text::CommitMessage { text, trailers: Vec::new() },
                    author,
                    committer: merger,
                    authored_at: at,
                    committed_at: at,
                };
                head = self.add(rng, spec, None, Some((branch, seq)));
                seq += 1;
            }
            let reach = Reach { default_pos: Some(fork_pos), branch: (seq > 0).then(|| (branch, seq - 1)) };
            branches.push(BranchDraft { name: target.to_owned(), reach, head, merged: seq == 0 });
        }
    }

    /// The source branches of open (and a third of the closed) merge requests, with `sha` as
    /// their head; and a fifth of the merged ones, kept after the merge.
    fn merge_request_branches(
        &mut self,
        rng: &mut impl Rng,
        mrs: &MergeRequests<'_>,
        mainline: &Mainline,
        branches: &mut Vec<BranchDraft>,
    ) {
        for m in &mrs.unmerged {
            if m.state == MrState::Closed && !rng.random_ratio(1, 3) {
                continue;
            }
            let branch = branches.len() as u16;
            let created = m.common.created_at;
            let (fork_pos, fork) = mainline.fork_at(created);
            let extra = rng.random_range(0..=2);
            let mut head = fork;
            for seq in 0..=extra {
                let at = instant(rng, created, m.common.updated_at).max(self.drafts[head].committed_at + MINUTE);
                let mut spec = self.direct(rng, at, Some(self.sha_of(head)));
                spec.author = self.user(m.common.author);
                if seq == extra {
                    spec.sha = m.sha.to_string();
                }
                head = self.add(rng, spec, None, Some((branch, seq)));
            }
            let reach = Reach { default_pos: Some(fork_pos), branch: Some((branch, extra)) };
            branches.push(BranchDraft { name: m.source_branch.to_string(), reach, head, merged: false });
        }
        let default_branch = self.project.default_branch.as_str();
        for m in mrs.merged.iter().filter(|m| m.target == default_branch && !m.squash) {
            if !rng.random_ratio(1, 5) {
                continue;
            }
            if let Some(head) = self.drafts.iter().position(|d| *d.data.sha == *m.sha) {
                let reach = Reach { default_pos: self.drafts[head].default_pos, branch: None };
                branches.push(BranchDraft { name: m.source.to_owned(), reach, head, merged: true });
            }
        }
    }

    /// Up to two experiments nobody merged.
    fn stale_branches(&mut self, rng: &mut impl Rng, mainline: &Mainline, span: Span, branches: &mut Vec<BranchDraft>) {
        for n in 0..rng.random_range(0..=2) {
            let branch = branches.len() as u16;
            let (fork_pos, fork) = mainline.fork_at(instant(rng, span.start, span.end));
            let at = self.drafts[fork].committed_at + rng.random_range(10..=5_000) * MINUTE;
            let spec = self.direct(rng, at, Some(self.sha_of(fork)));
            let head = self.add(rng, spec, None, Some((branch, 0)));
            let name = ["wip/experiment-ünïcode", "renovate/rust-1.x", "spike/grpc-🚀"][n % 3].to_owned();
            let reach = Reach { default_pos: Some(fork_pos), branch: Some((branch, 0)) };
            branches.push(BranchDraft { name, reach, head, merged: false });
        }
    }

    /// The commits, rendered, newest first; and where each draft went in that order.
    fn finish(self) -> (Vec<Commit>, Vec<usize>) {
        let mut order: Vec<usize> = (0..self.drafts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((self.drafts[i].committed_at, i)));
        let mut new_index = vec![0usize; self.drafts.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut drafts: Vec<Option<Draft>> = self.drafts.into_iter().map(Some).collect();
        let commits = order.iter().filter_map(|&old| drafts[old].take()).map(Commit::render).collect();
        (commits, new_index)
    }
}

impl Commit {
    fn render(d: Draft) -> Commit {
        let json = to_bytes(&d.data.record(false)).into_boxed_slice();
        let json_with_trailers =
            (!d.data.trailers.is_empty()).then(|| to_bytes(&d.data.record(true)).into_boxed_slice());
        let author_text = format!("{} {}", d.data.author_name, d.data.author_email).to_lowercase().into();
        Commit {
            committed_at: d.committed_at,
            default_pos: d.default_pos,
            branch: d.branch,
            second_parent: d.second_parent,
            files: d.files,
            stats: d.stats,
            author_text,
            json,
            json_with_trailers,
            data: d.data,
        }
    }
}

impl Repository {
    /// Generates the repository of the project at `index` (its merge requests first).
    pub(crate) fn generate(world: &World, index: usize) -> Repository {
        let project = &world.projects()[index];
        if project.empty_repo {
            return Repository::default();
        }
        let mrs = MergeRequests::of(world.records(index));
        let mut rng = rng_for(world.seed(), 0x2E_0001, project.id);
        let span =
            Span { start: project.created_at.millis + rng.random_range(5..=90) * MINUTE, end: ymd_ms(2025, 10, 31) };
        let direct = match project.path_with_namespace.as_str() {
            p if p == crate::world::BIG_PROJECT => 1_500,
            p if crate::world::DEMO_PROJECTS.contains(&p) => rng.random_range(60..=200),
            _ => rng.random_range(3..=40),
        };
        let mut b = Builder { world, project, drafts: Vec::new() };
        let mainline = b.default_branch(&mut rng, &mrs.merged, span, direct);
        let mut branches = vec![BranchDraft {
            name: project.default_branch.clone(),
            reach: Reach::everything_on_default(),
            head: mainline.tip(),
            merged: false,
        }];
        b.long_lived_branches(&mut rng, &mrs, &mainline, span, &mut branches);
        b.merge_request_branches(&mut rng, &mrs, &mainline, &mut branches);
        b.stale_branches(&mut rng, &mainline, span, &mut branches);
        let (commits, new_index) = b.finish();
        let mut topo: Vec<u32> = (0..commits.len() as u32).collect();
        topo.sort_by_key(|&i| std::cmp::Reverse(commits[i as usize].topo_key()));

        let protected_tags = rng.random_bool(0.5);
        let mut repo = Repository { commits, topo, ..Repository::default() };
        repo.branches = render_branches(project, &repo.commits, branches, &new_index);
        repo.default_branch = repo.branches.iter().position(|b| *b.name == project.default_branch).unwrap_or(0);
        let (tags, releases) = tags_and_releases(world, index, &mut rng, &repo.commits, &mrs.merged, protected_tags);
        repo.tags = tags;
        repo.releases = releases;
        repo
    }
}

/// The branches' JSON, by name.
fn render_branches(
    project: &Project,
    commits: &[Commit],
    drafts: Vec<BranchDraft>,
    new_index: &[usize],
) -> Vec<Branch> {
    let default_branch = project.default_branch.as_str();
    let mut branches: Vec<Branch> = drafts
        .into_iter()
        .map(|d| {
            let head = &commits[new_index[d.head]];
            let is_default = d.name == default_branch;
            let protected = is_default || d.name.starts_with("release/") || d.name == "develop";
            let record = BranchRecord {
                name: &d.name,
                commit: head.data.record(false),
                merged: d.merged,
                protected,
                developers_can_push: !protected || d.name == "develop",
                developers_can_merge: !protected || !is_default,
                can_push: true,
                default: is_default,
                web_url: format!("{}/-/tree/{}", project.web_url, d.name),
            };
            Branch {
                json: to_bytes(&record).into_boxed_slice(),
                name: d.name.into_boxed_str(),
                reach: d.reach,
                updated: head.committed_at,
            }
        })
        .collect();
    branches.sort_by(|a, b| a.name.cmp(&b.name));
    branches
}

/// Tags on first-parent commits of the default branch, spread over its history with growing
/// versions, and releases on most annotated ones; both newest first.
fn tags_and_releases(
    world: &World,
    index: usize,
    rng: &mut impl Rng,
    commits: &[Commit],
    merges: &[Merge<'_>],
    protected: bool,
) -> (Vec<Tag>, Vec<Release>) {
    let project = &world.projects()[index];
    let tag_count = match project.path_with_namespace.as_str() {
        p if p == crate::world::BIG_PROJECT => 60,
        p if crate::world::DEMO_PROJECTS.contains(&p) => rng.random_range(8..=25),
        _ if rng.random_bool(0.5) => 0,
        _ => rng.random_range(1..=6),
    };
    let candidates: Vec<usize> =
        (0..commits.len()).rev().filter(|&i| commits[i].default_pos.is_some() && !commits[i].second_parent).collect();
    let tag_count = tag_count.min(candidates.len());
    let mut tagged: Vec<usize> =
        (0..tag_count).map(|k| candidates[(k + 1) * candidates.len() / (tag_count + 1)]).collect();
    tagged.dedup();
    let mut version = (u64::from(rng.random_bool(0.3)), 1u64, 0u64);
    let mut rc = 0;
    let mut previous_at = 0;
    let mut tags = Vec::with_capacity(tagged.len());
    let mut releases = Vec::new();
    for (k, &commit_index) in tagged.iter().enumerate() {
        let commit = &commits[commit_index];
        let pre_release = rng.random_ratio(1, 10);
        rc = if pre_release { rc + 1 } else { 0 };
        let name = if pre_release {
            format!("v{}.{}.{}-rc.{rc}", version.0, version.1, version.2)
        } else {
            format!("v{}.{}.{}", version.0, version.1, version.2)
        };
        let version_key = (version.0, version.1, version.2, u64::from(!pre_release), rc);
        if !pre_release {
            version = match rng.random_range(0..10) {
                0 => (version.0 + 1, 0, 0),
                1..=3 => (version.0, version.1 + 1, 0),
                _ => (version.0, version.1, version.2 + 1),
            };
        }
        let tagger = maintainer(world, rng);
        let annotated = rng.random_ratio(7, 10);
        let tagged_at = commit.committed_at + rng.random_range(5..=600) * MINUTE;
        let has_release = annotated && rng.random_ratio(4, 5);
        // The merge requests merged since the previous tag make the release notes.
        let notes: Vec<(u64, &str)> = merges
            .iter()
            .filter(|m| m.merged_at > previous_at && m.merged_at <= commit.committed_at)
            .take(6)
            .map(|m| (m.iid, m.title))
            .collect();
        previous_at = commit.committed_at;
        let description = has_release.then(|| text::release_notes(rng, &name, &notes)).flatten();
        let release_ref = has_release.then(|| TagRelease { tag_name: &name, description: description.as_deref() });
        let tag_message = if annotated {
            format!("Release {name} 🎉\n\n{} changes since the last tag.", notes.len())
        } else {
            String::new()
        };
        let record = TagRecord {
            name: &name,
            message: &tag_message,
            target: if annotated { text::sha(rng) } else { commit.data.sha.to_string() },
            commit: commit.data.record(false),
            release: release_ref,
            protected,
            created_at: annotated.then(|| GitTime::at(tagged_at, tagger.utc_offset)),
        };
        tags.push(Tag {
            name: name.clone().into_boxed_str(),
            commit: commit_index,
            updated: commit.committed_at,
            version: version_key,
            json: to_bytes(&record).into_boxed_slice(),
        });
        if has_release {
            let upcoming = k + 1 == tagged.len() && rng.random_ratio(1, 4);
            let facts = ReleaseFacts { tag: &name, commit, description: description.as_deref(), tagged_at, upcoming };
            releases.push(make_release(world, index, rng, facts, releases.len()));
        }
    }
    tags.sort_by_key(|t| std::cmp::Reverse((t.updated, t.version)));
    releases.sort_by_key(|r: &Release| std::cmp::Reverse((r.released_at, r.created_at)));
    (tags, releases)
}

/// Someone who tags or releases: a maintainer, skewed to the first users.
fn maintainer<'w>(world: &'w World, rng: &mut impl Rng) -> &'w User {
    let n = world.users().len() as u64;
    let id = rng.random_range(1..=n).min(rng.random_range(1..=n));
    world.user(id).unwrap_or(world.current_user())
}

/// `API::Entities::Branch`.
#[derive(Serialize)]
struct BranchRecord<'a> {
    name: &'a str,
    commit: CommitRecord<'a>,
    merged: bool,
    protected: bool,
    developers_can_push: bool,
    developers_can_merge: bool,
    can_push: bool,
    default: bool,
    web_url: String,
}

/// The release of a tag, as the tag shows it.
#[derive(Serialize)]
struct TagRelease<'a> {
    tag_name: &'a str,
    description: Option<&'a str>,
}

/// `API::Entities::Tag`.
#[derive(Serialize)]
struct TagRecord<'a> {
    name: &'a str,
    message: &'a str,
    target: String,
    commit: CommitRecord<'a>,
    release: Option<TagRelease<'a>>,
    protected: bool,
    created_at: Option<GitTime>,
}

#[derive(Serialize)]
struct IssueStats {
    total: usize,
    closed: usize,
}

/// `API::Entities::MilestoneWithStats`, as releases show their milestones.
#[derive(Serialize)]
struct ReleaseMilestone<'a> {
    #[serde(flatten)]
    milestone: MilestoneRef<'a>,
    issue_stats: IssueStats,
}

#[derive(Serialize)]
struct Source {
    format: &'static str,
    url: String,
}

#[derive(Serialize)]
struct Link {
    id: u64,
    name: &'static str,
    url: String,
    direct_asset_url: String,
    link_type: &'static str,
}

#[derive(Serialize)]
struct Assets {
    count: usize,
    sources: Vec<Source>,
    links: Vec<Link>,
}

#[derive(Serialize)]
struct Evidence {
    sha: String,
    filepath: String,
    collected_at: DateTime,
}

#[derive(Serialize)]
struct ReleaseLinks {
    closed_issues_url: String,
    closed_merge_requests_url: String,
    edit_url: String,
    merged_merge_requests_url: String,
    opened_issues_url: String,
    opened_merge_requests_url: String,
    #[serde(rename = "self")]
    self_: String,
}

/// `API::Entities::Release`.
#[derive(Serialize)]
struct ReleaseRecord<'a> {
    name: String,
    tag_name: &'a str,
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description_html: Option<String>,
    created_at: DateTime,
    released_at: DateTime,
    upcoming_release: bool,
    author: UserRef<'a>,
    commit: CommitRecord<'a>,
    milestones: Vec<ReleaseMilestone<'a>>,
    commit_path: String,
    tag_path: String,
    assets: Assets,
    evidences: Vec<Evidence>,
    _links: ReleaseLinks,
}

struct ReleaseFacts<'a> {
    tag: &'a str,
    commit: &'a Commit,
    description: Option<&'a str>,
    tagged_at: Millis,
    upcoming: bool,
}

fn make_release(world: &World, index: usize, rng: &mut impl Rng, facts: ReleaseFacts<'_>, n: usize) -> Release {
    let project = &world.projects()[index];
    let ReleaseFacts { tag, commit, description, tagged_at, upcoming } = facts;
    let created_at = tagged_at + rng.random_range(1..=3 * 24 * 60) * MINUTE;
    let released_at = if upcoming {
        ymd_ms(2030, 1, 15) + 10 * 3_600_000
    } else if rng.random_ratio(1, 10) {
        // A historical release: released before it was created in GitLab.
        created_at - rng.random_range(1..=30) * MS_PER_DAY
    } else {
        created_at
    };
    let web = &project.web_url;
    let path = &project.path_with_namespace;
    let name =
        if rng.random_bool(0.5) { tag.to_owned() } else { format!("Version {} — “{}”", &tag[1..], project.name) };
    let milestone =
        (!project.milestones.is_empty() && rng.random_bool(0.4)).then(|| rng.random_range(0..project.milestones.len()));
    let milestones = milestone
        .map(|m| {
            let issues = &world.records(index).issues.items;
            let with: Vec<_> = issues.iter().filter(|i| i.meta.common.milestone == Some(m as u16)).collect();
            ReleaseMilestone {
                milestone: MilestoneRef::from(&project.milestones[m]),
                issue_stats: IssueStats { total: with.len(), closed: with.iter().filter(|i| !i.meta.open).count() },
            }
        })
        .into_iter()
        .collect();
    let archive =
        |format: &'static str| Source { format, url: format!("{web}/-/archive/{tag}/{}-{tag}.{format}", project.path) };
    let link_count = rng.random_range(0..=2);
    let links: Vec<Link> = (0..link_count)
        .map(|k| {
            let (name, link_type) =
                [("Linux binary 🐧", "package"), ("Runbook", "runbook"), ("Screenshot", "image")][k];
            let url = format!("https://downloads.example.com/{}/{tag}/{}", project.path, k + 1);
            Link {
                id: project.id * 1_000 + (n * 3 + k) as u64 + 1,
                name,
                direct_asset_url: format!("{web}/-/releases/{tag}/downloads/asset-{}", k + 1),
                url,
                link_type,
            }
        })
        .collect();
    let sources: Vec<Source> = ["zip", "tar.gz", "tar.bz2", "tar"].into_iter().map(archive).collect();
    let query = |what: &str, state: &str| format!("{web}/-/{what}?release_tag={tag}&scope=all&state={state}");
    let author = maintainer(world, rng);
    let mut record = ReleaseRecord {
        name,
        tag_name: tag,
        description,
        description_html: None,
        created_at: DateTime::utc(created_at),
        released_at: DateTime::utc(released_at),
        upcoming_release: upcoming,
        author: UserRef::from(author),
        commit: commit.data.record(false),
        milestones,
        commit_path: format!("/{path}/-/commit/{}", commit.data.sha),
        tag_path: format!("/{path}/-/tags/{tag}"),
        assets: Assets { count: sources.len() + links.len(), sources, links },
        evidences: vec![Evidence {
            sha: text::hex(rng, 64),
            filepath: format!("{web}/-/releases/{tag}/evidences/{}.json", project.id * 100 + n as u64 + 1),
            collected_at: DateTime::utc(created_at),
        }],
        _links: ReleaseLinks {
            closed_issues_url: query("issues", "closed"),
            closed_merge_requests_url: query("merge_requests", "closed"),
            edit_url: format!("{web}/-/releases/{tag}/edit"),
            merged_merge_requests_url: query("merge_requests", "merged"),
            opened_issues_url: query("issues", "opened"),
            opened_merge_requests_url: query("merge_requests", "opened"),
            self_: format!("{web}/-/releases/{tag}"),
        },
    };
    let json = to_bytes(&record).into_boxed_slice();
    record.description_html = Some(text::markdown_html(description));
    Release { created_at, released_at, json, json_with_html: to_bytes(&record).into_boxed_slice() }
}

/// `GitLab`'s branch and tag `search`: `^term` matches a prefix, `term$` a suffix, anything else
/// a substring; case-insensitive.
fn name_matches(name: &str, search: Option<&str>) -> bool {
    let Some(search) = search else { return true };
    let name = name.to_lowercase();
    let term = search.to_lowercase();
    match (term.strip_prefix('^'), term.strip_suffix('$')) {
        (Some(prefix), _) => name.starts_with(prefix),
        (None, Some(suffix)) => name.ends_with(suffix),
        (None, None) => name.contains(&term),
    }
}

/// `GET /projects/:id/repository/commits` parameters.
struct CommitQuery<'q> {
    ref_name: Option<&'q str>,
    since: Option<i64>,
    until: Option<i64>,
    path: Option<&'q str>,
    author: Option<String>,
    all: bool,
    first_parent: bool,
    topo: bool,
    trailers: bool,
    with_stats: bool,
}

impl<'q> CommitQuery<'q> {
    fn parse(q: &'q Query) -> Result<Self, ApiError> {
        Ok(Self {
            ref_name: q.get("ref_name"),
            since: q.time("since")?,
            until: q.time("until")?,
            path: q.get("path").map(|p| p.trim_matches('/')),
            author: q.get("author").map(str::to_lowercase),
            all: q.flag("all")?.unwrap_or(false),
            first_parent: q.flag("first_parent")?.unwrap_or(false),
            topo: q.choice("order", &["default", "topo"])? == Some("topo"),
            trailers: q.flag("trailers")?.unwrap_or(false),
            with_stats: q.flag("with_stats")?.unwrap_or(false),
        })
    }

    fn touches(&self, commit: &Commit) -> bool {
        let Some(path) = self.path else { return true };
        text::FILES.iter().enumerate().any(|(bit, file)| {
            commit.files & (1 << bit) != 0 && (*file == path || file.starts_with(&format!("{path}/")))
        })
    }

    fn matches(&self, commit: &Commit, reach: Option<Reach>) -> bool {
        let micros = commit.committed_at.saturating_mul(1000);
        reach.is_none_or(|r| r.reaches(commit))
            && !(self.first_parent && commit.second_parent)
            && self.since.is_none_or(|s| micros >= s)
            && self.until.is_none_or(|u| micros <= u)
            && self.author.as_deref().is_none_or(|a| commit.author_text.contains(a))
            && self.touches(commit)
    }
}

impl Repository {
    /// What `ref_name` reaches: a branch, a tag or a commit sha (or a prefix of 7 or more).
    /// `None` for a ref that does not exist.
    fn resolve(&self, reference: &str) -> Option<Reach> {
        if let Some(branch) = self.branches.iter().find(|b| &*b.name == reference) {
            return Some(branch.reach);
        }
        if let Some(tag) = self.tags.iter().find(|t| &*t.name == reference) {
            return Some(Reach { default_pos: self.commits[tag.commit].default_pos, branch: None });
        }
        if reference.len() >= 7 {
            let commit = self.commits.iter().find(|c| c.data.sha.starts_with(reference))?;
            return Some(Reach { default_pos: commit.default_pos, branch: commit.branch });
        }
        None
    }
}

/// A commit's JSON with `stats` added (`with_stats=true`).
fn with_stats(json: &[u8], stats: Stats) -> Vec<u8> {
    let mut out = json[..json.len() - 1].to_vec();
    let total = stats.additions + stats.deletions;
    out.extend_from_slice(
        format!(r#","stats":{{"additions":{},"deletions":{},"total":{total}}}}}"#, stats.additions, stats.deletions)
            .as_bytes(),
    );
    out
}

impl Ctx<'_> {
    /// The repository of a project route; 404 for an unknown project.
    fn repository(&self, id_or_path: &str) -> Result<(&Project, &Repository), ApiError> {
        let index = self.project_at(id_or_path)?;
        Ok((&self.world.projects()[index], self.world.repository_of(index)))
    }

    /// `GET /projects/:id/repository/commits`.
    pub(crate) fn commits(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = CommitQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let (project, repo) = self.repository(id_or_path)?;
        if project.empty_repo {
            return Err(ApiError::NotFound("Repository"));
        }
        let reach = if spec.all {
            None
        } else {
            match spec.ref_name {
                None => Some(Reach::everything_on_default()),
                Some(reference) => match repo.resolve(reference) {
                    Some(reach) => Some(reach),
                    None => return Ok(offset_page(&self.url, page, &[])),
                },
            }
        };
        let order: Box<dyn Iterator<Item = usize>> =
            if spec.topo { Box::new(repo.topo.iter().map(|&i| i as usize)) } else { Box::new(0..repo.commits.len()) };
        let kept: Vec<&Commit> = order.map(|i| &repo.commits[i]).filter(|c| spec.matches(c, reach)).collect();
        Ok(offset_page_mapped(&self.url, page, &kept, Counting::Never, |c| {
            let json = match (&c.json_with_trailers, spec.trailers) {
                (Some(parsed), true) => parsed,
                _ => &c.json,
            };
            if spec.with_stats { Cow::Owned(with_stats(json, c.stats)) } else { Cow::Borrowed(&json[..]) }
        }))
    }

    /// `GET /projects/:id/repository/branches`: sorted by name; `search` (`^prefix`, `suffix$`),
    /// `sort` (`name_asc`, `updated_asc`, `updated_desc`).
    pub(crate) fn branches(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let search = self.query.get("search");
        let sort = self.query.choice("sort", &["name_asc", "updated_asc", "updated_desc"])?;
        let page = PageRequest::from_query(self.query)?;
        let (_, repo) = self.repository(id_or_path)?;
        let mut kept: Vec<&Branch> = repo.branches.iter().filter(|b| name_matches(&b.name, search)).collect();
        match sort {
            Some("updated_asc") => kept.sort_by_key(|b| b.updated),
            Some("updated_desc") => kept.sort_by_key(|b| std::cmp::Reverse(b.updated)),
            _ => {}
        }
        let items: Vec<&[u8]> = kept.iter().map(|b| &*b.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/repository/tags`: `order_by` (`updated` (default), `name`, `version`),
    /// `sort` (default `desc`), `search`.
    pub(crate) fn tags(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let order = self.query.choice("order_by", &["name", "updated", "version"])?.unwrap_or("updated");
        let desc = self.query.sort(true)?;
        let search = self.query.get("search");
        let page = PageRequest::from_query(self.query)?;
        let (_, repo) = self.repository(id_or_path)?;
        let mut kept: Vec<&Tag> = repo.tags.iter().filter(|t| name_matches(&t.name, search)).collect();
        match order {
            "name" => kept.sort_by(|a, b| a.name.cmp(&b.name)),
            "version" => kept.sort_by_key(|t| t.version),
            _ => kept.sort_by_key(|t| (t.updated, t.version)),
        }
        if desc {
            kept.reverse();
        }
        let items: Vec<&[u8]> = kept.iter().map(|t| &*t.json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/releases`: `order_by` (`released_at` (default), `created_at`), `sort`
    /// (default `desc`), `include_html_description`.
    pub(crate) fn releases(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let by_created = self.query.choice("order_by", &["released_at", "created_at"])? == Some("created_at");
        let desc = self.query.sort(true)?;
        let html = self.query.flag("include_html_description")?.unwrap_or(false);
        let page = PageRequest::from_query(self.query)?;
        let (_, repo) = self.repository(id_or_path)?;
        let mut kept: Vec<&Release> = repo.releases.iter().collect();
        kept.sort_by_key(|r| if by_created { (r.created_at, r.released_at) } else { (r.released_at, r.created_at) });
        if desc {
            kept.reverse();
        }
        let items: Vec<&[u8]> = kept.iter().map(|r| if html { &*r.json_with_html } else { &*r.json }).collect();
        Ok(offset_page(&self.url, page, &items))
    }
}

/// The JSON of every record of `items`, parsed.
pub(crate) fn values<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<Value> {
    items.into_iter().map(|json| serde_json::from_slice(json).unwrap_or(Value::Null)).collect()
}

impl World {
    /// What `GET /projects/:id/repository/commits` lists without parameters: the default
    /// branch's history, newest first (empty for an unknown project or an empty repository).
    pub fn commits(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id).map_or_else(Vec::new, |index| {
            let repo = self.repository_of(index);
            values(repo.commits.iter().filter(|c| c.default_pos.is_some()).map(|c| &*c.json))
        })
    }

    /// Every commit of a project, whatever branch has it (`all=true`), newest first.
    pub fn all_commits(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.repository_of(index).commits.iter().map(|c| &*c.json)))
    }

    /// What `GET /projects/:id/repository/branches` lists: every branch, by name.
    pub fn branches(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.repository_of(index).branches.iter().map(|b| &*b.json)))
    }

    /// What `GET /projects/:id/repository/tags` lists: every tag, newest commit first.
    pub fn tags(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.repository_of(index).tags.iter().map(|t| &*t.json)))
    }

    /// What `GET /projects/:id/releases` lists: every release, latest release date first.
    pub fn releases(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.repository_of(index).releases.iter().map(|r| &*r.json)))
    }
}
