-- How each session signed in (RFC 8176 amr as a bit set: 1 pwd, 2 fed,
-- 4 pop, 8 user, 16 otp, 32 mfa). Sessions opened before this column
-- existed were all opened by a password, or by a device approval of one.
alter table sessions add column amr smallint not null default 1;
