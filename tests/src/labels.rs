//! Labels and milestones of projects and groups, rendered on first use.
//!
//! A project's labels are the titles its issues and merge requests carry; a group's labels are
//! drawn from their own list, and projects and subgroups list their ancestors' labels too
//! (`include_ancestor_groups`, on by default, as in GitLab). Colours, descriptions and
//! priorities are functions of the title. `with_counts=true` adds the open and closed issue and
//! open merge request counts, computed from the project's records (group labels are on no issue
//! in this world, so theirs are 0).
//!
//! Endpoints (the `Ctx` handlers at the bottom): `GET /projects/:id/labels`,
//! `/groups/:id/labels`, `/projects/:id/milestones`, `/groups/:id/milestones`.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::pagination::{PageRequest, offset_page};
use crate::query::Query;
use crate::records::{MilestoneRef, to_bytes};
use crate::reply::{ApiError, Reply};
use crate::repository::values;
use crate::routes::Ctx;
use crate::text;
use crate::world::{Group, Milestone, World, mix};

/// Label colours, dark ones first (their text is white).
const COLOURS: [&str; 10] =
    ["#dc143c", "#428bca", "#5843ad", "#330066", "#d9534f", "#69d100", "#f0ad4e", "#a8d695", "#e6e6fa", "#ffecdb"];

/// What a label says about itself, from its title.
struct LabelLook {
    color: &'static str,
    text_color: &'static str,
    description: Option<&'static str>,
    priority: Option<u32>,
}

fn look(title: &str) -> LabelLook {
    let h = title.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
    let colour = (h % COLOURS.len() as u64) as usize;
    let description = match title {
        "bug" | "type::bug" => Some("Something isn't working"),
        "security" => Some("Security issues — handle with care 🔒"),
        "i18n/l10n" => Some("Übersetzungen & localisation"),
        "good first issue" => Some("Good for newcomers: see CONTRIBUTING.md"),
        "customer" => Some("Reported by a customer <support@example.com>"),
        _ if h % 5 < 2 => Some("Used by the triage bot."),
        _ => None,
    };
    let priority = match title {
        "priority::high" => Some(1),
        "priority::medium" => Some(2),
        "priority::low" => Some(3),
        "bug" | "security" => Some(5),
        _ => None,
    };
    LabelLook {
        color: COLOURS[colour],
        text_color: if colour < 5 { "#FFFFFF" } else { "#333333" },
        description,
        priority,
    }
}

/// Issue and merge request counts of a label (`with_counts=true`).
#[derive(Clone, Copy, Default, Serialize)]
struct Counts {
    open_issues_count: usize,
    closed_issues_count: usize,
    open_merge_requests_count: usize,
}

/// `API::Entities::ProjectLabel` (`priority`, `is_project_label`) or `GroupLabel` (neither).
#[derive(Serialize)]
struct LabelRecord<'a> {
    id: u64,
    name: &'a str,
    color: &'static str,
    text_color: &'static str,
    description: Option<&'static str>,
    description_html: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    counts: Option<Counts>,
    subscribed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_project_label: Option<bool>,
}

/// Which entity a label is shown as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Project,
    Group,
}

/// One label's rendered JSON, with and without counts.
pub(crate) struct Label {
    pub id: u64,
    pub name: &'static str,
    /// The label belongs to the project itself (not to one of its groups).
    pub own: bool,
    /// Lowercase title and description, for `search`.
    search_text: String,
    pub json: Box<[u8]>,
}

fn render(id: u64, name: &str, shape: Shape, project_label: bool, counts: Option<Counts>) -> Box<[u8]> {
    let look = look(name);
    let record = LabelRecord {
        id,
        name,
        color: look.color,
        text_color: look.text_color,
        description: look.description,
        description_html: text::markdown_html(look.description),
        counts,
        subscribed: false,
        priority: (shape == Shape::Project).then_some(look.priority.filter(|_| project_label)),
        is_project_label: (shape == Shape::Project).then_some(project_label),
    };
    to_bytes(&record).into_boxed_slice()
}

fn label(id: u64, name: &'static str, shape: Shape, own: bool) -> Label {
    let look = look(name);
    Label {
        id,
        name,
        own,
        search_text: format!("{}\n{}", name.to_lowercase(), look.description.unwrap_or("").to_lowercase()),
        json: render(id, name, shape, shape == Shape::Project && own, None),
    }
}

