-- Common table expressions, recursive ones included.
with recursive cnt(x) as (select 1 union all select x + 1 from cnt where x < 10)
select group_concat(x, ' ') from cnt;
with recursive fib(n, a, b) as (select 1, 0, 1 union all select n + 1, b, a + b from fib where n < 20)
select n, a from fib where n % 5 = 0;
create table tree(id integer primary key, parent int, name text);
insert into tree values (1, NULL, 'root'), (2, 1, 'usr'), (3, 1, 'etc'), (4, 2, 'bin'),
  (5, 2, 'lib'), (6, 4, 'ls'), (7, 3, 'hosts');
with recursive path(id, p, depth) as (
  select id, name, 0 from tree where parent is null
  union all
  select t.id, path.p || '/' || t.name, depth + 1 from tree t join path on t.parent = path.id
) select p, depth from path order by p;
with big as (select * from tree where id > 3), small as (select * from tree where id <= 3)
select (select count(*) from big), (select count(*) from small);
with t(a, b) as (values (1, 'x'), (2, 'y')) select b, a * 10 from t order by a desc;
with recursive r(i) as (select 1 union all select i * 2 from r limit 12) select sum(i) from r;
with m as materialized (select 42 as v) select v from m;
with recursive bad(x) as (select 1 union all select x from bad, bad) select * from bad;
