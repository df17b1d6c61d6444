//! Statuses and response bodies of this function.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "project_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Planned,
    #[default]
    Active,
    OnHold,
    Completed,
    Archived,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "milestone_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum MilestoneStatus {
    #[default]
    Open,
    Done,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "deliverable_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DeliverableStatus {
    #[default]
    Draft,
    InReview,
    ChangesRequested,
    Approved,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub client_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub status: ProjectStatus,
    pub due_date: Option<Date>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MilestoneView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: MilestoneStatus,
    pub due_date: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliverableView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub milestone_id: Option<Uuid>,
    pub title: String,
    pub description: String,
    pub url: Option<String>,
    pub status: DeliverableStatus,
    pub client_visible: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub author_id: Option<Uuid>,
    pub body: String,
    pub client_visible: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ProjectPath {
    pub workspace_id: Uuid,
    pub project_id: Uuid,
}

/// Path of an item under a project (milestone, deliverable, comment).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ItemPath {
    pub workspace_id: Uuid,
    pub project_id: Uuid,
    pub item_id: Uuid,
}

impl ItemPath {
    pub fn project(&self) -> ProjectPath {
        ProjectPath { workspace_id: self.workspace_id, project_id: self.project_id }
    }
}