/// The labels of a group, as `(id, title)`.
fn group_label_ids(group: &Group) -> impl Iterator<Item = (u64, &'static str)> + '_ {
    group.label_names.iter().enumerate().map(|(k, name)| (group.first_label_id + k as u64, *name))
}

/// Sorts labels as GitLab lists them: by title, case-insensitively.
fn sort_labels(labels: &mut [Label]) {
    labels.sort_by_key(|a| (a.name.to_lowercase(), a.id));
}

/// A project's labels (its own and its groups') and its milestones.
pub(crate) struct ProjectLabels {
    /// Sorted by title.
    pub labels: Vec<Label>,
    /// The same labels with counts, built when first asked for.
    with_counts: OnceLock<Vec<Box<[u8]>>>,
    /// The project's own milestones, rendered.
    pub milestones: Vec<Box<[u8]>>,
}

impl ProjectLabels {
    pub(crate) fn generate(world: &World, index: usize) -> ProjectLabels {
        let project = &world.projects()[index];
        let mut labels: Vec<Label> = project
            .labels
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                let name = text::LABELS.iter().find(|l| **l == name.as_str())?;
                Some(label(project.first_label_id + k as u64, name, Shape::Project, true))
            })
            .collect();
        if let Some(group) = world.group(project.namespace_id) {
            for g in std::iter::once(group).chain(world.ancestors(group)) {
                labels.extend(group_label_ids(g).map(|(id, name)| label(id, name, Shape::Project, false)));
            }
        }
        sort_labels(&mut labels);
        let milestones =
            project.milestones.iter().map(|m| to_bytes(&MilestoneRef::from(m)).into_boxed_slice()).collect();
        ProjectLabels { labels, with_counts: OnceLock::new(), milestones }
    }

    /// The labels' JSON with counts.
    fn counted(&self, world: &World, index: usize) -> &[Box<[u8]>] {
        self.with_counts.get_or_init(|| {
            let project = &world.projects()[index];
            self.labels
                .iter()
                .map(|l| {
                    let position = l.own.then(|| project.labels.iter().position(|n| n == l.name)).flatten();
                    let counts = position.map_or_else(Counts::default, |k| label_counts(world, index, k));
                    render(l.id, l.name, Shape::Project, l.own, Some(counts))
                })
                .collect()
        })
    }
}

/// The counts of the `k`th label of the project at `index`, from its issues and merge requests.
fn label_counts(world: &World, index: usize, k: usize) -> Counts {
    let records = world.records(index);
    let k = k as u16;
    let mut counts = Counts::default();
    for issue in records.issues.items.iter().filter(|i| i.meta.common.labels.contains(&k)) {
        if issue.meta.open {
            counts.open_issues_count += 1;
        } else {
            counts.closed_issues_count += 1;
        }
    }
    counts.open_merge_requests_count = records
        .merge_requests
        .items
        .iter()
        .filter(|m| m.meta.state == crate::content::MrState::Opened && m.meta.common.labels.contains(&k))
        .count();
    counts
}

/// A group's own labels (group shape) and milestones, rendered.
pub(crate) struct GroupLabels {
    pub labels: Vec<Label>,
    /// `labels` with counts (all 0: no issue carries a group label).
    with_counts: Vec<Box<[u8]>>,
    pub milestones: Vec<Box<[u8]>>,
}

impl GroupLabels {
    pub(crate) fn generate(world: &World, index: usize) -> GroupLabels {
        let group = &world.groups()[index];
        let mut labels: Vec<Label> =
            group_label_ids(group).map(|(id, name)| label(id, name, Shape::Group, true)).collect();
        sort_labels(&mut labels);
        let with_counts =
            labels.iter().map(|l| render(l.id, l.name, Shape::Group, false, Some(Counts::default()))).collect();
        let milestones = group.milestones.iter().map(|m| to_bytes(&MilestoneRef::from(m)).into_boxed_slice()).collect();
        GroupLabels { labels, with_counts, milestones }
    }
}

/// `search` on labels: title or description, case-insensitive.
fn label_matches(label: &Label, search: Option<&str>) -> bool {
    search.is_none_or(|s| label.search_text.contains(s))
}

/// Parameters of the milestone lists.
struct MilestoneQuery {
    iids: Option<Vec<u64>>,
    state: Option<&'static str>,
    title: Option<String>,
    search: Option<String>,
    updated: (Option<i64>, Option<i64>),
    ancestors: bool,
    descendants: bool,
}

impl MilestoneQuery {
    fn parse(q: &Query) -> Result<Self, ApiError> {
        let ancestors = q.flag("include_ancestors")?.or(q.flag("include_parent_milestones")?).unwrap_or(false);
        Ok(Self {
            iids: q.id_list("iids")?,
            state: q.choice("state", &["active", "closed"])?,
            title: q.get("title").map(str::to_owned),
            search: q.get("search").map(str::to_lowercase),
            updated: (q.time("updated_after")?, q.time("updated_before")?),
            ancestors,
            descendants: q.flag("include_descendants")?.unwrap_or(false),
        })
    }

