//! The words of the world: the cast of users, project and label names, and the generators of issue
//! and merge request titles, markdown descriptions and branch names.
//!
//! Everything here is either a fixed table or a function of an RNG the caller passes in, so the
//! texts are deterministic from the world seed. The texts deliberately carry what trips up
//! connectors: non-ASCII names (`Zoë Ångström`, `李小龙`, right-to-left Arabic), emoji (including
//! skin-tone and ZWJ sequences), quotes, backslashes, HTML, tabs, code blocks and long bodies.

use rand::Rng;
use rand::seq::IndexedRandom;

/// One member of the built-in cast: username, display name, state, is a bot.
pub(crate) struct CastMember {
    pub username: &'static str,
    pub name: &'static str,
    pub state: &'static str,
    pub bot: bool,
}

const fn member(username: &'static str, name: &'static str) -> CastMember {
    CastMember { username, name, state: "active", bot: false }
}

/// The users, in id order (user 1 is the token's user). The first ones carry the unicode names so
/// that even a small world has them.
pub(crate) const CAST: [CastMember; 40] = [
    member("root", "Administrator"),
    member("zoe.angstrom", "Zoë Ångström"),
    member("li.xiaolong", "李小龙"),
    member("jose.nunez", "José Ñúñez"),
    member("jürgen.müller", "Jürgen Müller"),
    member("maria.ivanova", "Мария Иванова"),
    member("m.abdullah", "محمد عبدالله"),
    member("siobhan", "Siobhán O'Connor"),
    member("renee.dupont", "Renée \"Ray\" Dupont"),
    member("nguyen.van.an", "Nguyễn Văn An"),
    member("yamada", "山田太郎"),
    member("minjun.kim", "김민준"),
    member("søren_k", "Søren Kierkegaard"),
    member("lukasz.zolc", "Łukasz Żółć"),
    member("cagla", "Çağla Şahin"),
    member("alexis.p", "Αλέξης Παπαδόπουλος"),
    member("priya.sharma", "प्रिया शर्मा"),
    member("olafur", "Ólafur Arnalds"),
    CastMember { username: "dependency-bot", name: "Dependency Bot 🤖", state: "active", bot: true },
    member("alice", "Alice Lindqvist"),
    member("bob.smith", "Bob Smith"),
    member("carol_w", "Carol Williams"),
    member("dave-ops", "Dave \\ Ops"),
    member("erin", "Erin Walsh"),
    member("frank.o", "Frank O'Brien"),
    member("grace.hopper", "Grace Hopper"),
    member("heidi", "Heidi Klum-Schmidt"),
    member("ivan", "Ivan Petrović"),
    member("judy", "Judy Chen"),
    CastMember { username: "mallory", name: "Mallory <script>alert(1)</script>", state: "blocked", bot: false },
    member("niaj", "Niaj Okonkwo"),
    member("olivia.b", "Olivia Brown"),
    member("peggy", "Peggy Carter"),
    member("rupert", "Rupert Giles"),
    member("sybil", "Sybil Trelawney"),
    member("trent", "Trent Reznor"),
    member("uma", "Uma Thurman"),
    CastMember { username: "victor.old", name: "Victor Vance", state: "deactivated", bot: false },
    member("walter", "Walter White"),
    member("xavier", "Xavier Ñandú"),
];

/// First words of project names under `acme`.
const PROJECT_FIRST: [&str; 28] = [
    "Payment",
    "Billing",
    "Search",
    "Identity",
    "Catalog",
    "Inventory",
    "Checkout",
    "Analytics",
    "Gateway",
    "Notification",
    "Ledger",
    "Scheduler",
    "Routing",
    "Media",
    "Pricing",
    "Shipping",
    "Audit",
    "Feature",
    "Config",
    "Session",
    "Report",
    "Metrics",
    "Café",
    "Document",
    "Image",
    "Profile",
    "Review",
    "Loyalty",
];

/// Second words of project names under `acme`.
const PROJECT_SECOND: [&str; 24] = [
    "Service",
    "API",
    "Worker",
    "Console",
    "SDK",
    "Pipeline",
    "Portal",
    "Engine",
    "Store",
    "Exporter",
    "Operator",
    "Dashboard",
    "Proxy",
    "Library",
    "CLI",
    "Bridge",
    "Indexer",
    "Sync",
    "Tools",
    "Charts",
    "Agent",
    "Hub",
    "Registry",
    "Monitor",
];

