//! OpenAPI links from each create operation to the operations on what it created, so clients
//! (and schemathesis's stateful phase) can follow `POST /things` → `GET /things/{thing_id}`.
//!
//! Derived from the paths, not declared per handler: a `POST` on a collection that answers 201
//! (or 202) links to every operation on `collection/{param}` and to its actions (a
//! `collection/{param}/<action>` that only takes `POST`, such as `resend` or `rotate-secret`),
//! `param` taken from the created body (`param` itself when the body has such a field, such as a
//! member's `user_id`, otherwise its `id`) and the collection's own parameters from the request.

use std::collections::BTreeMap;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().filter_map(Option::as_ref)
}

/// An action: a path that answers `POST` only.
fn is_action(item: &PathItem) -> bool {
    item.post.is_some() && operations(item).count() == 1
}

fn parameters_of(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')).collect()
}

/// The top-level property names of a schema (through `$ref`s and `allOf`s).
fn properties(schemas: &BTreeMap<String, RefOr<Schema>>, schema: &RefOr<Schema>, depth: u8) -> Vec<String> {
    if depth > 4 {
        return Vec::new();
    }
    match schema {
        RefOr::Ref(reference) => reference
            .ref_location
            .strip_prefix("#/components/schemas/")
            .and_then(|name| schemas.get(name))
            .map(|target| properties(schemas, target, depth + 1))
            .unwrap_or_default(),
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        RefOr::T(Schema::AllOf(all)) => {
            all.items.iter().flat_map(|part| properties(schemas, part, depth + 1)).collect()
        }
        RefOr::T(_) => Vec::new(),
    }
}

/// Adds the links to `doc`'s create operations.
pub fn add(doc: &mut OpenApi) {
    let schemas = doc.components.as_ref().map(|c| c.schemas.clone()).unwrap_or_default();
    // (collection path, item parameter, [(operation id, item path)])
    let mut plans: Vec<(String, String, Vec<String>)> = Vec::new();
    for (collection, item) in &doc.paths.paths {
        if item.post.is_none() {
            continue;
        }
        let prefix = format!("{collection}/{{");
        let mut targets = Vec::new();
        let mut parameter = None;
        for (path, candidate) in &doc.paths.paths {
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            let Some((name, tail)) = rest.split_once('}') else { continue };
            let action = tail.strip_prefix('/').is_some_and(|a| !a.contains('/') && !a.contains('{'));
            if !(tail.is_empty() || action && is_action(candidate)) || parameter.as_deref().is_some_and(|p| p != name) {
                continue;
            }
            parameter = Some(name.to_owned());
            targets.extend(operations(candidate).filter_map(|op| op.operation_id.clone()));
        }
        if let Some(parameter) = parameter
            && !targets.is_empty()
        {
            plans.push((collection.clone(), parameter, targets));
        }
    }
    for (collection, parameter, targets) in plans {
        let Some(create) = doc.paths.paths.get_mut(&collection).and_then(|item| item.post.as_mut()) else { continue };
        for status in ["201", "202"] {
            let Some(RefOr::T(response)) = create.responses.responses.get_mut(status) else { continue };
            let Some(schema) = response.content.get("application/json").and_then(|c| match c {
                RefOr::T(content) => content.schema.clone(),
                RefOr::Ref(_) => None,
            }) else {
                continue;
            };
            let fields = properties(&schemas, &schema, 0);
            let source = if fields.contains(&parameter) {
                parameter.clone()
            } else if fields.iter().any(|f| f == "id") {
                "id".to_owned()
            } else {
                continue;
            };
            for target in &targets {
                let mut link = LinkBuilder::new()
                    .operation_id(target.clone())
                    .parameter(parameter.clone(), format!("$response.body#/{source}"));
                for inherited in parameters_of(&collection) {
                    link = link.parameter(inherited, format!("$request.path.{inherited}"));
                }
                response.links.insert(target.clone(), RefOr::T(link.build()));
            }
        }
    }
}
