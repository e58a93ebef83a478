-- The W3C traceparent of the request that wrote a task (null when traces
-- are not exported), so its delivery continues that trace.
alter table deferred_tasks add column traceparent text;
