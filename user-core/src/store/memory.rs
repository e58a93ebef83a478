//! An in-memory backend: one lock over plain maps, so every trait method is
//! trivially atomic. For tests and for embedding where persistence is not wanted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AccountChanges, AuditFilter, AuditRecord, AuditStore, Claim, DeferredTask, Favorite, FavoriteStore, LockRule,
    LoginAttempt, MailPayload, NewMail, NewSession, Rotation, SecretStore, SessionRecord, SessionStore, Store,
    TaskCounts, TaskKind, TaskStatus, TaskStore, TokenMail, TokenOwner, TokenPurpose, TokenStore, User, UserChanges,
    UserKey, UserRecord, UserStore, WaitingTasks,
};
use super::{
    DEVICE_GRANT_KEPT, DeviceDecision, DeviceGrant, DevicePoll, DeviceStore, NewDeviceGrant, UserCodeAction,
    polled_too_fast,
};
use crate::domain::{Email, Role, SessionId, TrackId, UserCode, UserId};
use crate::error::{ConflictField, Error, Result};

/// Keeps everything in process memory; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    unavailable: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    users: BTreeMap<UserId, UserRecord>,
    by_username: HashMap<String, UserId>,
    by_email: HashMap<String, UserId>,
    sessions: HashMap<SessionId, SessionRecord>,
    favorites: BTreeMap<(UserId, i64), Favorite>,
    favorite_seq: HashMap<(UserId, TrackId), i64>,
    next_seq: i64,
    tasks: BTreeMap<i64, DeferredTask>,
    leases: HashMap<i64, Uuid>,
    next_task: i64,
    secrets: HashMap<String, Vec<u8>>,
    audit: Vec<AuditRecord>,
    tokens: HashMap<[u8; 32], StoredToken>,
    devices: HashMap<[u8; 32], StoredDeviceGrant>,
}