/// Every distinct project name the `acme` generator can hand out, in a fixed order.
pub(crate) fn project_name_pool() -> Vec<String> {
    let mut pool = Vec::with_capacity(PROJECT_FIRST.len() * PROJECT_SECOND.len());
    for first in PROJECT_FIRST {
        for second in PROJECT_SECOND {
            pool.push(format!("{first} {second}"));
        }
    }
    pool
}

/// GitLab-style path of a name: lowercase ASCII, runs of other characters become one `-`.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = match c {
            'é' | 'è' | 'ê' | 'É' => 'e',
            'á' | 'à' | 'ä' | 'å' => 'a',
            'ö' | 'ó' | 'ø' => 'o',
            'ü' | 'ú' => 'u',
            'ñ' => 'n',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Project descriptions (`None` is a project without one).
pub(crate) const PROJECT_DESCRIPTIONS: [Option<&str>; 10] = [
    None,
    Some("Handles payments, refunds and chargebacks for every storefront."),
    Some("Internal service — owned by the platform team. See the runbook before deploying 🚀"),
    Some("Ein Dienst für die Verarbeitung von Bestellungen (Größe: klein)."),
    Some("用于处理订单的服务"),
    Some(""),
    Some("Deprecated: use the v2 API instead. Kept for \"legacy\" clients."),
    None,
    Some("Infrastructure as code: Terraform modules, Helm charts & Kustomize overlays."),
    Some("Tools for developers\twith tabs, and a backslash \\ in the description."),
];

pub(crate) const TOPICS: [&str; 14] = [
    "rust",
    "go",
    "kubernetes",
    "terraform",
    "python",
    "react",
    "ios",
    "android",
    "grpc",
    "postgres",
    "security",
    "docs",
    "machine-learning",
    "日本語",
];

pub(crate) const LABELS: [&str; 20] = [
    "bug",
    "feature",
    "documentation",
    "security",
    "performance",
    "frontend",
    "backend",
    "UX",
    "tech debt",
    "good first issue",
    "priority::high",
    "priority::medium",
    "priority::low",
    "workflow::in review",
    "workflow::ready",
    "needs-triage",
    "🔥 hotfix",
    "i18n/l10n",
    "regression",
    "Über-wichtig",
];

const VERBS: [&str; 16] = [
    "Fix",
    "Add",
    "Improve",
    "Remove",
    "Refactor",
    "Investigate",
    "Document",
    "Upgrade",
    "Support",
    "Migrate",
    "Speed up",
    "Handle",
    "Deprecate",
    "Test",
    "Translate",
    "Optimise",
];

const OBJECTS: [&str; 24] = [
    "the login flow",
    "CSV export",
    "search results pagination",
    "webhook retries",
    "the settings page",
    "dark mode 🌙",
    "PostgreSQL connection pooling",
    "the `legacy_auth` flag",
    "rate limiting on /api/v2/orders",
    "avatar uploads",
    "the release checklist",
    "日本語 input in the editor",
    "push notifications",
    "the onboarding wizard",
    "timezone handling",
    "GraphQL schema",
    "error messages in Español & Português",
    "memory usage of the indexer",
    "SAML single sign-on",
    "the \"Delete account\" button",
    "Kubernetes readiness probes",
    "emoji in commit messages 😅",
    "Ñandú reports",
    "caching of <img> tags",
];

const CONTEXTS: [&str; 14] = [
    "",
    "",
    "",
    " on Safari",
    " for large accounts",
    " after the 2.0 upgrade",
    " in production",
    " when the cache is cold",
    " behind a proxy",
    " (follow-up)",
    " — customer escalation",
    " for right-to-left languages",
    " on Android 14",
    " in the EU region",
];

const SPECIAL_TITLES: [&str; 10] = [
    "Error: \"undefined\" is not a function",
    "Crash when the file name is «Ünïcödé».txt",
    "🐛 Page is blank in IE11 (won't fix?)",
    "[Security] Rotate leaked credentials",
    "Backslash \\ in branch names breaks the pipeline",
    "Support 中文 / العربية / עברית in exports",
    "Tab\tcharacters in titles",
    "500 on /api/v4/projects?search=%2F",
    "👨‍👩‍👧 family emoji renders as three glyphs",
    "100% CPU after upgrading to v3.1.4",
];

