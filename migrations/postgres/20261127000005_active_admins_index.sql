-- The active admins, found by index: every demotion, disable and delete asks
-- whether its target is the last one (and PostgreSQL locks these rows), so
-- without it each account deletion would scan every user.
create index users_active_admins on users (id) where role = 'admin' and disabled_at is null;
