//! Favorite tracks, each change with its outbox task.

use super::UserService;
use crate::domain::{TrackBatch, UserId};
use crate::error::Result;
use crate::page::{self, Page, PageRequest};
use crate::store::{Favorite, User};

impl UserService {
    /// Marks 1–50 tracks favorite, each newly added one with a
    /// `favorite.added` task in the same transaction; all or nothing.
    /// Adding a favorite again changes nothing.
    ///
    /// # Errors
    /// [`Error::UserNotFound`](crate::Error::UserNotFound) if the account is gone.
    pub async fn add_favorites(&self, user: UserId, tracks: &TrackBatch) -> Result<()> {
        if self.store.add_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// [`UserService::add_favorites`] for the account as read with its
    /// session: a guest keeps at most [`GuestPolicy::max_favorites`](super::GuestPolicy).
    ///
    /// # Errors
    /// As [`UserService::add_favorites`]; [`Error::Forbidden`](crate::Error::Forbidden)
    /// past a guest's limit.
    pub async fn add_favorites_for(&self, user: &User, tracks: &TrackBatch) -> Result<()> {
        self.check_guest_favorites(user, tracks.len()).await?;
        if self.store.add_favorites(user.id, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// Unmarks 1–50 tracks, each removed one with a `favorite.removed` task in
    /// the same transaction; all or nothing. Removing an absent favorite
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::UserNotFound`](crate::Error::UserNotFound) if the account is gone.
    pub async fn remove_favorites(&self, user: UserId, tracks: &TrackBatch) -> Result<()> {
        if self.store.remove_favorites(user, tracks, self.clock.now()).await? > 0 {
            self.task_waker.wake();
        }
        Ok(())
    }

    /// For each of 1–50 tracks, in order, whether it is a favorite.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::Error::Internal) if the store fails.
    pub async fn contains(&self, user: UserId, tracks: &TrackBatch) -> Result<Vec<bool>> {
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
