-- per table (partitioned tables summed over their partitions): rows, heap bytes, index bytes, bytes per row
with parts as (
  select coalesce(p.relname, c.relname) as tbl, c.oid
  from pg_class c left join pg_inherits i on i.inhrelid = c.oid left join pg_class p on p.oid = i.inhparent
  where c.relkind = 'r' and c.relnamespace = 'public'::regnamespace)
select tbl, sum(n_live_tup)::bigint as rows, pg_size_pretty(sum(pg_table_size(oid))) as heap,
       pg_size_pretty(sum(pg_indexes_size(oid))) as indexes,
       round(sum(pg_table_size(oid))::numeric / nullif(sum(n_live_tup), 0)) as heap_b_row,
       round(sum(pg_indexes_size(oid))::numeric / nullif(sum(n_live_tup), 0)) as idx_b_row
from parts join pg_stat_user_tables s on s.relid = parts.oid
group by tbl order by sum(pg_total_relation_size(oid)) desc limit 16;
