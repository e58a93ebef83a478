-- Per-client rate limits shared by every replica (GCRA): one row per action
-- and client address. Unlogged: losing it in a crash only forgets recent
-- requests, and nothing about it needs the write-ahead log.
create unlogged table rate_limits (
    key     text    primary key,
    -- The theoretical arrival time (µs since the epoch): the limit is met
    -- once it runs ahead of now by the period.
    tat     bigint  not null,
    -- Whether the last request counted was let through.
    allowed boolean not null
);
-- The sweep deletes rows whose time has come (fully recovered budgets).
create index rate_limits_tat_idx on rate_limits (tat);
