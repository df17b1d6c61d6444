//! Schemas of request fields whose valid values come from a catalog in the code (plans), so the
//! document lists exactly what the handlers accept.

use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::plans::CATALOG;

/// A paid plan's id (`plans::paid` accepts these).
pub fn paid_plan() -> ObjectBuilder {
    let paid = CATALOG.iter().filter(|plan| plan.stripe_prices.is_some()).map(|plan| plan.id);
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(paid)).description(Some("A paid plan."))
}

/// Any of `values`, as a string enumeration.
pub fn one_of(values: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied()))
}
