//! What an archive holds, from the catalog: every table the export role may read, with the
//! columns it may read (secrets are not granted to it), and how each table's rows of one
//! workspace are found.

use sqlx::PgConnection;

use crate::ExportError;

#[derive(Debug, Clone, sqlx::FromRow)]
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
    let tables: Vec<Table> = sqlx::query_as(
        "SELECT c.relname::text AS name,
                coalesce(array_agg(a.attname::text ORDER BY a.attnum)
                         FILTER (WHERE has_column_privilege(c.oid, a.attnum, 'SELECT')), '{}') AS columns,
                coalesce(array_agg(a.attname::text ORDER BY a.attnum)
                         FILTER (WHERE NOT has_column_privilege(c.oid, a.attnum, 'SELECT')), '{}') AS withheld,
                bool_or(a.attname = 'workspace_id') AS has_workspace_id
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
         GROUP BY c.relname
         ORDER BY c.relname",
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
        _ => "not granted to the export role",
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Table {
    /// The statement answering this table's rows of workspace `$1`, each as one line. The
    /// export role's policies filter by the workspace too; the explicit filter is what the
    /// indexes serve.
    pub fn select_lines(&self) -> Result<String, ExportError> {
        let filter = match self.name.as_str() {
            "workspaces" => "id = $1".to_owned(),
            "users" => "id IN (SELECT user_id FROM public.workspace_members WHERE workspace_id = $1
                              UNION SELECT user_id FROM public.client_contacts WHERE workspace_id = $1)"
                .to_owned(),
            _ if self.has_workspace_id => "workspace_id = $1".to_owned(),
            // A readable table the archive does not know how to scope: refuse rather than guess.
            other => return Err(ExportError::Catalog(format!("no workspace scope for table {other}"))),
        };
        let columns = self.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        Ok(format!(
            "SELECT concat('{{\"table\":', to_json({name}::text), ',\"row\":', row_to_json(x), '}}')
             FROM (SELECT {columns} FROM public.{table} WHERE {filter}) x",
            name = sql_literal(&self.name),
            table = ident(&self.name),
        ))
    }
}

fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, has_workspace_id: bool) -> Table {
        Table { name: name.into(), columns: vec!["id".into(), "a\"b".into()], withheld: vec![], has_workspace_id }
    }

    #[test]
    fn rows_are_scoped_to_the_workspace_and_names_quoted() {
        let sql = table("projects", true).select_lines().unwrap();
        assert!(sql.contains("SELECT \"id\", \"a\"\"b\" FROM public.\"projects\" WHERE workspace_id = $1"), "{sql}");
        assert!(table("workspaces", false).select_lines().unwrap().contains("WHERE id = $1"));
        assert!(matches!(table("plans", false).select_lines(), Err(ExportError::Catalog(_))));
    }
}
