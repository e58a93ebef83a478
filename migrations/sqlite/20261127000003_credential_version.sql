-- Grows whenever what a login proves changes (password, role, disable). A
-- login opens its session only if the version it read is still current, so a
-- login racing a password change cannot mint a session from the old password
-- or write the old password's hash back.
alter table users add column credential_version integer not null default 0;
