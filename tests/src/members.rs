//! Direct members of projects and groups, drawn on first use and kept as rendered JSON.
//!
//! A project's creator is always a maintainer of it; `root` (the token's user) owns the top-level
//! groups. Some memberships expire (`expires_at` is a date), some have no `created_by` (GitLab then
//! leaves the key out), some group members carry a SAML identity. Members are listed in the
//! order they joined.
//!
//! Endpoints (the `Ctx` handlers at the bottom): `GET /projects/:id/members` and
//! `/groups/:id/members`, with `query`, `user_ids[]`, `skip_users[]`, `show_seat_info` and `state`.

use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use crate::pagination::{Counting, PageRequest, offset_page_mapped};
use crate::records::{UserRef, to_bytes};
use crate::reply::{ApiError, Reply};
use crate::repository::values;
use crate::routes::Ctx;
use crate::time::{Date, DateTime, MS_PER_DAY, Millis, ymd_ms};
use crate::world::{Group, Project, User, World, instant, rng_for};

/// A SAML identity, as GitLab shows it on group members of a group with SSO.
#[derive(Serialize)]
struct SamlIdentity {
    extern_uid: String,
    provider: &'static str,
    saml_provider_id: u64,
}

/// `API::Entities::Member`.
#[derive(Serialize)]
struct MemberRecord<'a> {
    #[serde(flatten)]
    user: UserRef<'a>,
    access_level: u32,
    created_at: DateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<UserRef<'a>>,
    expires_at: Option<Date>,
    group_saml_identity: Option<SamlIdentity>,
    email: String,
    membership_state: &'static str,
}

/// One membership.
pub(crate) struct Member {
    pub user_id: u64,
    /// Lowercase username, name and email, for `query`.
    search_text: String,
    /// Whether the member takes a paid seat (`show_seat_info=true`).
    using_seat: bool,
    pub json: Box<[u8]>,
}

/// The direct members of a project or group, in the order they joined.
pub(crate) struct Members {
    pub members: Vec<Member>,
}

/// What one membership is made of.
struct Joining<'a> {
    user: &'a User,
    access_level: u32,
    joined: Millis,
    invited_by: Option<&'a User>,
    saml: Option<u64>,
}

impl Members {
    /// A project's members: its creator (maintainer) and up to seven others.
    pub(crate) fn of_project(world: &World, project: &Project) -> Members {
        let mut rng = rng_for(world.seed(), 0x000E_3BE2, project.id);
        let creator = world.user(project.creator_id).unwrap_or(world.current_user());
        let first = Joining {
            user: creator,
            access_level: 40,
            joined: project.created_at.millis,
            invited_by: None,
            saml: None,
        };
        let others = rng.random_range(0..=7);
        Self::draw(world, &mut rng, first, others, project.created_at.millis, None)
    }

    /// A group's members: `root` owns the top-level groups; subgroups have a few of their own.
    pub(crate) fn of_group(world: &World, group: &Group) -> Members {
        let mut rng = rng_for(world.seed(), 0x006E_3BE2, group.id);
        let root = world.current_user();
        let created = group.created_at.millis;
        let saml = (group.parent_id.is_none() && group.path != "demo").then_some(group.id);
        let first = Joining { user: root, access_level: 50, joined: created, invited_by: None, saml };
        let others = if group.parent_id.is_none() { rng.random_range(2..=9) } else { rng.random_range(0..=5) };
        let mut members = Self::draw(world, &mut rng, first, others, created, saml);
        if group.parent_id.is_some() {
            // Subgroups inherit root from their top-level group; their direct members are others.
            members.members.remove(0);
        }
        members
    }

