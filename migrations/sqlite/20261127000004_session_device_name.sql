-- A name the client gave its session at login ("Kitchen speaker"), shown in
-- the caller's list of sessions; null when none was given.
alter table sessions add column device_name text;
