-- Aggregates, GROUP BY/HAVING, DISTINCT, and their NULL rules.
create table s(grp text, k int, x real);
insert into s values ('a', 1, 1.5), ('a', 2, 2.5), ('a', 2, NULL), ('b', 3, 10), ('b', NULL, -4),
  ('c', NULL, NULL), (NULL, 7, 0.25);
select count(*), count(k), count(x), count(distinct k) from s;
select sum(k), total(k), avg(x), min(x), max(x) from s;
select grp, count(*), sum(x), avg(k) from s group by grp order by grp;
select grp, sum(k) as t from s group by grp having t > 2 order by t;
select distinct k from s order by k;
select grp, group_concat(k, ',') from s group by grp order by grp nulls last;
select sum(x) from s where grp = 'zzz';
select count(*) from s where grp = 'zzz';
select max(k), grp from s;
select k % 2 as parity, count(*) from s where k is not null group by parity order by parity;
select avg(k) filter (where k > 1) from s;
select string_agg(grp, '|') within group (order by grp) from s where grp is not null;
select median(x) from s;
select grp, min(k), max(k) from s group by 1 order by 1 desc;