/// An issue title.
pub(crate) fn issue_title(rng: &mut impl Rng) -> String {
    if rng.random_ratio(1, 12) {
        return (*SPECIAL_TITLES.choose(rng).unwrap_or(&"Untitled")).to_owned();
    }
    let verb = VERBS.choose(rng).unwrap_or(&"Fix");
    let object = OBJECTS.choose(rng).unwrap_or(&"it");
    let context = CONTEXTS.choose(rng).unwrap_or(&"");
    format!("{verb} {object}{context}")
}

pub(crate) const SENTENCES: [&str; 24] = [
    "When I open the page the spinner never stops.",
    "This started happening after the last deploy.",
    "The logs show a timeout talking to the database.",
    "Customers in the EU region are the most affected.",
    "We should add a regression test so this does not come back.",
    "I can reproduce it reliably on a fresh account.",
    "Ça marche sur Firefox mais pas sur Safari.",
    "Das Problem tritt nur bei großen Dateien auf.",
    "この問題は本番環境でのみ発生します。",
    "这个问题只在生产环境中出现。",
    "المشكلة تظهر فقط في بيئة الإنتاج.",
    "Proposed fix: retry with exponential back-off (max 5 attempts).",
    "See the attached screenshot 📸 for details.",
    "Happy to pair on this 🙌🏽 if anyone has time.",
    "It looks related to the \"session\" cookie being dropped.",
    "Paths like C:\\Users\\zoë\\Documents are not escaped.",
    "The <div class=\"modal\"> is rendered twice.",
    "Performance dropped by ~30% (p95 went from 120ms → 160ms).",
    "Thanks to @zoe.angstrom for the detailed report! 🎉",
    "Blocked until the upstream library ships a release.",
    "Users see the wrong currency symbol: € instead of £.",
    "The migration should be reversible ✅.",
    "Worked around it with a feature flag for now 🚩.",
    "Let's discuss in the next sync — no rush.",
];

const STEPS: [&str; 8] = [
    "Sign in as a regular user",
    "Open **Settings → Profile**",
    "Upload a file larger than 10 MB",
    "Click *Save*",
    "Switch the language to Deutsch",
    "Run `make test` twice",
    "Reload the page",
    "Wait for the background job to finish",
];

const TASKS: [&str; 8] = [
    "Write a failing test",
    "Fix the bug",
    "Update the changelog",
    "Ask for a review",
    "Deploy to staging",
    "Update the docs 📚",
    "Notify the support team",
    "Close the incident",
];

const LOG_LINES: [&str; 8] = [
    "ERROR  2024-03-05T10:12:13Z  request failed: connection reset by peer",
    "WARN   retrying in 200ms (attempt 2/5)",
    "thread 'main' panicked at src/lib.rs:42:9:",
    "    at Object.<anonymous> (/app/server.js:17:11)",
    "Traceback (most recent call last):",
    "  File \"/srv/app/views.py\", line 88, in render",
    "KeyError: 'user_id'",
    "HTTP/1.1 502 Bad Gateway\tupstream: 10.0.3.7:8080",
];

/// A markdown body and its checklist counts.
pub(crate) struct Description {
    pub text: Option<String>,
    /// Checklist items `(total, completed)`.
    pub tasks: (u32, u32),
}

fn paragraph(rng: &mut impl Rng, out: &mut String, sentences: usize) {
    for i in 0..sentences {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(SENTENCES.choose(rng).unwrap_or(&""));
    }
    out.push_str("\n\n");
}