    fn draw(
        world: &World,
        rng: &mut impl Rng,
        first: Joining<'_>,
        others: usize,
        since: Millis,
        saml: Option<u64>,
    ) -> Members {
        let inviter = first.user;
        let mut joinings = vec![first];
        let users = world.users();
        let mut attempts = 0;
        while joinings.len() <= others && attempts < 200 {
            attempts += 1;
            let user = &users[rng.random_range(0..users.len())];
            if joinings.iter().any(|j| j.user.id == user.id) {
                continue;
            }
            let access_level = [10, 20, 30, 30, 30, 40][rng.random_range(0..6)];
            let joined = instant(rng, since, ymd_ms(2025, 10, 31));
            let invited_by = rng.random_ratio(4, 5).then_some(inviter);
            joinings.push(Joining { user, access_level, joined, invited_by, saml });
        }
        joinings.sort_by_key(|j| (j.joined, j.user.id));
        let members = joinings
            .into_iter()
            .map(|j| {
                let expires_at = (j.access_level < 40 && rng.random_ratio(1, 6))
                    .then(|| Date::of(j.joined + rng.random_range(30..=900) * MS_PER_DAY));
                let email = j.user.email();
                let record = MemberRecord {
                    user: UserRef::from(j.user),
                    access_level: j.access_level,
                    created_at: DateTime::utc(j.joined),
                    created_by: j.invited_by.map(UserRef::from),
                    expires_at,
                    group_saml_identity: j.saml.filter(|_| j.user.id != 1).map(|provider| SamlIdentity {
                        extern_uid: format!("{}@sso.example.com", j.user.username),
                        provider: "group_saml",
                        saml_provider_id: provider,
                    }),
                    email: email.clone(),
                    membership_state: "active",
                };
                Member {
                    user_id: j.user.id,
                    search_text: format!("{}\n{}\n{}", j.user.username, j.user.name, email).to_lowercase(),
                    // Guests and bots take no seat.
                    using_seat: j.access_level > 10 && !j.user.bot,
                    json: to_bytes(&record).into_boxed_slice(),
                }
            })
            .collect();
        Members { members }
    }
}

impl Ctx<'_> {
    /// `GET /projects/:id/members`.
    pub(crate) fn project_members(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let index = self.project_at(id_or_path);
        self.members(|| Ok(self.world.members_of(index?)))
    }

    /// `GET /groups/:id/members`.
    pub(crate) fn group_members(&self, id_or_path: &str) -> Result<Reply, ApiError> {
        let index = self.world.group_index(id_or_path).ok_or(ApiError::NotFound("Group"));
        self.members(|| Ok(self.world.group_members_of(index?)))
    }

    /// A member list: `query`, `user_ids[]`, `skip_users[]`, `show_seat_info`, `state`.
    fn members<'w>(&'w self, find: impl FnOnce() -> Result<&'w Members, ApiError>) -> Result<Reply, ApiError> {
        let q = self.query;
        let search = q.get("query").map(str::to_lowercase);
        let user_ids = q.id_list("user_ids")?;
        let skip = q.id_list("skip_users")?.unwrap_or_default();
        let seats = q.flag("show_seat_info")?.unwrap_or(false);
        let state = q.choice("state", &["awaiting", "active"])?;
        let page = PageRequest::from_query(q)?;
        let members = find()?;
        let kept: Vec<&Member> = members
            .members
            .iter()
            .filter(|m| search.as_deref().is_none_or(|s| m.search_text.contains(s)))
            .filter(|m| user_ids.as_ref().is_none_or(|ids| ids.contains(&m.user_id)))
            .filter(|m| !skip.contains(&m.user_id))
            .filter(|_| state != Some("awaiting"))
            .collect();
        Ok(offset_page_mapped(&self.url, page, &kept, Counting::UpToLimit, |m| {
            if seats {
                let mut json = m.json[..m.json.len() - 1].to_vec();
                json.extend_from_slice(format!(r#","is_using_seat":{}}}"#, m.using_seat).as_bytes());
                json.into()
            } else {
                (&*m.json).into()
            }
        }))
    }
}

impl World {
    /// What `GET /projects/:id/members` lists: the project's direct members.
    pub fn project_members(&self, project_id: u64) -> Vec<Value> {
        self.project_index_of(project_id)
            .map_or_else(Vec::new, |index| values(self.members_of(index).members.iter().map(|m| &*m.json)))
    }

    /// What `GET /groups/:id/members` lists: the group's direct members.
    pub fn group_members(&self, group_id: u64) -> Vec<Value> {
        self.group_index_of(group_id)
            .map_or_else(Vec::new, |index| values(self.group_members_of(index).members.iter().map(|m| &*m.json)))
    }
}