    fn matches(&self, m: &Milestone) -> bool {
        let us = m.updated_at.saturating_mul(1000);
        self.iids.as_ref().is_none_or(|iids| iids.contains(&m.iid))
            && self.state.is_none_or(|s| m.state == s)
            && self.title.as_deref().is_none_or(|t| m.title == t)
            && self.search.as_deref().is_none_or(|s| {
                m.title.to_lowercase().contains(s)
                    || m.description.as_deref().is_some_and(|d| d.to_lowercase().contains(s))
            })
            && self.updated.0.is_none_or(|a| us >= a)
            && self.updated.1.is_none_or(|b| us <= b)
    }
}

/// Milestones as GitLab lists them: by due date (none last), then title, then id.
fn sort_milestones(list: &mut [(&Milestone, &[u8])]) {
    list.sort_by(|(a, _), (b, _)| {
        let due = |m: &Milestone| (m.due_date.is_none(), m.due_date);
        (due(a), &a.title, a.id).cmp(&(due(b), &b.title, b.id))
    });
}

impl Ctx<'_> {
    /// `GET /projects/:id/labels`: `with_counts`, `include_ancestor_groups` (default true), `search`.
    pub(crate) fn project_labels(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let with_counts = self.query.flag("with_counts")?.unwrap_or(false);
        let ancestors = self.query.flag("include_ancestor_groups")?.unwrap_or(true);
        let search = self.query.get("search").map(str::to_lowercase);
        let page = PageRequest::from_query(self.query)?;
        let index = self.project_at(id_or_path)?;
        let labels = self.world.labels_of(index);
        let counted = with_counts.then(|| labels.counted(self.world, index));
        let items: Vec<&[u8]> = labels
            .labels
            .iter()
            .enumerate()
            .filter(|(_, l)| (ancestors || l.own) && label_matches(l, search.as_deref()))
            .map(|(k, l)| counted.map_or(&*l.json, |c| &*c[k]))
            .collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /groups/:id/labels`: `with_counts`, `include_ancestor_groups` (default true),
    /// `include_descendant_groups`, `only_group_labels` (default true; false adds the labels of
    /// the projects in the groups listed), `search`.
    pub(crate) fn group_labels(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let q = self.query;
        let with_counts = q.flag("with_counts")?.unwrap_or(false);
        let ancestors = q.flag("include_ancestor_groups")?.unwrap_or(true);
        let descendants = q.flag("include_descendant_groups")?.unwrap_or(false);
        let only_group_labels = q.flag("only_group_labels")?.unwrap_or(true);
        let search = q.get("search").map(str::to_lowercase);
        let page = PageRequest::from_query(q)?;
        let index = self.world.group_index(id_or_path).ok_or(ApiError::NotFound("Group"))?;
        let group = &self.world.groups()[index];
        let mut groups: Vec<&Group> = vec![group];
        if ancestors {
            groups.extend(self.world.ancestors(group));
        }
        if descendants {
            let below = self.world.group_and_descendants(group.id, true);
            groups.extend(below.iter().skip(1).filter_map(|&id| self.world.group(id)));
        }
        let mut found: Vec<(&str, u64, Box<[u8]>)> = Vec::new();
        for g in &groups {
            let Some(gi) = self.world.group_index_of(g.id) else { continue };
            let rendered = self.world.group_labels_of(gi);
            for (k, l) in rendered.labels.iter().enumerate() {
                if label_matches(l, search.as_deref()) {
                    let json = if with_counts { rendered.with_counts[k].clone() } else { l.json.clone() };
                    found.push((l.name, l.id, json));
                }
            }
        }
        if !only_group_labels {
            // The projects' own labels, shown as group labels.
            let mut in_scope = vec![group.id];
            if descendants {
                in_scope = self.world.group_and_descendants(group.id, true);
            }
            for p in self.world.projects().iter().filter(|p| in_scope.contains(&p.namespace_id)) {
                let Some(pi) = self.world.project_index_of(p.id) else { continue };
                for (k, name) in p.labels.iter().enumerate() {
                    let Some(name) = text::LABELS.iter().find(|l| **l == name.as_str()) else { continue };
                    let l = label(p.first_label_id + k as u64, name, Shape::Group, true);
                    if label_matches(&l, search.as_deref()) {
                        let counts = with_counts.then(|| label_counts(self.world, pi, k));
                        found.push((l.name, l.id, render(l.id, l.name, Shape::Group, false, counts)));
                    }
                }
            }
        }
        found.sort_by_key(|a| (a.0.to_lowercase(), a.1));
        let items: Vec<&[u8]> = found.iter().map(|(_, _, json)| &**json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /projects/:id/milestones`: `iids[]`, `state`, `title`, `search`,
    /// `updated_after/before`, `include_ancestors` (or its old name `include_parent_milestones`).
    pub(crate) fn project_milestones(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = MilestoneQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let index = self.project_at(id_or_path)?;
        let project = &self.world.projects()[index];
        let rendered = self.world.labels_of(index);
        let mut list: Vec<(&Milestone, &[u8])> =
            project.milestones.iter().zip(rendered.milestones.iter().map(|j| &**j)).collect();
        if spec.ancestors
            && let Some(group) = self.world.group(project.namespace_id)
        {
            for g in std::iter::once(group).chain(self.world.ancestors(group)) {
                list.extend(self.group_milestone_items(g));
            }
        }
        list.retain(|(m, _)| spec.matches(m));
        sort_milestones(&mut list);
        let items: Vec<&[u8]> = list.iter().map(|(_, json)| *json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    /// `GET /groups/:id/milestones`: as for projects, plus `include_descendants`.
    pub(crate) fn group_milestones(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let spec = MilestoneQuery::parse(self.query)?;
        let page = PageRequest::from_query(self.query)?;
        let index = self.world.group_index(id_or_path).ok_or(ApiError::NotFound("Group"))?;
        let group = &self.world.groups()[index];
        let mut list: Vec<(&Milestone, &[u8])> = self.group_milestone_items(group);
        if spec.ancestors {
            for g in self.world.ancestors(group) {
                list.extend(self.group_milestone_items(g));
            }
        }
        if spec.descendants {
            let below = self.world.group_and_descendants(group.id, true);
            for g in below.iter().skip(1).filter_map(|&id| self.world.group(id)) {
                list.extend(self.group_milestone_items(g));
            }
            for p in self.world.projects().iter().filter(|p| below.contains(&p.namespace_id)) {
                let Some(pi) = self.world.project_index_of(p.id) else { continue };
                let rendered = self.world.labels_of(pi);
                list.extend(p.milestones.iter().zip(rendered.milestones.iter().map(|j| &**j)));
            }
        }
        list.retain(|(m, _)| spec.matches(m));
        sort_milestones(&mut list);
        let items: Vec<&[u8]> = list.iter().map(|(_, json)| *json).collect();
        Ok(offset_page(&self.url, page, &items))
    }

    fn group_milestone_items<'g>(&'g self, group: &'g Group) -> Vec<(&'g Milestone, &'g [u8])> {
        let Some(gi) = self.world.group_index_of(group.id) else { return Vec::new() };
        let rendered = self.world.group_labels_of(gi);
        group.milestones.iter().zip(rendered.milestones.iter().map(|j| &**j)).collect()
    }
}

impl World {
    /// What `GET /projects/:id/labels` lists without parameters: the project's labels and its
    /// groups' (`include_ancestor_groups` is on by default), by title.
    pub fn project_labels(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.labels_of(index).labels.iter().map(|l| &*l.json)))
    }

    /// What `GET /groups/:id/labels` lists without parameters: the group's labels and its
    /// ancestors', by title.
    pub fn group_labels(&self, group_id: u64) -> Vec<Value> {
        let Some(group) = self.group(group_id) else { return Vec::new() };
        let mut labels: Vec<(String, u64, Value)> = Vec::new();
        for g in std::iter::once(group).chain(self.ancestors(group)) {
            let Some(index) = self.group_index_of(g.id) else { continue };
            for l in &self.group_labels_of(index).labels {
                labels.push((l.name.to_lowercase(), l.id, serde_json::from_slice(&l.json).unwrap_or(Value::Null)));
            }
        }
        labels.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        labels.into_iter().map(|(_, _, v)| v).collect()
    }

    /// What `GET /projects/:id/milestones` lists without parameters (the project's own).
    pub fn project_milestones(&self, project_id: u64) -> Vec<Value> {
        let Some(index) = self.project_index_of(project_id) else { return Vec::new() };
        let project = &self.projects()[index];
        let rendered = self.labels_of(index);
        let mut list: Vec<(&Milestone, &[u8])> =
            project.milestones.iter().zip(rendered.milestones.iter().map(|j| &**j)).collect();
        sort_milestones(&mut list);
        values(list.into_iter().map(|(_, json)| json))
    }

    /// What `GET /groups/:id/milestones` lists without parameters (the group's own).
    pub fn group_milestones(&self, group_id: u64) -> Vec<Value> {
        let Some(index) = self.group_index_of(group_id) else { return Vec::new() };
        let group = &self.groups()[index];
        let rendered = self.group_labels_of(index);
        let mut list: Vec<(&Milestone, &[u8])> =
            group.milestones.iter().zip(rendered.milestones.iter().map(|j| &**j)).collect();
        sort_milestones(&mut list);
        values(list.into_iter().map(|(_, json)| json))
    }
}
