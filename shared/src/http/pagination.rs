//! Cursor pagination, newest first. Ids are UUIDv7, so id order is creation order and the cursor
//! is simply the last id of the page (opaque to callers).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u32,
    /// Return rows with an id below this one.
    pub before: Option<Uuid>,
}

impl PageRequest {
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let before = cursor
            .filter(|c| !c.is_empty())
            .map(|c| {
                Uuid::try_parse(c).map_err(|_| ApiError::BadRequest {
                    code: "invalid_cursor",
                    detail: "The cursor is not one this API returned.".into(),
                })
            })
            .transpose()?;
        Ok(Self { limit, before })
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// The query string of a list without filters: `?limit=&cursor=` and nothing else.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.limit, self.cursor.as_deref())
    }
}

/// One page of a list, newest first; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `fetch_limit`, ordered by id descending.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, id: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next_cursor = if more { rows.last().map(|row| id(row).simple().to_string()) } else { None };
        Self { items: rows, next_cursor }
    }

    /// The same page with each item turned into another type.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_plus_one_has_a_cursor_to_its_last_item() {
        let request = PageRequest::parse(Some(2), None).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).rev().collect();
        let page = Page::from_rows(ids.clone(), &request, |id| *id);
        assert_eq!(page.items.len(), 2);
        let cursor = page.next_cursor.unwrap();
        assert_eq!(PageRequest::parse(None, Some(&cursor)).unwrap().before, Some(ids[1]));
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let request = PageRequest::parse(Some(5), None).unwrap();
        assert!(Page::from_rows(vec![Uuid::now_v7()], &request, |id| *id).next_cursor.is_none());
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert!(matches!(PageRequest::parse(Some(0), None), Err(ApiError::Validation(_))));
        assert!(matches!(PageRequest::parse(Some(101), None), Err(ApiError::Validation(_))));
        assert!(matches!(
            PageRequest::parse(None, Some("nope")),
            Err(ApiError::BadRequest { code: "invalid_cursor", .. })
        ));
    }
}