#[derive(Debug, Clone)]
struct StoredDeviceGrant {
    grant: DeviceGrant,
    polled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct StoredToken {
    user: UserId,
    purpose: TokenPurpose,
    email: Email,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage, for testing how callers handle a failing
    /// database: while `true`, every operation fails with [`Error::Internal`]
    /// and changes nothing.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Error::internal("memory store: unavailable (a simulated outage)"));
        }
        // A panic while holding the lock cannot leave a half-applied change:
        // every method checks before it mutates.
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Inner {
    fn enqueue(&mut self, kind: TaskKind, user: UserId, track: Option<TrackId>, now: DateTime<Utc>) {
        self.enqueue_with(kind, user, track, None, now);
    }

    fn enqueue_with(
        &mut self,
        kind: TaskKind,
        user: UserId,
        track: Option<TrackId>,
        payload: Option<MailPayload>,
        now: DateTime<Utc>,
    ) {
        self.next_task += 1;
        let id = self.next_task;
        self.tasks.insert(
            id,
            DeferredTask {
                id,
                kind,
                user_id: user,
                track_id: track,
                payload,
                occurred_at: now,
                status: TaskStatus::Pending,
                attempts: 0,
                available_at: now,
                last_error: None,
                leased_until: None,
                updated_at: now,
            },
        );
    }

    /// Opens the session of a login (see [`SessionStore::open_session`]).
    fn open_session(&mut self, login: &NewSession) -> bool {
        let session = &login.session;
        let Some(record) = self.users.get_mut(&session.user_id) else { return false };
        if record.credential_version != login.credential_version || record.user.disabled_at.is_some() {
            return false;
        }
        record.failed_logins = 0;
        record.locked_until = None;
        record.user.last_login_at = Some(session.created_at);
        if let Some(hash) = &login.rehash {
            record.password_hash = hash.clone();
        }
        self.sessions.insert(session.id, session.clone());
        true
    }

    /// Refuses a change that would leave no active admin, when `id` is the only one.
    fn keep_an_admin(&self, id: UserId) -> Result<()> {
        // Under the one lock the target cannot change meanwhile, so only an
        // active admin's change needs the scan.
        let active_admin = |r: &UserRecord| r.user.role == Role::Admin && r.user.disabled_at.is_none();
        if !self.users.get(&id).is_some_and(active_admin) {
            return Ok(());
        }
        let mut admins = self.users.values().filter(|r| active_admin(r));
        match (admins.next(), admins.next()) {
            (Some(only), None) if only.user.id == id => Err(Error::LastAdmin),
            _ => Ok(()),
        }
    }

    /// Stores each mail's token (voiding the user's older ones of its
    /// purpose) and enqueues the mail.
    fn enqueue_mails(&mut self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) {
        for mail in mails {
            if let Some(token) = mail.token.as_ref().filter(|_| self.users.contains_key(&user)) {
                self.void_tokens(user, token.purpose);
                let stored = StoredToken {
                    user,
                    purpose: token.purpose,
                    email: token.email.clone(),
                    created_at: now,
                    expires_at: token.expires_at,
                };
                self.tokens.insert(token.digest, stored);
            }
            self.enqueue_with(mail.kind, user, None, Some(mail.payload.clone()), now);
        }
    }

    fn void_tokens(&mut self, user: UserId, purpose: TokenPurpose) {
        self.tokens.retain(|_, t| !(t.user == user && t.purpose == purpose));
    }

    /// Takes a live token of `purpose` out of the store.
    fn take_token(&mut self, digest: &[u8; 32], purpose: TokenPurpose, now: DateTime<Utc>) -> Option<StoredToken> {
        let token = self.tokens.get(digest).filter(|t| t.purpose == purpose && t.expires_at > now)?.clone();
        self.tokens.remove(digest);
        Some(token)
    }

    fn revoke_sessions(&mut self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> u64 {
        let mut n = 0;
        for s in self.sessions.values_mut() {
            if s.user_id == user && Some(s.id) != except && s.revoked_at.is_none() {
                s.revoked_at = Some(now);
                n += 1;
            }
        }
        n
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, record: &UserRecord, mails: &[NewMail]) -> Result<()> {
        let mut inner = self.lock()?;
        let user = &record.user;
        if inner.by_username.contains_key(&user.username.folded()) {
            return Err(Error::Conflict(ConflictField::Username));
        }
        if inner.by_email.contains_key(user.email.as_str()) {
            return Err(Error::Conflict(ConflictField::Email));
        }
        inner.by_username.insert(user.username.folded(), user.id);
        inner.by_email.insert(user.email.as_str().to_owned(), user.id);
        inner.users.insert(user.id, record.clone());
        inner.enqueue_mails(user.id, mails, user.created_at);
        Ok(())
    }

    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>> {
        let inner = self.lock()?;
        let id = match key {
            UserKey::Id(id) => Some(id),
            UserKey::Username(name) => inner.by_username.get(&name.folded()).copied(),
            UserKey::Email(email) => inner.by_email.get(email.as_str()).copied(),
        };
        Ok(id.and_then(|id| inner.users.get(&id).cloned()))
    }

    async fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        let mut inner = self.lock()?;
        let Some(current) = inner.users.get(&id).cloned() else { return Ok(None) };
        if changes.expected_credential_version.is_some_and(|v| v != current.credential_version) {
            return Ok(None);
        }
        if let Some(name) = &changes.username
            && inner.by_username.get(&name.folded()).is_some_and(|owner| *owner != id)
        {
            return Err(Error::Conflict(ConflictField::Username));
        }
        if let Some(email) = &changes.email
            && inner.by_email.get(email.as_str()).is_some_and(|owner| *owner != id)
        {
            return Err(Error::Conflict(ConflictField::Email));
        }
        let mut updated = current.clone();
        if let Some(name) = &changes.username {
            inner.by_username.remove(&current.user.username.folded());
            inner.by_username.insert(name.folded(), id);
            updated.user.username = name.clone();
        }
        if let Some(email) = &changes.email {
            inner.by_email.remove(current.user.email.as_str());
            inner.by_email.insert(email.as_str().to_owned(), id);
            if *email != current.user.email {
                updated.user.email = email.clone();
                updated.user.email_verified = false;
                inner.void_tokens(id, TokenPurpose::Verify);
            }
        }
        if let Some(hash) = &changes.password_hash {
            updated.password_hash = hash.clone();
            updated.credential_version += 1;
            inner.revoke_sessions(id, changes.keep_session, now);
            inner.void_tokens(id, TokenPurpose::Reset);
        }
        if let Some(locale) = changes.locale {
            updated.user.locale = locale;
        }
        updated.user.updated_at = now;
        inner.users.insert(id, updated.clone());
        inner.enqueue_mails(id, &changes.mails, now);
        Ok(Some(updated))
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>> {
        let mut inner = self.lock()?;
        let Some(record) = inner.users.get_mut(&id) else { return Ok(None) };
        if let Some(until) = record.locked_until.filter(|until| *until > now) {
            return Ok(Some(LoginAttempt::Locked { until }));
        }
        record.failed_logins += 1;
        if let Some(until) = lock_until(record.failed_logins) {
            record.locked_until = Some(record.locked_until.map_or(until, |old| old.max(until)));
        }
        Ok(Some(LoginAttempt::Allowed { failures: record.failed_logins }))
    }

    async fn reset_login_failures(&self, id: UserId) -> Result<()> {
        if let Some(record) = self.lock()?.users.get_mut(&id) {
            record.failed_logins = 0;
            record.locked_until = None;
        }
        Ok(())
    }

    async fn change_account(&self, id: UserId, changes: &AccountChanges, now: DateTime<Utc>) -> Result<Option<User>> {
        let mut inner = self.lock()?;
        let Some(before) = inner.users.get(&id) else { return Ok(None) };
        let ends_sessions = changes.role.is_some_and(|role| role != before.user.role)
            || (changes.disabled == Some(true) && before.user.disabled_at.is_none());
        if ends_sessions {
            inner.keep_an_admin(id)?;
        }
        let Some(record) = inner.users.get_mut(&id) else { return Ok(None) };
        let user = &mut record.user;
        if let Some(role) = changes.role {
            user.role = role;
        }
        match changes.disabled {
            Some(true) => {
                user.disabled_at.get_or_insert(now);
            }
            Some(false) => user.disabled_at = None,
            None => {}
        }
        if let Some(verified) = changes.email_verified {
            user.email_verified = verified;
        }
        user.updated_at = now;
        let user = user.clone();
        if ends_sessions {
            record.credential_version += 1;
            inner.revoke_sessions(id, None, now);
        }
        Ok(Some(user))
    }

    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool> {
        let mut inner = self.lock()?;
        inner.keep_an_admin(id)?;
        let Some(record) = inner.users.remove(&id) else { return Ok(false) };
        inner.by_username.remove(&record.user.username.folded());
        inner.by_email.remove(record.user.email.as_str());
        inner.sessions.retain(|_, s| s.user_id != id);
        inner.favorites.retain(|(user, _), _| *user != id);
        inner.favorite_seq.retain(|(user, _), _| *user != id);
        inner.tokens.retain(|_, t| t.user != id);
        inner.enqueue(TaskKind::UserDeleted, id, None, now);
        Ok(true)
    }

    async fn list_users(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        let inner = self.lock()?;
        let range = match after {
            Some(after) => inner.users.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => inner.users.range(..),
        };
        Ok(range.take(limit as usize).map(|(_, r)| r.user.clone()).collect())
    }

    async fn search_users(&self, prefix: &str, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        let inner = self.lock()?;
        let range = match after {
            Some(after) => inner.users.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => inner.users.range(..),
        };
        Ok(range
            .map(|(_, r)| &r.user)
            .filter(|u| u.username.folded().starts_with(prefix) || u.email.as_str().starts_with(prefix))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn open_session(&self, login: &NewSession) -> Result<bool> {
        Ok(self.lock()?.open_session(login))
    }

    async fn list_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<SessionRecord>> {
        let inner = self.lock()?;
        let mut live: Vec<SessionRecord> =
            inner.sessions.values().filter(|s| s.user_id == user && s.is_active(now)).cloned().collect();
        live.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.as_uuid())));
        Ok(live)
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        Ok(self.lock()?.sessions.get(&id).cloned())
    }

    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<UserRecord>> {
        let inner = self.lock()?;
        let active = inner.sessions.get(&id).is_some_and(|s| s.user_id == user && s.is_active(now));
        Ok(if active { inner.users.get(&user).cloned() } else { None })
    }

    async fn rotate_session(&self, r: &Rotation) -> Result<bool> {
        let mut inner = self.lock()?;
        let Some(s) = inner.sessions.get_mut(&r.session) else { return Ok(false) };
        if s.refresh_jti != r.expected_jti || s.revoked_at.is_some() {
            return Ok(false);
        }
        s.previous_jti = Some(s.refresh_jti);
        s.refresh_jti = r.new_jti;
        s.rotated_at = Some(r.now);
        s.last_used_at = r.now;
        s.expires_at = r.expires_at;
        Ok(true)
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool> {
        let mut inner = self.lock()?;
        match inner.sessions.get_mut(&id) {
            Some(s) if s.revoked_at.is_none() => {
                s.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64> {
        Ok(self.lock()?.revoke_sessions(user, except, now))
    }
}

#[async_trait]
impl FavoriteStore for MemoryStore {
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.lock()?;
        if !inner.users.contains_key(&user) {
            return Err(Error::UserNotFound);
        }
        let mut added = 0;
        for track in tracks {
            if inner.favorite_seq.contains_key(&(user, track.clone())) {
                continue;
            }
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.favorite_seq.insert((user, track.clone()), seq);
            inner.favorites.insert((user, seq), Favorite { track_id: track.clone(), added_at: now, seq });
            inner.enqueue(TaskKind::FavoriteAdded, user, Some(track.clone()), now);
            added += 1;
        }
        Ok(added)
    }

    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut removed = 0;
        for track in tracks {
            if let Some(seq) = inner.favorite_seq.remove(&(user, track.clone())) {
                inner.favorites.remove(&(user, seq));
                inner.enqueue(TaskKind::FavoriteRemoved, user, Some(track.clone()), now);
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>> {
        let inner = self.lock()?;
        Ok(tracks.iter().map(|t| inner.favorite_seq.contains_key(&(user, t.clone()))).collect())
    }

    async fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>> {
        let inner = self.lock()?;
        let upper = before.unwrap_or(i64::MAX);
        Ok(inner
            .favorites
            .range((user, i64::MIN)..(user, upper))
            .rev()
            .take(limit as usize)
            .map(|(_, f)| f.clone())
            .collect())
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeferredTask>> {
        let inner = self.lock()?;
        Ok(inner
            .tasks
            .range(after.map_or(i64::MIN, |a| a.saturating_add(1))..)
            .map(|(_, t)| t)
            .filter(|t| status.is_none_or(|s| t.status == s))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn claim_tasks(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Claim> {
        let mut inner = self.lock()?;
        let lease_id = Uuid::now_v7();
        let mut blocked = HashSet::new();
        let mut claimed = Vec::new();
        for task in inner.tasks.values() {
            if claimed.len() >= limit as usize {
                break;
            }
            let lane = (task.user_id, task.kind.channel());
            if task.status != TaskStatus::Pending || blocked.contains(&lane) {
                continue;
            }
            let leased = task.leased_until.is_some_and(|until| until > now);
            if leased || task.available_at > now {
                blocked.insert(lane);
                continue;
            }
            claimed.push(task.id);
        }
        let mut tasks = Vec::with_capacity(claimed.len());
        for id in claimed {
            inner.leases.insert(id, lease_id);
            if let Some(task) = inner.tasks.get_mut(&id) {
                task.leased_until = Some(lease_until);
                task.updated_at = now;
                tasks.push(task.clone());
            }
        }
        Ok(Claim { lease_id, tasks })
    }

    async fn complete_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        self.settle(lease_id, ids, now, |task| {
            task.status = TaskStatus::Done;
            task.payload = None;
        })
    }

    async fn fail_task(
        &self,
        lease_id: Uuid,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self.settle(lease_id, &[id], now, |task| {
            task.attempts += 1;
            task.last_error = Some(error.to_owned());
            match retry_at {
                Some(at) => task.available_at = at,
                None => {
                    task.status = TaskStatus::Dead;
                    task.payload = None;
                }
            }
        })? == 1)
    }

    async fn release_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        self.settle(lease_id, ids, now, |_| {})
    }

    async fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut n = 0;
        for task in inner.tasks.values_mut() {
            if task.status == TaskStatus::Dead && id.is_none_or(|id| id == task.id) {
                task.status = TaskStatus::Pending;
                task.attempts = 0;
                task.available_at = now;
                task.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn count_tasks(&self) -> Result<TaskCounts> {
        let inner = self.lock()?;
        let mut counts = TaskCounts::default();
        for task in inner.tasks.values() {
            counts.add(task.status, 1);
        }
        Ok(counts)
    }

    async fn count_waiting_tasks(&self) -> Result<WaitingTasks> {
        let counts = self.count_tasks().await?;
        Ok(WaitingTasks { pending: counts.pending, dead: counts.dead })
    }

    async fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        let mut inner = self.lock()?;
        let purge: Vec<i64> = inner
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Done && t.updated_at < before)
            .take(limit as usize)
            .map(|t| t.id)
            .collect();
        for id in &purge {
            inner.tasks.remove(id);
        }
        Ok(purge.len() as u64)
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn send_token_mail(
        &self,
        owner: TokenOwner<'_>,
        mail: &NewMail,
        not_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<TokenMail> {
        let mut inner = self.lock()?;
        let user = match owner {
            TokenOwner::Id(id) => inner.users.contains_key(&id).then_some(id),
            TokenOwner::Email(email) => inner.by_email.get(email.as_str()).copied(),
        };
        let (user, known) = match (user, matches!(owner, TokenOwner::Email(_))) {
            (Some(user), _) => (user, true),
            // As the other stores: the same work for an id no account has.
            (None, true) => (UserId::new(), false),
            (None, false) => return Ok(TokenMail::NoAccount),
        };
        if let (Some(since), Some(token)) = (not_before, &mail.token)
            && inner.tokens.values().any(|t| t.user == user && t.purpose == token.purpose && t.created_at > since)
        {
            return Ok(TokenMail::TooSoon);
        }
        inner.enqueue_mails(user, std::slice::from_ref(mail), now);
        Ok(if known { TokenMail::Sent(user) } else { TokenMail::NoAccount })
    }

    async fn verify_email(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Result<Option<UserId>> {
        let mut inner = self.lock()?;
        let Some(token) = inner.take_token(digest, TokenPurpose::Verify, now) else { return Ok(None) };
        let Some(record) = inner.users.get_mut(&token.user).filter(|r| r.user.email == token.email) else {
            return Ok(None);
        };
        record.user.email_verified = true;
        record.user.updated_at = now;
        Ok(Some(token.user))
    }

    async fn reset_password(
        &self,
        digest: &[u8; 32],
        password_hash: &str,
        mail: &NewMail,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>> {
        let mut inner = self.lock()?;
        let Some(token) = inner.take_token(digest, TokenPurpose::Reset, now) else { return Ok(None) };
        let Some(record) = inner.users.get_mut(&token.user) else { return Ok(None) };
        record.password_hash = password_hash.to_owned();
        record.credential_version += 1;
        record.failed_logins = 0;
        record.locked_until = None;
        record.user.updated_at = now;
        inner.void_tokens(token.user, TokenPurpose::Reset);
        inner.revoke_sessions(token.user, None, now);
        inner.enqueue_mails(token.user, std::slice::from_ref(mail), now);
        Ok(Some(token.user))
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64> {
        let mut inner = self.lock()?;
        let expired: Vec<[u8; 32]> =
            inner.tokens.iter().filter(|(_, t)| t.expires_at <= now).take(limit as usize).map(|(d, _)| *d).collect();
        for digest in &expired {
            inner.tokens.remove(digest);
        }
        let before = now - DEVICE_GRANT_KEPT;
        let expired_grants: Vec<[u8; 32]> = inner
            .devices
            .iter()
            .filter(|(_, g)| g.grant.expires_at <= before)
            .take(limit as usize)
            .map(|(d, _)| *d)
            .collect();
        for digest in &expired_grants {
            inner.devices.remove(digest);
        }
        Ok((expired.len() + expired_grants.len()) as u64)
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device_grant(&self, g: &NewDeviceGrant) -> Result<bool> {
        let mut inner = self.lock()?;
        if inner.devices.values().any(|d| d.grant.user_code == g.user_code) {
            return Ok(false);
        }
        let grant = DeviceGrant {
            user_code: g.user_code.clone(),
            client_id: g.client_id.clone(),
            device_name: g.device_name.clone(),
            expires_at: g.expires_at,
            interval_secs: g.interval_secs,
            wrong_tries: 0,
            decision: DeviceDecision::Pending,
        };
        inner.devices.insert(g.digest, StoredDeviceGrant { grant, polled_at: None });
        Ok(true)
    }

    async fn poll_device_grant(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
        leeway: chrono::TimeDelta,
        step: u32,
    ) -> Result<Option<DevicePoll>> {
        let mut inner = self.lock()?;
        let Some(stored) = inner.devices.get_mut(digest) else { return Ok(None) };
        let too_fast = polled_too_fast(&stored.grant, stored.polled_at, now, leeway);
        if too_fast {
            stored.grant.interval_secs += step;
        }
        stored.polled_at = Some(now);
        Ok(Some(DevicePoll { grant: stored.grant.clone(), too_fast }))
    }

    async fn resolve_user_code(
        &self,
        code: &UserCode,
        action: UserCodeAction,
        max_wrong: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceGrant>> {
        let mut inner = self.lock()?;
        let pending = |g: &DeviceGrant| g.decision == DeviceDecision::Pending && g.expires_at > now;
        let found = inner
            .devices
            .values_mut()
            .find(|d| d.grant.user_code == *code && pending(&d.grant) && d.grant.wrong_tries < max_wrong);
        let Some(stored) = found else {
            let (head, tail) = code.halves();
            for d in inner.devices.values_mut().filter(|d| pending(&d.grant) && d.grant.wrong_tries < max_wrong) {
                let (h, t) = d.grant.user_code.halves();
                if h == head || t == tail {
                    d.grant.wrong_tries += 1;
                }
            }
            return Ok(None);
        };
        match action {
            UserCodeAction::Look => {}
            UserCodeAction::Approve(user) => stored.grant.decision = DeviceDecision::Approved(user),
            UserCodeAction::Deny(user) => stored.grant.decision = DeviceDecision::Denied(user),
        }
        Ok(Some(stored.grant.clone()))
    }

    async fn redeem_device_grant(&self, digest: &[u8; 32], login: &NewSession) -> Result<bool> {
        let s = &login.session;
        let mut inner = self.lock()?;
        let takeable = inner.devices.get(digest).is_some_and(|d| {
            d.grant.decision == DeviceDecision::Approved(s.user_id) && d.grant.expires_at > s.created_at
        });
        if !takeable {
            return Ok(false);
        }
        inner.devices.remove(digest);
        Ok(inner.open_session(login))
    }
}

impl MemoryStore {
    /// Applies `change` to each pending task still held by `lease_id` and ends
    /// the lease; returns how many were held.
    fn settle(
        &self,
        lease_id: Uuid,
        ids: &[i64],
        now: DateTime<Utc>,
        change: impl Fn(&mut DeferredTask),
    ) -> Result<u64> {
        let mut inner = self.lock()?;
        let mut n = 0;
        for id in ids {
            if inner.leases.get(id) != Some(&lease_id) {
                continue;
            }
            inner.leases.remove(id);
            if let Some(task) = inner.tasks.get_mut(id)
                && task.status == TaskStatus::Pending
            {
                task.leased_until = None;
                task.updated_at = now;
                change(task);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn record_audit(&self, entry: &AuditRecord) -> Result<()> {
        let mut inner = self.lock()?;
        let id = inner.audit.len() as i64 + 1;
        inner.audit.push(AuditRecord { id, ..entry.clone() });
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        let inner = self.lock()?;
        Ok(inner
            .audit
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .filter(|e| filter.user.is_none() || e.user_id == filter.user)
            .filter(|e| filter.event.as_ref().is_none_or(|event| e.event == *event))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn get_or_insert_secret(&self, name: &str, candidate: &[u8], _now: DateTime<Utc>) -> Result<Vec<u8>> {
        Ok(self.lock()?.secrets.entry(name.to_owned()).or_insert_with(|| candidate.to_vec()).clone())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn migrate(&self) -> Result<()> {
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.lock().map(drop)
    }
}

#[cfg(test)]
mod tests {
    crate::store::conformance::suite!(async {
        Some(std::sync::Arc::new(super::MemoryStore::new()) as std::sync::Arc<dyn crate::store::Store>)
    });
}

#[cfg(test)]
mod outage_tests {
    use super::*;

    #[tokio::test]
    async fn a_simulated_outage_fails_every_operation_and_changes_nothing() {
        let store = MemoryStore::new();
        store.set_unavailable(true);
        assert!(matches!(store.ping().await, Err(Error::Internal(_))));
        assert!(matches!(store.list_users(None, 10).await, Err(Error::Internal(_))));
        store.set_unavailable(false);
        store.ping().await.unwrap();
        assert!(store.list_users(None, 10).await.unwrap().is_empty());
    }
}
