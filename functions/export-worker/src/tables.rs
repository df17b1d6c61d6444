//! What an archive holds, from the catalog: every table the export role may read, with the
//! columns it may read (secrets are not granted to it), and how each table's rows of one
//! workspace are found.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::ExportError;

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub withheld: Vec<String>,
    has_workspace_id: bool,
}

pub struct Catalog {
    pub exported: Vec<Table>,
    /// Tables with a workspace that the export role is not granted.
    pub not_exported: Vec<String>,
}

pub async fn catalog(tx: &mut PgConnection) -> Result<Catalog, ExportError> {
    let tables: Vec<Table> = sqlx::query_as!(
        Table,
        r#"SELECT c.relname::text AS "name!",
                coalesce(array_agg(a.attname::text ORDER BY a.attnum)
                         FILTER (WHERE has_column_privilege(c.oid, a.attnum, 'SELECT')), '{}') AS "columns!",
                coalesce(array_agg(a.attname::text ORDER BY a.attnum)
                         FILTER (WHERE NOT has_column_privilege(c.oid, a.attnum, 'SELECT')), '{}') AS "withheld!",
                bool_or(a.attname = 'workspace_id') AS "has_workspace_id!"
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
         GROUP BY c.relname
         ORDER BY c.relname"#,
    )
    .fetch_all(&mut *tx)
    .await?;
    let (exported, rest): (Vec<Table>, Vec<Table>) = tables.into_iter().partition(|t| !t.columns.is_empty());
    let not_exported = rest.into_iter().filter(|t| t.has_workspace_id).map(|t| t.name).collect();
    Ok(Catalog { exported, not_exported })
}

/// Why a table with a workspace is left out of archives (the manifest says so).
pub fn why_not_exported(table: &str) -> &'static str {
    match table {
        "realtime_subscriptions" => "live WebSocket connection state, meaningless outside the running system",
        "file_deletions" => "objects of already deleted files, queued for deletion from the files bucket",
        _ => "not granted to the export role",
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Table {
    /// The statement answering this table's rows of one workspace, each as one line. It is
    /// built at run time because the tables and columns come from the catalog: identifiers are
    /// quoted, values are bound. The export role's policies filter by the workspace too; the
    /// explicit filter is what the indexes serve.
    pub fn select_lines(&self, workspace_id: Uuid) -> Result<QueryBuilder<Postgres>, ExportError> {
        let mut sql = QueryBuilder::new(r#"SELECT concat('{"table":', to_json("#);
        sql.push_bind(self.name.clone());
        sql.push(r#"::text), ',"row":', row_to_json(x), '}') FROM (SELECT "#);
        sql.push(self.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "));
        sql.push(" FROM public.").push(ident(&self.name)).push(" WHERE ");
        match self.name.as_str() {
            "workspaces" => sql.push("id = ").push_bind(workspace_id),
            "users" => sql
                .push("id IN (SELECT user_id FROM public.workspace_members WHERE workspace_id = ")
                .push_bind(workspace_id)
                .push(" UNION SELECT user_id FROM public.client_contacts WHERE workspace_id = ")
                .push_bind(workspace_id)
                .push(")"),
            _ if self.has_workspace_id => sql.push("workspace_id = ").push_bind(workspace_id),
            // A readable table the archive does not know how to scope: refuse rather than guess.
            other => return Err(ExportError::Catalog(format!("no workspace scope for table {other}"))),
        };
        sql.push(") x");
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, has_workspace_id: bool) -> Table {
        Table { name: name.into(), columns: vec!["id".into(), "a\"b".into()], withheld: vec![], has_workspace_id }
    }

    #[test]
    fn rows_are_scoped_to_the_workspace_and_names_quoted() {
        let workspace = Uuid::now_v7();
        let sql = table("projects", true).select_lines(workspace).unwrap().into_string();
        assert!(sql.starts_with("SELECT concat('{\"table\":', to_json($1::text)"), "{sql}");
        assert!(sql.contains("SELECT \"id\", \"a\"\"b\" FROM public.\"projects\" WHERE workspace_id = $2) x"), "{sql}");
        assert!(
            table("workspaces", false).select_lines(workspace).unwrap().into_string().ends_with("WHERE id = $2) x")
        );
        let users = table("users", false).select_lines(workspace).unwrap().into_string();
        assert!(users.contains("workspace_id = $2 UNION") && users.ends_with("workspace_id = $3)) x"), "{users}");
        assert!(matches!(table("plans", false).select_lines(workspace), Err(ExportError::Catalog(_))));
    }
}
