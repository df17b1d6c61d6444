//! The tool catalog: prompt templates over workspace data the caller may read (every query runs
//! in the caller's RLS-scoped transaction). Owners, admins and members run tools; viewers and
//! client contacts are refused before any of this.

use serde::Deserialize;
use serde_json::Value;
use shared::ApiError;
use shared::db::TenantTx;
use shared::error::FieldError;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Where a project stands, from its milestones, deliverables and comments.
    ProjectStatusSummary,
    /// A status update e-mail to the client, from what is shared with the client only.
    ClientUpdateEmail,
    /// A scope and proposal draft from a brief.
    ProposalDraft,
}

pub const TOOLS: [(&str, Tool); 3] = [
    ("project_status_summary", Tool::ProjectStatusSummary),
    ("client_update_email", Tool::ClientUpdateEmail),
    ("proposal_draft", Tool::ProposalDraft),
];

pub struct Prompt {
    pub system: String,
    pub user: String,
}

/// The document's schema of a run's `tool`.
pub fn tool_schema() -> utoipa::openapi::schema::ObjectBuilder {
    shared::openapi::schemas::one_of(&TOOLS.map(|(id, _)| id))
}

impl Tool {
    pub fn parse(name: &str) -> Result<Tool, FieldError> {
        TOOLS
            .iter()
            .find(|(id, _)| *id == name)
            .map(|(_, tool)| *tool)
            .ok_or_else(|| FieldError::new("tool", format!("must be one of: {}", TOOLS.map(|(id, _)| id).join(", "))))
    }

