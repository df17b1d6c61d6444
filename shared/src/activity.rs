//! An activity feed entry as readers get it: from the feed API and pushed live.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    pub verb: String,
    pub message: String,
    pub actor_id: Option<Uuid>,
    pub actor: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<Uuid>,
    pub subject_name: Option<String>,
    pub project_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub client_visible: bool,
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Reads `ActivityView`s: `select_activity!("WHERE ...", args...)` is a checked `query_as!` of
/// the `activity` columns a view is made of, followed by the caller's literal clauses.
#[macro_export]
macro_rules! select_activity {
    ($first:tt $(+ $more:tt)* $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            $crate::activity::ActivityView,
            "SELECT id, verb, message, actor_id, actor, subject_type, subject_id, subject_name, project_id,
                    client_id, client_visible, data, created_at
             FROM activity " + $first $(+ $more)*,
            $($arg),*
        )
    };
}
