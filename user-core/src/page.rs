//! Keyset pagination: a page size and an opaque cursor in, a page and the
//! next cursor out. Pages cost O(page size) at any depth.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::{UserId, ValidationError};

/// The largest page.
pub const MAX_LIMIT: u32 = 100;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;

/// Which page to read: how many items, and where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_LIMIT, cursor: None }
    }
}

impl PageRequest {
    /// The first page of `limit` items.
    ///
    /// # Errors
    /// A [`ValidationError`] on `limit` outside 1–100.
    pub fn first(limit: u32) -> Result<Self, ValidationError> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ValidationError::new("limit", "must be an integer from 1 to 100"));
        }
        Ok(Self { limit, cursor: None })
    }

    /// The page after the one that returned `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Parses the `limit` and `cursor` query parameters as given by a client
    /// (`limit` defaults to 50).
    ///
    /// # Errors
    /// A [`ValidationError`] on `limit` if not an integer from 1 to 100; the
    /// cursor is checked when used, against the listing it belongs to.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ValidationError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(s) => {
                s.parse::<u32>().map_err(|_| ValidationError::new("limit", "must be an integer from 1 to 100"))?
            }
        };
        let page = Self::first(limit)?;
        Ok(match cursor {
            Some(c) => page.after(c),
            None => page,
        })
    }

    /// Items per page.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The cursor this page continues after, as a client passes it.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    pub(crate) fn user_cursor(&self) -> Result<Option<UserId>, ValidationError> {
        Ok(self.decode::<16>(b'u')?.map(|b| UserId::from_uuid(uuid::Uuid::from_bytes(b))))
    }

    pub(crate) fn favorite_cursor(&self) -> Result<Option<i64>, ValidationError> {
        Ok(self.decode::<8>(b'f')?.map(i64::from_be_bytes))
    }

    pub(crate) fn task_cursor(&self) -> Result<Option<i64>, ValidationError> {
        Ok(self.decode::<8>(b't')?.map(i64::from_be_bytes))
    }

    pub(crate) fn audit_cursor(&self) -> Result<Option<i64>, ValidationError> {
        Ok(self.decode::<8>(b'a')?.map(i64::from_be_bytes))
    }

    /// The cursor's `N` bytes after `tag`; anything else is not a cursor of
    /// this listing.
    fn decode<const N: usize>(&self, tag: u8) -> Result<Option<[u8; N]>, ValidationError> {
        let Some(cursor) = &self.cursor else { return Ok(None) };
        let invalid = || ValidationError::new("cursor", "is not a cursor of this listing");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        match bytes.split_first() {
            Some((&t, rest)) if t == tag => rest.try_into().map(Some).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

pub(crate) fn user_cursor(id: UserId) -> String {
    encode(b'u', id.as_uuid().as_bytes())
}

pub(crate) fn favorite_cursor(seq: i64) -> String {
    encode(b'f', &seq.to_be_bytes())
}

pub(crate) fn task_cursor(id: i64) -> String {
    encode(b't', &id.to_be_bytes())
}

pub(crate) fn audit_cursor(id: i64) -> String {
    encode(b'a', &id.to_be_bytes())
}

fn encode(tag: u8, body: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(body.len() + 1);
    bytes.push(tag);
    bytes.extend_from_slice(body);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass to [`PageRequest::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says
    /// whether another page exists.
    pub(crate) fn from_overfetch(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(cursor_of) } else { None };
        Self { items: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_fifty_and_must_be_one_to_a_hundred() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit(), 50);
        assert_eq!(PageRequest::parse(Some("100"), None).unwrap().limit(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            assert_eq!(PageRequest::parse(Some(bad), None).unwrap_err().field, "limit", "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_belong_to_one_listing() {
        let id = UserId::new();
        let page = PageRequest::default().after(user_cursor(id));
        assert_eq!(page.cursor(), Some(user_cursor(id).as_str()));
        assert_eq!(page.user_cursor().unwrap(), Some(id));
        assert_eq!(page.favorite_cursor().unwrap_err().field, "cursor");
        let fav = PageRequest::default().after(favorite_cursor(42));
        assert_eq!(fav.favorite_cursor().unwrap(), Some(42));
        for bad in ["", "!!!", "dGVzdA"] {
            assert_eq!(PageRequest::default().after(bad).user_cursor().unwrap_err().field, "cursor");
        }
    }

    #[test]
    fn the_last_page_has_no_next_cursor() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page.items, page.next_cursor), (vec![1, 2], Some("2".to_owned())));
        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }
}