/// An issue or merge request description: `None` for some, `""` for a few, otherwise markdown of
/// a few hundred bytes, and now and then a long one (a pasted log of ~10–30 KB).
pub(crate) fn description(rng: &mut impl Rng, usernames: &[&str]) -> Description {
    let roll = rng.random_range(0..100);
    if roll < 8 {
        return Description { text: None, tasks: (0, 0) };
    }
    if roll < 10 {
        return Description { text: Some(String::new()), tasks: (0, 0) };
    }
    let mut s = String::with_capacity(1024);
    s.push_str("## Summary\n\n");
    let n = rng.random_range(1..=4);
    paragraph(rng, &mut s, n);
    if rng.random_bool(0.6) {
        s.push_str("### Steps to reproduce\n\n");
        for i in 1..=rng.random_range(2..=4) {
            s.push_str(&format!("{i}. {}\n", STEPS.choose(rng).unwrap_or(&"")));
        }
        s.push('\n');
    }
    if rng.random_bool(0.35) {
        s.push_str("```text\n");
        let lines = if rng.random_ratio(1, 25) { rng.random_range(150..=400) } else { rng.random_range(2..=6) };
        for _ in 0..lines {
            s.push_str(LOG_LINES.choose(rng).unwrap_or(&""));
            s.push('\n');
        }
        s.push_str("```\n\n");
    }
    let mut tasks = (0, 0);
    if rng.random_bool(0.3) {
        s.push_str("### Tasks\n\n");
        for _ in 0..rng.random_range(1..=5) {
            let done = rng.random_bool(0.5);
            tasks.0 += 1;
            tasks.1 += u32::from(done);
            s.push_str(if done { "- [x] " } else { "- [ ] " });
            s.push_str(TASKS.choose(rng).unwrap_or(&""));
            s.push('\n');
        }
        s.push('\n');
    }
    if rng.random_bool(0.4) {
        let n = rng.random_range(1..=2);
        paragraph(rng, &mut s, n);
    }
    if rng.random_bool(0.3)
        && let Some(who) = usernames.choose(rng)
    {
        s.push_str(&format!("/cc @{who} 🙏\n"));
    }
    while s.ends_with('\n') {
        s.pop();
    }
    Description { text: Some(s), tasks }
}

/// GitLab's `task_status` text for a description.
pub(crate) fn task_status(description: Option<&str>, (total, done): (u32, u32)) -> String {
    match description {
        None | Some("") => String::new(),
        Some(_) => format!("{done} of {total} checklist {} completed", if total == 1 { "item" } else { "items" }),
    }
}

/// A source branch name for a merge request.
pub(crate) fn branch_name(rng: &mut impl Rng, iid: u64, title: &str) -> String {
    let prefix = ["feature", "fix", "chore", "docs", "renovate", "hotfix"].choose(rng).unwrap_or(&"feature");
    let mut s = slug(title);
    s.truncate(40);
    while s.ends_with('-') {
        s.pop();
    }
    format!("{prefix}/{iid}-{s}")
}

/// Titles of group labels (project labels come from [`LABELS`]).
pub(crate) const GROUP_LABELS: [&str; 10] = [
    "team::platform",
    "team::apps",
    "type::bug",
    "type::feature",
    "type::maintenance",
    "severity::1",
    "severity::2",
    "customer",
    "Accessibility ♿",
    "needs-design 🎨",
];

/// Subjects of commits made directly on a branch.
const COMMIT_SUBJECTS: [&str; 24] = [
    "fix(api): handle empty pages",
    "feat: add dark mode 🌙",
    "chore(deps): bump serde from 1.0.197 to 1.0.203",
    "docs: update the README for Español users",
    "refactor: extract `PageLoop` from the reader",
    "Revert \"feat: cache tokens in memory\"",
    "ci: cache the cargo registry",
    "perf: avoid cloning the page buffer",
    "test: cover the 10 000-record case",
    "Übersetzungen aktualisiert",
    "修复登录问题",
    "style: rustfmt",
    "build: bump the MSRV to 1.95",
    "fix: escape <script> in titles",
    "Update .gitlab-ci.yml",
    "Initial import of the \"legacy\" exporter",
    "fix(ui): right-to-left layout for العربية",
    "feat(search): support ^prefix and suffix$ queries",
    "chore: remove dead code",
    "WIP",
    "fix: C:\\Users paths on Windows",
    "feat: emoji reactions 👍🏽 in notifications",
    "security: rotate the signing key",
    "Merge tag 'v1.2.3' into main",
];

/// Files commits touch, for the `path` filter of the commits list.
pub(crate) const FILES: [&str; 10] = [
    "README.md",
    ".gitlab-ci.yml",
    "Cargo.toml",
    "src/main.rs",
    "src/lib.rs",
    "src/api/handlers.rs",
    "src/api/pagination.rs",
    "docs/index.md",
    "docs/ünïcode guide.md",
    "tests/integration.rs",
];

