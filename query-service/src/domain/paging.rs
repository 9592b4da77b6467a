//! KillrVideo paging (the page walk's value types; `api::common::params` reads them
//! from query strings): `?page=1&pageSize=10` (page ≥ 1, pageSize 1..=100) and the
//! envelope `{"data": [...], "pagination": {currentPage, pageSize, totalItems,
//! totalPages}}` that every list answer uses.

use std::collections::HashMap;

use platform::http::Problem;
use serde::Serialize;
use utoipa::ToSchema;

pub const DEFAULT_PAGE_SIZE: u32 = 10;
pub const MAX_PAGE_SIZE: u32 = 100;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, page_size: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// Reads `page` and `pageSize` from a query string; a bad value is a 422 naming it.
    /// `page_size` is taken as an alias of `pageSize`: KillrVideo's React front end
    /// sends it on `/videos/latest`. Each is checked; with both, `pageSize` wins.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, Problem> {
        let page = number(q, "page", 1, u32::MAX)?.unwrap_or(1);
        let alias = number(q, "page_size", 1, MAX_PAGE_SIZE)?;
        let page_size = number(q, "pageSize", 1, MAX_PAGE_SIZE)?.or(alias).unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(Self { page, page_size })
    }

    /// Items to skip before this page.
    pub fn offset(&self) -> usize {
        (self.page as usize - 1).saturating_mul(self.page_size as usize)
    }

    /// Items to read to fill this page from the start of a list: the offset plus a page.
    pub fn end(&self) -> usize {
        self.offset().saturating_add(self.page_size as usize)
    }
}

pub fn number(q: &HashMap<String, String>, field: &str, min: u32, max: u32) -> Result<Option<u32>, Problem> {
    let Some(raw) = q.get(field) else { return Ok(None) };
    match raw.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Problem::invalid(field, format!("must be an integer from {min} to {max}"))),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub current_page: u32,
    pub page_size: u32,
    pub total_items: u64,
    pub total_pages: u64,
}

/// One page of a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

impl<T> Page<T> {
    /// A page whose items were already selected, out of `total_items`.
    pub fn new(req: PageRequest, data: Vec<T>, total_items: u64) -> Self {
        let total_pages = total_items.div_ceil(req.page_size as u64);
        let pagination = Pagination { current_page: req.page, page_size: req.page_size, total_items, total_pages };
        Self { data, pagination }
    }

    /// The requested page of a whole list.
    pub fn slice(req: PageRequest, all: Vec<T>) -> Self {
        let total = all.len() as u64;
        let data = all.into_iter().skip(req.offset()).take(req.page_size as usize).collect();
        Self::new(req, data, total)
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { data: self.data.into_iter().map(f).collect(), pagination: self.pagination }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::from_query(&q(&[])).unwrap(), PageRequest { page: 1, page_size: 10 });
        let r = PageRequest::from_query(&q(&[("page", "3"), ("pageSize", "100")])).unwrap();
        assert_eq!((r.offset(), r.end()), (200, 300));
        let alias = PageRequest::from_query(&q(&[("page_size", "20")])).unwrap();
        assert_eq!(alias.page_size, 20);
        let both = PageRequest::from_query(&q(&[("page_size", "20"), ("pageSize", "30")])).unwrap();
        assert_eq!(both.page_size, 30);
        assert_eq!(PageRequest::from_query(&q(&[("page_size", "0")])).unwrap_err().field.as_deref(), Some("page_size"));
        for (k, v) in [("page", "0"), ("pageSize", "0"), ("pageSize", "101"), ("page", "x"), ("pageSize", "-1")] {
            let p = PageRequest::from_query(&q(&[(k, v)])).unwrap_err();
            assert_eq!(p.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(p.field.as_deref(), Some(k), "{k}={v}");
        }
    }

    #[test]
    fn slices_and_counts_pages() {
        let req = PageRequest { page: 2, page_size: 3 };
        let p = Page::slice(req, (1..=7).collect());
        assert_eq!(p.data, vec![4, 5, 6]);
        assert_eq!(p.pagination, Pagination { current_page: 2, page_size: 3, total_items: 7, total_pages: 3 });
        let past = Page::slice(PageRequest { page: 9, page_size: 3 }, (1..=7).collect::<Vec<i32>>());
        assert!(past.data.is_empty());
        assert_eq!(past.pagination.total_pages, 3);
        let empty = Page::slice(req, Vec::<i32>::new());
        assert_eq!((empty.pagination.total_items, empty.pagination.total_pages), (0, 0));
    }
}
