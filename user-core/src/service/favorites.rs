//! Favorite tracks, each change with its outbox task.

use super::UserService;
use crate::domain::{MAX_BATCH, TrackId, UserId, ValidationError};
use crate::error::Result;
use crate::page::{self, Page, PageRequest};
use crate::store::Favorite;

impl UserService {
    /// Marks 1–50 tracks favorite, each newly added one with a
    /// `favorite.added` task in the same transaction; all or nothing.
    /// Adding a favorite again changes nothing.
    ///
    /// # Errors
    /// [`Error::Validation`](crate::Error::Validation) on `track_id` for 0 or more than 50 ids.
    pub async fn add_favorites(&self, user: UserId, tracks: &[TrackId]) -> Result<()> {
        check_batch(tracks)?;
        if self.store.add_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// Unmarks 1–50 tracks, each removed one with a `favorite.removed` task in
    /// the same transaction; all or nothing. Removing an absent favorite
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::Validation`](crate::Error::Validation) on `track_id` for 0 or more than 50 ids.
    pub async fn remove_favorites(&self, user: UserId, tracks: &[TrackId]) -> Result<()> {
        check_batch(tracks)?;
        if self.store.remove_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// For each of 1–50 tracks, in order, whether it is a favorite.
    ///
    /// # Errors
    /// [`Error::Validation`](crate::Error::Validation) on `track_id` for 0 or more than 50 ids.
    pub async fn contains(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        check_batch(tracks)?;
        self.store.favorites_contain(user, tracks).await
    }

    /// The user's favorites, newest first (the last added is always first).
    ///
    /// # Errors
    /// [`Error::Validation`](crate::Error::Validation) on `cursor` for a cursor of another listing.
    pub async fn list_favorites(&self, user: UserId, page: &PageRequest) -> Result<Page<Favorite>> {
        let rows = self.store.list_favorites(user, page.favorite_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |f| page::favorite_cursor(f.seq)))
    }
}

fn check_batch(tracks: &[TrackId]) -> Result<()> {
    if tracks.is_empty() {
        return Err(ValidationError::new("track_id", "is required").into());
    }
    if tracks.len() > MAX_BATCH {
        return Err(ValidationError::new("track_id", "at most 50 ids at once").into());
    }
    Ok(())
}