/// A commit message: a subject, now and then a body, and sometimes git trailers (as
/// `(key, value)` pairs, also written at the end of the message).
pub(crate) struct CommitMessage {
    pub text: String,
    pub trailers: Vec<(&'static str, String)>,
}

/// The message of a commit made directly on a branch, by `author` (`Name <email>`).
pub(crate) fn commit_message(rng: &mut impl Rng, author: &str, co_author: Option<&str>) -> CommitMessage {
    let mut text = (*COMMIT_SUBJECTS.choose(rng).unwrap_or(&"Update")).to_owned();
    if rng.random_bool(0.5) {
        text.push_str("\n\n");
        let n = rng.random_range(1..=3);
        for i in 0..n {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(SENTENCES.choose(rng).unwrap_or(&""));
        }
    }
    let mut trailers = Vec::new();
    if rng.random_ratio(1, 4) {
        trailers.push(("Signed-off-by", author.to_owned()));
    }
    if let Some(co) = co_author {
        trailers.push(("Co-authored-by", co.to_owned()));
    }
    if rng.random_ratio(1, 6) {
        trailers.push((
            "Changelog",
            (*["fixed", "added", "changed", "security"].choose(rng).unwrap_or(&"fixed")).to_owned(),
        ));
    }
    if !trailers.is_empty() {
        text.push('\n');
        for (key, value) in &trailers {
            text.push_str(&format!("\n{key}: {value}"));
        }
    }
    text.push('\n');
    CommitMessage { text, trailers }
}

/// A release's markdown notes, listing some merge requests (`(iid, title)`).
pub(crate) fn release_notes(rng: &mut impl Rng, tag: &str, merged: &[(u64, &str)]) -> Option<String> {
    if rng.random_ratio(1, 10) {
        return None;
    }
    let mut s = format!("## {tag}\n\n");
    if merged.is_empty() {
        s.push_str("Maintenance release 🔧: dependency updates only.");
        return Some(s);
    }
    s.push_str("### Changes\n\n");
    for (iid, title) in merged {
        s.push_str(&format!("- {title} (!{iid})\n"));
    }
    if rng.random_bool(0.3) {
        s.push_str("\n> **Note:** upgrade the database schema first — see the *Upgrading* guide.");
    }
    Some(s.trim_end().to_owned())
}

/// A random 40-hex-digit commit SHA.
pub(crate) fn sha(rng: &mut impl Rng) -> String {
    hex(rng, 40)
}

/// `len` random lowercase hex digits.
pub(crate) fn hex(rng: &mut impl Rng, len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..len).map(|_| char::from(HEX[rng.random_range(0..16)])).collect()
}

/// Markdown rendered the way GitLab's API shows `description_html` (close enough: one paragraph
/// per block, HTML escaped).
pub(crate) fn markdown_html(text: Option<&str>) -> String {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return String::new();
    };
    let mut html = String::with_capacity(text.len() + 64);
    for (i, block) in text.split("\n\n").enumerate() {
        html.push_str(&format!("<p data-sourcepos=\"{}:1-{}:{}\" dir=\"auto\">", i + 1, i + 1, block.chars().count()));
        for c in block.chars() {
            match c {
                '<' => html.push_str("&lt;"),
                '>' => html.push_str("&gt;"),
                '&' => html.push_str("&amp;"),
                '"' => html.push_str("&quot;"),
                '\n' => html.push_str("<br>"),
                c => html.push(c),
            }
        }
        html.push_str("</p>");
    }
    html
}

/// Human-readable duration as GitLab writes time-tracking values (`1h 30m`, `3d`).
pub(crate) fn human_duration(seconds: u64) -> String {
    // GitLab counts 8-hour days and 5-day weeks.
    let units = [("w", 5 * 8 * 3600), ("d", 8 * 3600), ("h", 3600), ("m", 60)];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (name, size) in units {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
    }
    if parts.is_empty() {
        parts.push(format!("{rest}s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Café Ordering"), "cafe-ordering");
        assert_eq!(slug("Fix the \"Delete\" button!"), "fix-the-delete-button");
        assert_eq!(slug("日本語 input"), "input");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5400), "1h 30m");
        assert_eq!(human_duration(8 * 3600), "1d");
        assert_eq!(human_duration(45), "45s");
    }

    #[test]
    fn cast_usernames_are_unique() {
        let mut names: Vec<_> = CAST.iter().map(|c| c.username).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CAST.len());
    }
}