    pub fn id(self) -> &'static str {
        TOOLS.iter().find(|(_, tool)| *tool == self).map(|(id, _)| *id).unwrap_or_default()
    }

    fn needs_project(self) -> bool {
        !matches!(self, Tool::ProposalDraft)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SummaryInput {
    focus: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmailInput {
    #[serde(default)]
    tone: Tone,
    notes: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Tone {
    #[default]
    Friendly,
    Formal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalInput {
    brief: String,
    client_name: Option<String>,
    budget: Option<String>,
}

fn input<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    let value = if value.is_null() { Value::Object(Default::default()) } else { value.clone() };
    serde_json::from_value(value).map_err(|e| ApiError::validation("input", e.to_string()))
}

fn bounded(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(ApiError::validation(field, format!("must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

/// Checks a tool's input and project before anything is reserved or recorded.
pub fn validate(tool: Tool, project_id: Option<Uuid>, value: &Value) -> Result<(), ApiError> {
    if tool.needs_project() && project_id.is_none() {
        return Err(ApiError::validation("project_id", format!("{} needs a project", tool.id())));
    }
    match tool {
        Tool::ProjectStatusSummary => bounded("input.focus", input::<SummaryInput>(value)?.focus.as_deref(), 500),
        Tool::ClientUpdateEmail => bounded("input.notes", input::<EmailInput>(value)?.notes.as_deref(), 2000),
        Tool::ProposalDraft => {
            let p: ProposalInput = input(value)?;
            if p.brief.trim().is_empty() {
                return Err(ApiError::validation("input.brief", "must not be empty"));
            }
            bounded("input.brief", Some(&p.brief), 5000)?;
            bounded("input.client_name", p.client_name.as_deref(), 200)?;
            bounded("input.budget", p.budget.as_deref(), 200)
        }
    }
}

/// Builds the prompt from the tool's template and the data the caller may read.
pub async fn prompt(
    tx: &mut TenantTx,
    tool: Tool,
    workspace_id: Uuid,
    project_id: Option<Uuid>,
    value: &Value,
) -> Result<Prompt, ApiError> {
    match tool {
        Tool::ProposalDraft => {
            let p: ProposalInput = input(value)?;
            Ok(Prompt {
                system: "You are a senior consultant at a small agency. Draft clear, honest project proposals: \
                         scope, deliverables, milestones with rough durations, assumptions, exclusions and open \
                         questions. Never invent prices unless a budget is given."
                    .into(),
                user: format!(
                    "Client: {}\nBudget: {}\n\nBrief:\n{}\n\nDraft the scope and proposal.",
                    p.client_name.as_deref().unwrap_or("(not named)"),
                    p.budget.as_deref().unwrap_or("(not given)"),
                    p.brief
                ),
            })
        }
        Tool::ProjectStatusSummary => {
            let focus = input::<SummaryInput>(value)?.focus;
            let context = project_context(tx, workspace_id, project_id, false).await?;
            Ok(Prompt {
                system: "You summarise project status for the team: progress against milestones, what is at risk, \
                         what needs a decision, next steps. Be concise and factual; use only the data given."
                    .into(),
                user: format!(
                    "{context}\n{}Summarise the status.",
                    focus.map(|f| format!("Focus on: {f}\n")).unwrap_or_default()
                ),
            })
        }
        Tool::ClientUpdateEmail => {
            let EmailInput { tone, notes } = input(value)?;
            // Only what is shared with the client goes into an e-mail to the client.
            let context = project_context(tx, workspace_id, project_id, true).await?;
            let tone = match tone {
                Tone::Friendly => "friendly and warm",
                Tone::Formal => "formal and concise",
            };
            Ok(Prompt {
                system: format!(
                    "You write project update e-mails from an agency to its client. Tone: {tone}. Mention progress, \
                     what the client should review, and next steps. Use only the data given; never mention internal notes."
                ),
                user: format!(
                    "{context}\n{}Write the e-mail (subject line first).",
                    notes.map(|n| format!("Also mention: {n}\n")).unwrap_or_default()
                ),
            })
        }
    }
}

struct ProjectRow {
    name: String,
    description: String,
    status: String,
    due: Option<time::Date>,
    client: Option<String>,
}

async fn project_context(
    tx: &mut TenantTx,
    workspace_id: Uuid,
    project_id: Option<Uuid>,
    client_visible_only: bool,
) -> Result<String, ApiError> {
    let project_id = project_id.ok_or_else(|| ApiError::validation("project_id", "this tool needs a project"))?;
    let project: Option<ProjectRow> = sqlx::query_as!(
        ProjectRow,
        r#"SELECT p.name, p.description, p.status::text AS "status!", p.due_date AS due, c.name AS client
         FROM projects p LEFT JOIN clients c ON c.id = p.client_id
         WHERE p.workspace_id = $1 AND p.id = $2"#,
        workspace_id,
        project_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let ProjectRow { name, description, status, due, client } = project.ok_or(ApiError::NotFound("project"))?;
    let milestones = sqlx::query!(
        r#"SELECT title, status::text AS "status!", due_date FROM milestones
           WHERE workspace_id = $1 AND project_id = $2
           ORDER BY due_date NULLS LAST, id LIMIT 50"#,
        workspace_id,
        project_id,
    )
    .fetch_all(&mut **tx)
    .await?;
    let deliverables = sqlx::query!(
        r#"SELECT title, status::text AS "status!" FROM deliverables
           WHERE workspace_id = $1 AND project_id = $2
           AND (client_visible OR NOT $3) ORDER BY id LIMIT 50"#,
        workspace_id,
        project_id,
        client_visible_only,
    )
    .fetch_all(&mut **tx)
    .await?;
    let comments = sqlx::query_scalar!(
        "SELECT body FROM comments WHERE workspace_id = $1 AND project_id = $2
           AND (client_visible OR NOT $3) ORDER BY id DESC LIMIT 20",
        workspace_id,
        project_id,
        client_visible_only,
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut text = format!(
        "Project: {name}\nClient: {}\nStatus: {status}\nDue: {}\nDescription: {description}\n\nMilestones:\n",
        client.as_deref().unwrap_or("(internal)"),
        due.map(|d| d.to_string()).unwrap_or_else(|| "(none)".into())
    );
    for milestone in milestones {
        text.push_str(&format!(
            "- {} [{}] due {}\n",
            milestone.title,
            milestone.status,
            milestone.due_date.map(|d| d.to_string()).unwrap_or_else(|| "(none)".into())
        ));
    }
    text.push_str("\nDeliverables:\n");
    for deliverable in deliverables {
        text.push_str(&format!("- {} [{}]\n", deliverable.title, deliverable.status));
    }
    text.push_str("\nRecent comments (newest first):\n");
    for body in comments {
        text.push_str(&format!("- {}\n", body.chars().take(500).collect::<String>()));
    }
    Ok(text)
}
